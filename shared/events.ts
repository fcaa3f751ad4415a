import { z } from 'zod';
import { PermanentError } from './errors';

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
  const fromTopic = /\/vaults\/([^/]+)\/?$/i.exec(e.topic ?? e.source ?? '')?.[1];
  const vaultName = d.vaultname ?? fromTopic;
  const secretName = d.objectname ?? e.subject;
  if (!vaultName)
    throw new PermanentError(`malformed event ${e.id}: no vault name in data.VaultName or the topic`);
  if (!secretName)
    throw new PermanentError(`malformed event ${e.id}: no secret name in data.ObjectName or the subject`);
  if (d.objecttype && d.objecttype.toLowerCase() !== 'secret' && type.includes('.Secret')) {
    throw new PermanentError(`malformed event ${e.id}: ObjectType "${d.objecttype}" for a secret event`);
  }
  return { id: e.id, type, vaultName, secretName, version: d.version, secretUrl: d.id, exp: d.exp };
}
