import { STORAGE, TAGS } from '../shared/constants';
import { redactError } from '../shared/redact';
import { ROTATORS } from '../shared/rotators';
import type { Finding } from '../shared/rotators/types';
import { assess } from '../shared/scan/assess';
import { workItemSchema, type WorkItem } from '../shared/work';
import type { Target } from './target';

export type SecretState =
  | 'healthy'
  | 'due'
  | 'expired'
  | 'in grace'
  | 'rotation in flight'
  | 'interrupted'
  | 'invalid tags'
  | 'disabled'
  | 'not opted in';

/** One secret's current version as the service sees it (list page: tags and expiry, never the value). */
export interface SecretRow {
  vault: string;
  secret: string;
  kind?: string;
  optedIn: boolean;
  enabled: boolean;
  expiresOn?: string;
  state: SecretState;
  findings?: Finding[];
  /** The scan's planned work for it, with reasons. */
  work: WorkItem[];
  /** The last work item of this secret in the poison queue (retries used up). */
  lastFailure?: string;
  tags: Record<string, string>;
}

export interface VaultListing {
  vault: string;
  secrets: SecretRow[];
  error?: string;
}

function stateOf(row: Omit<SecretRow, 'state'>, now: Date): SecretState {
  if (!row.optedIn) return 'not opted in';
  if (row.findings) return 'invalid tags';
  if (!row.enabled) return 'disabled';
  if (row.tags[TAGS.rotationStarted])
    return row.work.some((w) => w.op === 'reconcile') ? 'interrupted' : 'rotation in flight';
  const rotate = row.work.find((w) => w.op === 'rotate');
  if (rotate) return rotate.reason === 'expired' ? 'expired' : 'due';
  const after = row.tags[TAGS.revokePreviousAfter];
  if (row.tags[TAGS.previousCredentialId] && after && new Date(after) > now) return 'in grace';
  return 'healthy';
}

/** Work items in `rotation-requests-poison`, by `vault/secret` (the newest wins). */
export async function poisonedWork(target: Target): Promise<Map<string, WorkItem & { insertedOn?: Date }>> {
  const out = new Map<string, WorkItem & { insertedOn?: Date }>();
  const queue = target.queues.getQueueClient(`${STORAGE.rotationQueue}-poison`);
  if (!(await queue.exists())) return out;
  const peeked = await queue.peekMessages({ numberOfMessages: 32 });
  for (const m of peeked.peekedMessageItems) {
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8'));
    } catch {
      continue;
    }
    const item = workItemSchema.safeParse(body);
    if (item.success)
      out.set(`${item.data.vault}/${item.data.secret}`, { ...item.data, insertedOn: m.insertedOn });
  }
  return out;
}

/** Every secret of every configured vault, assessed with the scanner's own code. */
export async function listVaults(target: Target, now: Date, only?: string): Promise<VaultListing[]> {
  const { settings, services } = target;
  const poisoned = await poisonedWork(target).catch(
    () => new Map<string, WorkItem & { insertedOn?: Date }>(),
  );
  const names = services.vaults.names().filter((n) => !only || n.toLowerCase() === only.toLowerCase());
  return Promise.all(
    names.map(async (name): Promise<VaultListing> => {
      const vault = services.vaults.get(name);
      const secrets: SecretRow[] = [];
      try {
        for await (const props of vault.client.listPropertiesOfSecrets()) {
          const a = assess(vault.name, props, settings, ROTATORS, now);
          const tags = props.tags ?? {};
          const failure = poisoned.get(`${vault.name}/${props.name}`);
          const row: Omit<SecretRow, 'state'> = {
            vault: vault.name,
            secret: props.name,
            kind: a.kind ?? tags[TAGS.kind],
            optedIn: a.optedIn,
            enabled: props.enabled !== false,
            expiresOn: props.expiresOn?.toISOString(),
            findings: a.findings,
            work: a.work,
            lastFailure: failure
              ? `${failure.op} gave up after retries${failure.insertedOn ? ` (${failure.insertedOn.toISOString()})` : ''}`
              : undefined,
            tags,
          };
          secrets.push({ ...row, state: stateOf(row, now) });
        }
      } catch (e) {
        return { vault: vault.name, secrets, error: redactError(e) };
      }
      secrets.sort((x, y) => x.secret.localeCompare(y.secret));
      return { vault: vault.name, secrets };
    }),
  );
}
