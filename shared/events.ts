import { z } from 'zod';
import { PermanentError } from './errors';
import { isKeyVaultName } from './policy';

/**
 * A Key Vault secret event, from either envelope Event Grid delivers: the Event Grid schema
 * (`eventType`, `topic`) or CloudEvents 1.0 (`type`, `source`). `data` arrives PascalCase on the wire
 * (the typings say camelCase; the deserializer converts nothing), so both casings are read, as is a
 * key with stray whitespace ("ObjectName " appears in a public sample).
 */
export interface KeyVaultEvent {
  id: string;
  type: string;
  vaultName: string;
  secretName: string;
  version?: string;
  /** The secret id URL from `data.Id`, e.g. `https://{vault}.vault.azure.net/secrets/{name}/{version}`. */
  secretUrl?: string;
  /** Every field that names the vault, as the event gave it: `data.VaultName` and the topic/source. */
  vaultFields: { data?: string; topic?: string };
  exp?: Date;
}

const epoch = z
  .union([z.number(), z.string(), z.null()])
  .optional()
  .transform((v, ctx) => {
    if (v === null || v === undefined || v === '') return undefined;
    const n = typeof v === 'number' ? v : Number(v);
    if (Number.isFinite(n)) return new Date(n * 1000);
    const d = new Date(String(v));
    if (Number.isNaN(d.getTime())) {
      ctx.addIssue({ code: 'custom', message: `"${String(v)}" is neither unix seconds nor a date` });
      return z.NEVER;
    }
    return d;
  });

const dataSchema = z.object({
  id: z.string().optional(),
  vaultname: z.string().optional(),
  objecttype: z.string().optional(),
  objectname: z.string().optional(),
  version: z.string().optional(),
  nbf: epoch,
  exp: epoch,
});

const envelopeSchema = z.object({
  id: z.string().min(1, { error: 'the event has no id' }),
  eventType: z.string().optional(),
  type: z.string().optional(),
  topic: z.string().optional(),
  source: z.string().optional(),
  subject: z.string().optional(),
  data: z.record(z.string(), z.unknown(), { error: 'the event has no data object' }),
});

/** Lower-cases and trims keys, so `VaultName`, `vaultName` and `"VaultName "` read the same. */
function normaliseKeys(data: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k.trim().toLowerCase(), v]));
}

function describe(error: z.ZodError): string {
  return error.issues
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}

/** Parses one delivered event; anything malformed is a PermanentError that says what is wrong. */
export function parseKeyVaultEvent(input: unknown): KeyVaultEvent {
  const envelope = envelopeSchema.safeParse(input);
  if (!envelope.success) throw new PermanentError(`malformed event: ${describe(envelope.error)}`);
  const e = envelope.data;
  const type = e.eventType ?? e.type;
  if (!type) throw new PermanentError(`malformed event ${e.id}: neither eventType nor type is set`);
  const data = dataSchema.safeParse(normaliseKeys(e.data));
  if (!data.success) throw new PermanentError(`malformed event ${e.id}: data.${describe(data.error)}`);
  const d = data.data;
  // The topic/source ends with /vaults/{name}; data.VaultName should say the same.
  const topic = e.topic ?? e.source;
  const fromTopic = topic === undefined ? undefined : (/\/vaults\/([^/]+)\/?$/i.exec(topic)?.[1] ?? '');
  const vaultName = d.vaultname ?? fromTopic;
  const secretName = d.objectname ?? e.subject;
  if (!vaultName)
    throw new PermanentError(`malformed event ${e.id}: no vault name in data.VaultName or the topic`);
  if (!secretName)
    throw new PermanentError(`malformed event ${e.id}: no secret name in data.ObjectName or the subject`);
  // Names are checked before anything uses them (a lock blob, a URL, a notification).
  for (const [field, value] of [
    ['data.VaultName / topic', vaultName],
    ['data.ObjectName / subject', secretName],
  ] as const) {
    if (!isKeyVaultName(value))
      throw new PermanentError(
        `malformed event ${e.id}: ${field} ${JSON.stringify(value.slice(0, 64))} is not a Key Vault name`,
      );
  }
  if (d.objectname !== undefined && e.subject !== undefined && !sameName(d.objectname, e.subject))
    throw new PermanentError(
      `malformed event ${e.id}: data.ObjectName and the subject name different secrets`,
    );
  if (d.id !== undefined) {
    const fromId = secretOfId(d.id);
    if (fromId === undefined || !sameName(fromId, secretName))
      throw new PermanentError(`malformed event ${e.id}: data.Id does not name secret ${secretName}`);
  }
  if (d.objecttype && d.objecttype.toLowerCase() !== 'secret' && type.includes('.Secret')) {
    throw new PermanentError(`malformed event ${e.id}: ObjectType "${d.objecttype}" for a secret event`);
  }
  return {
    id: e.id,
    type,
    vaultName,
    secretName,
    version: d.version,
    secretUrl: d.id,
    vaultFields: { data: d.vaultname, topic: fromTopic },
    exp: d.exp,
  };
}

const sameName = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** The secret name in `https://{host}/secrets/{name}[/{version}]`, or undefined if it is not one. */
function secretOfId(id: string): string | undefined {
  let url: URL;
  try {
    url = new URL(id);
  } catch {
    return undefined;
  }
  const m = /^\/secrets\/([^/]+)(?:\/[0-9a-zA-Z]*)?\/?$/.exec(url.pathname);
  return url.protocol === 'https:' && m ? m[1] : undefined;
}

/** Key Vault's public DNS suffixes: the vault name is the first label of the host. */
const VAULT_SUFFIXES = [
  '.vault.azure.net',
  '.vault.azure.cn',
  '.vault.usgovcloudapi.net',
  '.vault.microsoftazure.de',
];

/**
 * The configured vault an event is about, acted on only when every field that names a vault agrees:
 * `data.VaultName`, the topic (or source), and the host of `data.Id` (a public vault host, or the
 * origin of a vault configured as `name=url`). An absent field is fine; a contradicting one rejects the
 * event. `resolve` is `Vaults.resolve`: a configured vault by name, or by the origin of a secret URL.
 */
export function eventVault(
  event: KeyVaultEvent,
  resolve: (name: string, secretUrl?: string) => string | undefined,
): { vault: string } | { unknown: string } | { contradiction: string } {
  const named: [string, string][] = [];
  if (event.vaultFields.data !== undefined) named.push(['data.VaultName', event.vaultFields.data]);
  if (event.vaultFields.topic !== undefined) named.push(['topic', event.vaultFields.topic]);
  if (event.secretUrl !== undefined) {
    const host = new URL(event.secretUrl).hostname.toLowerCase();
    const suffix = VAULT_SUFFIXES.find((s) => host.endsWith(s));
    const fromId = suffix ? host.slice(0, -suffix.length) : resolve('', event.secretUrl);
    named.push(['data.Id', fromId ?? `(${host}, not a configured vault)`]);
  }
  const [first, ...rest] = named;
  const other = rest.find(([, n]) => !sameName(n, first?.[1] ?? ''));
  if (first && other)
    return {
      contradiction: `${first[0]} names vault "${first[1].slice(0, 64)}" but ${other[0]} names "${other[1].slice(0, 64)}"`,
    };
  const vault = first ? resolve(first[1]) : undefined;
  return vault ? { vault } : { unknown: first?.[1] ?? '' };
}
