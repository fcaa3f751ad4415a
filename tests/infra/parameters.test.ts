/**
 * Parameters files hold azd placeholders, never values that could be secrets; secret values are passed
 * by reference (Key Vault secret names), never as parameters.
 */
import { readdirSync } from 'node:fs';
import { redact } from '../../shared/redact';
import { INFRA, params, readInfra } from './bicep';

const parameterFiles = readdirSync(INFRA).filter((f) => f.endsWith('.parameters.json'));
const main = readInfra('main.bicep');

/** `${NAME}` or `${NAME=default}`: azd substitutes it from the environment. */
const PLACEHOLDER = /^\$\{([A-Z][A-Z0-9_]*)(?:=([^}]*))?\}$/;
const GUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
/** Long base64 runs mixing digits and both cases, or long hex: storage keys, SAS signatures, tokens. */
const KEY_LIKE =
  /(?=[A-Za-z0-9+/]*\d)(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[A-Z])[A-Za-z0-9+/]{24,}={0,2}|[0-9a-f]{32,}/i;
/** Names of things that are secret values (a Key Vault secret *name* is not). */
const SECRET_VALUE_NAME =
  /password|token|credential|connectionString|accountKey|sasToken|signature|clientSecret|signingKey$|webhookUrl$/i;

function leaves(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(leaves);
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [k, ...leaves(v)]);
  return [];
}

describe.each(parameterFiles)('%s', (file) => {
  const text = readInfra(file);
  const parsed = JSON.parse(text) as { parameters: Record<string, { value?: unknown; reference?: unknown }> };
  const entries = Object.entries(parsed.parameters);

  // Every string in the file but $schema: names and values alike.
  const strings = leaves(parsed).filter((s) => !s.startsWith('https://schema.management.azure.com/'));

  test('holds nothing the redaction helper would mask', () => {
    expect(strings.length).toBeGreaterThan(0);
    for (const s of strings) expect(redact(s)).toBe(s);
  });

  test('every value is an azd placeholder; defaults are not secret-like', () => {
    for (const [name, p] of entries) {
      expect({ name, value: p.value }).toEqual({ name, value: expect.stringMatching(PLACEHOLDER) });
      const fallback = PLACEHOLDER.exec(String(p.value))?.[2] ?? '';
      expect({ name, fallback, guid: GUID.test(fallback), keyLike: KEY_LIKE.test(fallback) }).toEqual({
        name,
        fallback,
        guid: false,
        keyLike: false,
      });
      // A parameter named like a secret value has no default at all.
      if (SECRET_VALUE_NAME.test(name)) expect({ name, fallback }).toEqual({ name, fallback: '' });
    }
    for (const s of strings)
      expect({ s, guid: GUID.test(s), keyLike: KEY_LIKE.test(s) }).toEqual({
        s,
        guid: false,
        keyLike: false,
      });
  });

  test('names only parameters of main.bicep, and every required one', () => {
    const declared = params(main);
    const names = entries.map(([n]) => n);
    expect(names.filter((n) => !declared.some((p) => p.name === n))).toEqual([]);
    const required = declared.filter((p) => p.defaultValue === undefined).map((p) => p.name);
    expect(required.filter((n) => !names.includes(n))).toEqual([]);
  });
});

test('there is a parameters file for azd', () => {
  expect(parameterFiles).toContain('main.parameters.json');
});

test('no Bicep parameter takes a secret value: secrets are referenced by Key Vault secret name', () => {
  const declared = params(main);
  expect(declared.filter((p) => SECRET_VALUE_NAME.test(p.name)).map((p) => p.name)).toEqual([]);
  for (const p of declared) expect(p.decorators.join(' ')).not.toMatch(/@secure\(\)/);
  // The webhook URLs and signing key arrive as secret names.
  for (const name of ['teamsWebhookUrlSecretName', 'webhookUrlSecretName', 'webhookSigningKeySecretName']) {
    expect(declared.map((p) => p.name)).toContain(name);
  }
});
