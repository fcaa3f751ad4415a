import { randomBytes, randomUUID } from 'node:crypto';
import { redact, redactError, registerSecret } from '../../shared/redact';

/**
 * The one redaction helper, fed real-looking credentials in the places they turn up: headers, JSON
 * and form bodies, URLs, error messages. Unit tests: no emulator.
 */

const MASK = '[REDACTED]';
const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const ENTRA_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-';
/** Entra's client secret format: three characters, a digit, `Q~`, 34 more (40 in all). */
const entraSecret = () =>
  `${'abc'}8Q~${Array.from(randomBytes(34), (b) => ENTRA_CHARS[b % ENTRA_CHARS.length]).join('')}`;
const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = () =>
  `${b64url({ alg: 'RS256', typ: 'JWT', kid: hex(8) })}.${b64url({ aud: '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d', sub: randomUUID(), exp: 1999999999 })}.${randomBytes(64).toString('base64url')}`;

/** Asserts the credential is gone from the redacted text and the mask is there instead. */
function expectMasked(text: string, ...credentials: string[]): string {
  const out = redact(text);
  for (const c of credentials) expect(out).not.toContain(c);
  expect(out).toContain(MASK);
  return out;
}

describe('credential shapes are masked without being registered', () => {
  test('a Databricks PAT, alone and with its -N suffix', () => {
    const pat = `dapi${hex(16)}`;
    expect(redact(pat)).toBe(MASK);
    expect(redact(`${pat}-2`)).toBe(MASK);
    expect(redact(`token ${pat.toUpperCase().replace('DAPI', 'dapi')} expired`)).toBe(
      `token ${MASK} expired`,
    );
  });

  test('a Databricks service-principal OAuth secret', () => {
    const secret = `dose${hex(16)}`;
    expect(redact(`secret ${secret} created`)).toBe(`secret ${MASK} created`);
  });

  test('an Entra client secret', () => {
    for (let i = 0; i < 50; i++) {
      const secret = entraSecret();
      expectMasked(`new secret: ${secret}.`, secret, secret.slice(6, 20), secret.slice(-12));
    }
  });

  test('a JWT', () => {
    const token = jwt();
    expectMasked(`access token ${token} rejected`, token, token.split('.')[2] as string);
  });

  test('Authorization headers keep their scheme', () => {
    const bearer = `opaque-${hex(20)}`;
    expect(redact(`Authorization: Bearer ${bearer}`)).toBe(`Authorization: Bearer ${MASK}`);
    expect(redact(`authorization: bearer ${jwt()}`)).toBe(`authorization: bearer ${MASK}`);
    const basic = Buffer.from(`${randomUUID()}:dose${hex(16)}`).toString('base64');
    expect(redact(`Authorization: Basic ${basic}`)).toBe(`Authorization: Basic ${MASK}`);
    // base64 of "user:pass": no digits, no symbols.
    expect(redact('Authorization: Basic dXNlcjpwYXNz')).toBe(`Authorization: Basic ${MASK}`);
  });

  test('a storage connection string keeps everything but the key', () => {
    const key = randomBytes(64).toString('base64');
    const out = expectMasked(
      `DefaultEndpointsProtocol=https;AccountName=stkvrotator;AccountKey=${key};EndpointSuffix=core.windows.net`,
      key,
    );
    expect(out).toBe(
      `DefaultEndpointsProtocol=https;AccountName=stkvrotator;AccountKey=${MASK};EndpointSuffix=core.windows.net`,
    );
  });

  test('a SAS signature keeps the rest of the URL', () => {
    const sig = encodeURIComponent(randomBytes(32).toString('base64'));
    const url = `https://stkvrotator.blob.core.windows.net/locks/kv1?sv=2025-01-05&se=2030-01-01T00%3A00%3A00Z&sr=c&sp=rwl&sig=${sig}`;
    const out = expectMasked(`PUT ${url} failed`, sig);
    expect(out).toContain('https://stkvrotator.blob.core.windows.net/locks/kv1?sv=2025-01-05');
    expect(out).toContain(`sig=${MASK}`);
  });

  test.each(['token_value', 'secretText', 'secret', 'access_token', 'value', 'client_secret', 'password'])(
    'a JSON field %j, whatever its value looks like',
    (field) => {
      const value = `plain words ${hex(3)} with \\"quotes\\" inside`;
      const out = expectMasked(`{"id":"42","${field}" : "${value}","status":"ACTIVE"}`, value, 'plain words');
      expect(out).toBe(`{"id":"42","${field}" : "${MASK}","status":"ACTIVE"}`);
    },
  );

  test('a Databricks token/create response', () => {
    const pat = `dapi${hex(16)}`;
    const body = JSON.stringify({
      token_value: pat,
      token_info: { token_id: hex(32), creation_time: 1, expiry_time: 2, comment: 'kv-rotator:kv/s:r' },
    });
    expectMasked(`unexpected response ${body}`, pat);
  });

  test('a Graph addPassword response with an old-style secret', () => {
    // Secrets created before the Q~ format are just random characters.
    const secretText = 'Xy7.Tq-3b_Lk9~Rz2WvN5pHs8dFg1JcMe4Ba6Qo0';
    expectMasked(JSON.stringify({ keyId: randomUUID(), secretText, hint: 'Xy7' }), secretText);
  });

  test('form bodies', () => {
    const secret = 'S3cr3t/Value+With=Symbols';
    const out = expectMasked(
      `grant_type=client_credentials&client_secret=${encodeURIComponent(secret)}&scope=all-apis`,
      encodeURIComponent(secret),
    );
    expect(out).toBe(`grant_type=client_credentials&client_secret=${MASK}&scope=all-apis`);
    const assertion = jwt();
    expectMasked(`client_assertion_type=x&client_assertion=${assertion}`, assertion);
    expectMasked(`subject_token=${assertion}&subject_token_type=jwt`, assertion);
    expectMasked(`refresh_token=abcdef123456&grant_type=refresh_token`, 'abcdef123456');
  });

  test('credentials embedded in URLs', () => {
    const pat = `dapi${hex(16)}`;
    expectMasked(`GET https://adb-1.2.azuredatabricks.net/api/2.0/x?token=${pat}&o=1 failed`, pat);
    expectMasked(`https://host/cb#access_token=${jwt()}&token_type=Bearer`, 'access_token=eyJ');
    const secret = entraSecret();
    expectMasked(
      `POST https://login.microsoftonline.com/t/oauth2/v2.0/token?client_secret=${secret}`,
      secret,
    );
  });

  test('credentials inside error messages', () => {
    const pat = `dapi${hex(16)}`;
    const sp = `dose${hex(16)}`;
    const app = entraSecret();
    const out = expectMasked(
      `Error: Invalid access token ${pat}; tried ${sp} and '${app}' (code 403)`,
      pat,
      sp,
      app,
    );
    expect(out).toMatch(
      /^Error: Invalid access token \[REDACTED\]; tried \[REDACTED\] and '\[REDACTED\]' \(code 403\)$/,
    );
  });
});

describe('registered values', () => {
  test('are masked wherever they appear, even inside other words', () => {
    const value = `my-sp3cial_value.${hex(4)}`;
    registerSecret(value);
    expect(redact(`a${value}b and ${value}${value}`)).toBe(`a${MASK}b and ${MASK}${MASK}`);
    expect(redact(JSON.stringify({ any: value }))).toBe(`{"any":"${MASK}"}`);
  });

  test('of any shape, including regex and replacement metacharacters', () => {
    const values = [
      '(a+)+$&$1\\d*?[x]',
      `unicodé-密码-${hex(4)}`,
      `with spaces ${hex(4)} in it`,
      'x'.repeat(300),
    ];
    for (const v of values) registerSecret(v);
    for (const v of values) expect(redact(`<${v}>`)).toBe(`<${MASK}>`);
  });

  test('a registered value containing another registered value is masked whole', () => {
    const inner = `inner-${hex(6)}`;
    const outer = `OUTERPREFIX-${inner}-OUTERSUFFIX`;
    registerSecret(inner);
    registerSecret(outer);
    const out = redact(`got ${outer}`);
    expect(out).not.toContain('OUTERPREFIX');
    expect(out).not.toContain('OUTERSUFFIX');
  });

  test('short and empty values are not registered (they would mangle ordinary words)', () => {
    registerSecret('');
    registerSecret(undefined);
    registerSecret('secret7');
    expect(redact('the secret7 of the vault')).toBe('the secret7 of the vault');
  });
});

describe('ordinary text is left alone', () => {
  test.each([
    ['a GUID', 'app 3f1a2b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b'],
    ['a workspace host', 'https://adb-1234567890123456.7.azuredatabricks.net/api/2.0/token/list'],
    [
      'a vault secret id',
      'https://kv-prod.vault.azure.net/secrets/adf-databricks-pat/0f1e2d3c4b5a69788796a5b4c3d2e1f0',
    ],
    ['an ISO date', 'revoke after 2030-05-01T12:00:00.000Z'],
    ['a PAT token id (64 hex)', `token_id ${'0a1b2c3d'.repeat(8)}`],
    ['an SP secret id', `secret ${hex(16)} deleted`],
    ['a marker', 'kv-rotator:kv-prod/adf-databricks-pat:5b0c6f1e-8a44-4a4c-9f0e-2f1c3a7d9e01'],
    [
      'a Databricks error',
      'POST /api/2.0/token/delete → 404 RESOURCE_DOES_NOT_EXIST: No valid token with ID 12 found.',
    ],
    [
      'an AADSTS error',
      'AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID',
    ],
    ['words that start like credential prefixes', 'dapper doses of dapivorous eyJumping text'],
    ['a JSON field holding a non-string', '{"value":[],"secret":null,"password":42}'],
    ['a tag list', 'rotation-kind=databricks-pat, credential-id=abc, revoke-previous-after=2030-01-01'],
    ['prose about Basic authentication', 'Basic authentication is not supported for this API.'],
    [
      "Key Vault's challenge header",
      'WWW-Authenticate: Bearer authorization="https://login.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net"',
    ],
  ])('%s', (_name, text) => {
    expect(redact(text)).toBe(text);
  });
});

describe('redactError', () => {
  test('walks the causes and redacts each', () => {
    const pat = `dapi${hex(16)}`;
    const registered = `registered-${hex(8)}`;
    registerSecret(registered);
    const root = new Error(`connect failed with Authorization: Bearer ${pat}`);
    const middle = new TypeError(`wrapped ${registered}`, { cause: root });
    const top = new Error('rotation failed', { cause: middle });
    const out = redactError(top);
    expect(out).toBe(
      `Error: rotation failed <- TypeError: wrapped ${MASK} <- Error: connect failed with Authorization: Bearer ${MASK}`,
    );
  });

  test('handles thrown non-errors and cause cycles', () => {
    expect(redactError(`dapi${hex(16)} leaked`)).toBe(`${MASK} leaked`);
    expect(redactError(undefined)).toBe('');
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(redactError(b).split(' <- ').length).toBeLessThanOrEqual(5);
  });

  test('a non-error cause is included and redacted', () => {
    const sp = `dose${hex(16)}`;
    expect(redactError(new Error('outer', { cause: `body ${sp}` }))).toBe(`Error: outer <- body ${MASK}`);
  });
});

describe('the registry of handled values is bounded', () => {
  test('the newest 512 values are masked; older ones fall out (patterns still catch credential shapes)', () => {
    const values = Array.from({ length: 600 }, (_, i) => `handled-value-${i}-${'x'.repeat(8)}`);
    for (const v of values) registerSecret(v);
    expect(redact(`a ${values[599]} b`)).toBe('a [REDACTED] b');
    expect(redact(`a ${values[88]} b`)).toBe('a [REDACTED] b');
    expect(redact(`a ${values[87]} b`)).toBe(`a ${values[87]} b`);
    // Registering again makes a value newest, so one still in use is not dropped.
    registerSecret(values[87]);
    expect(redact(`a ${values[87]} b`)).toBe('a [REDACTED] b');
  });
});
