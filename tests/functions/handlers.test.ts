/**
 * The queue/Event Grid handlers, called directly as the Functions host would call them: a real
 * InvocationContext (test mode of @azure/functions), the demo tenant's app settings in process.env,
 * local Azure for the vaults and providers, the shared Azurite for the lock blobs. What the host would
 * do with the result (retry, write the output queues) is read from the context: a thrown error means
 * "retry", `extraOutputs` are the messages the host would enqueue. No queue is read or written here.
 *
 * Every rotation uses its own secret (a PAT seeded under a unique name), so no test depends on another
 * and none shares a lock blob with tests/e2e/cycle.test.ts.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { InvocationContext, type EventGridEvent, type LogLevel } from '@azure/functions';
import { BlobServiceClient } from '@azure/storage-blob';
import { DEMO_SECRETS, DEMO_VAULTS, seedDemo, seedDemoPat, type Demo } from '../../local/demo';
import { notificationPoisonQueue, notificationQueue, rotationPoisonQueue } from '../../functions/common';
import { onKeyVaultEvent } from '../../functions/onKeyVaultEvent';
import { rotateSecret } from '../../functions/rotateSecret';
import { scanVault } from '../../functions/scanVault';
import { sendNotifications } from '../../functions/sendNotifications';
import { BlobLeaseLocks } from '../../shared/clients/lock';
import { MAX_DEQUEUE_COUNT, STORAGE, TAGS } from '../../shared/constants';
import { TransientError } from '../../shared/errors';
import { verifySignature } from '../../shared/notifications/channels/webhook';
import { notification } from '../../shared/notifications/notification';
import type { NotificationMessage } from '../../shared/notifications/routing';
import {
  captureOutput,
  findLeaks,
  vaultValues,
  type KnownValue,
  type OutputCapture,
} from '../support/capture';
import { useLocalAzure } from '../support/localAzure';
import { readInfra } from '../infra/bicep';
import { alertQueries, eventFilter, eventsInLog, type CapturedEvent } from '../infra/kql';

const DAY_MS = 86_400_000;
const NEAR_EXPIRY = 'Microsoft.KeyVault.SecretNearExpiry';
/** NOTIFY_DEFAULT_CHANNELS of the demo, in routing order. */
const CHANNELS = ['teams', 'webhook', 'email', 'eventgrid'];
const PAT_CREATE = { service: 'databricks', method: 'POST', route: '/api/2.0/token/create' } as const;

const azure = useLocalAzure();
let demo: Demo;
let workspace: string;
let console_: OutputCapture;
const savedEnv: Record<string, string | undefined> = {};

/** Everything the handlers printed, returned or threw, for the leak check at the end. */
const outputs: { where: string; text: string }[] = [];

interface Run {
  context: InvocationContext;
  logs: { level: LogLevel; line: string }[];
  /** What the handler threw (the host would retry), or undefined when it completed. */
  error?: unknown;
  /** `notifications` output binding (undefined when never set). */
  notices?: NotificationMessage[];
  /** `rotation-requests-poison` output binding. */
  poison?: unknown[];
}

type Handler = (input: never, context: InvocationContext) => Promise<void>;

/** Invokes a handler as the host would: a fresh context per invocation, logs captured. */
async function invoke(
  handler: Handler,
  functionName: string,
  input: unknown,
  dequeueCount = 1,
): Promise<Run> {
  const logs: Run['logs'] = [];
  const context = new InvocationContext({
    invocationId: randomUUID(),
    functionName,
    triggerMetadata: { dequeueCount },
    logHandler: (level, ...args) =>
      logs.push({ level, line: args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ') }),
  });
  let error: unknown;
  try {
    await handler(input as never, context);
  } catch (e) {
    error = e;
  }
  const run: Run = {
    context,
    logs,
    error,
    notices: context.extraOutputs.get(notificationQueue) as NotificationMessage[] | undefined,
    poison: context.extraOutputs.get(rotationPoisonQueue) as unknown[] | undefined,
  };
  const where = `${functionName} ${context.invocationId}`;
  logs.forEach((l, i) => outputs.push({ where: `${where} log ${i}`, text: l.line }));
  outputs.push({ where: `${where} outputs`, text: JSON.stringify([run.notices, run.poison]) });
  if (error) outputs.push({ where: `${where} error`, text: `${String(error)} ${(error as Error).stack}` });
  return run;
}

const event = (e: unknown) => invoke(onKeyVaultEvent as Handler, 'onKeyVaultEvent', e as EventGridEvent);
const work = (m: unknown, dequeueCount = 1) =>
  invoke(rotateSecret as Handler, 'rotateSecret', m, dequeueCount);
const send = (m: unknown, dequeueCount = 1) =>
  invoke(sendNotifications as Handler, 'sendNotifications', m, dequeueCount);

const lines = (run: Run, level?: LogLevel) =>
  run.logs.filter((l) => level === undefined || l.level === level).map((l) => l.line);
/** The telemetry line of a custom event, e.g. `[SecretRotated] vault=… secret=…`. */
const eventLine = (run: Run, name: string) => lines(run).find((l) => l.startsWith(`[${name}]`));

/** The event alerts of infra/app/monitoring.bicep, their row filters read from the deployed query text. */
const EVENT_ALERTS = Object.fromEntries(
  alertQueries(readInfra('app/monitoring.bicep'))
    .filter((q) => ['rotationFailedAlert', 'poisonedAlert'].includes(q.id.slice('alert:'.length)))
    .map((q) => [q.id.slice('alert:'.length), eventFilter(q.text)]),
) as Record<'rotationFailedAlert' | 'poisonedAlert', (e: CapturedEvent) => boolean>;
/** The events of a run that the alert rule would count (each one alert: the rules are stateless). */
const alerted = (run: Run, rule: keyof typeof EVENT_ALERTS) =>
  eventsInLog(lines(run))
    .filter(EVENT_ALERTS[rule])
    .map((e) => e.dimensions);

const versions = (vault: string, secret: string) =>
  azure().state.vaults.get(vault)?.secrets.get(secret) ?? [];
const current = (vault: string, secret: string) => versions(vault, secret).at(-1);
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
/**
 * Every version of every secret, with its tags: "nothing changed in the vault" compares two of these.
 * Values are hashed, so a failing comparison does not print them.
 */
const vaultSnapshot = () =>
  JSON.stringify(
    [...azure().state.vaults.values()].map((v) => [
      v.name,
      [...v.secrets.entries()].map(([name, vs]) => [
        name,
        vs.map((x) => [x.version, sha256(x.value), x.tags]),
      ]),
    ]),
  );
const tokens = () => azure().state.workspaces.get(workspace)?.tokens ?? [];

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

interface SeededPat {
  vault: string;
  name: string;
  tokenId: string;
  version: string;
  exp: number;
}

/**
 * A PAT owned by the demo's data engineer, stored as an opted-in secret due for rotation (20 days to
 * expiry, inside the 30-day window), under a name no other test uses.
 */
async function seedPat(tags: Record<string, string> = {}): Promise<SeededPat> {
  const vault = DEMO_VAULTS.dataPlatform;
  const name = `hx-pat-${hex(4)}`;
  const { tokenId, exp } = await seedDemoPat(azure(), demo, { vault, name, expiresInDays: 20, tags });
  return { vault, name, tokenId, version: current(vault, name)!.version, exp };
}

/** A Key Vault event in the Event Grid schema, exactly as Key Vault publishes it (PascalCase data). */
function gridEvent(
  s: { vault: string; name: string; version: string; exp?: number },
  options: { type?: string; vaultName?: string; vaultUrl?: string } = {},
) {
  const vaultName = options.vaultName ?? s.vault;
  const vaultUrl = options.vaultUrl ?? demo.vaultUrls[s.vault];
  return {
    id: randomUUID(),
    topic: `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local-rg/providers/Microsoft.KeyVault/vaults/${vaultName}`,
    subject: s.name,
    eventType: options.type ?? NEAR_EXPIRY,
    eventTime: new Date().toISOString(),
    data: {
      Id: `${vaultUrl}/secrets/${s.name}/${s.version}`,
      VaultName: vaultName,
      ObjectType: 'Secret',
      ObjectName: s.name,
      Version: s.version,
      NBF: null,
      EXP: s.exp ?? null,
    },
    dataVersion: '1',
    metadataVersion: '1',
  };
}

type GridEvent = ReturnType<typeof gridEvent>;

/** The same event as CloudEvents 1.0 (what a CloudEventSchemaV1_0 subscription delivers). */
const toCloudEvent = (e: GridEvent) => ({
  specversion: '1.0',
  id: e.id,
  source: e.topic,
  subject: e.subject,
  type: e.eventType,
  time: e.eventTime,
  datacontenttype: 'application/json',
  data: e.data,
});

/** camelCase data keys (as the SDK typings describe them) and EXP as a string. */
const camelCaseData = (d: GridEvent['data']) => ({
  id: d.Id,
  vaultName: d.VaultName,
  objectType: d.ObjectType,
  objectName: d.ObjectName,
  version: d.Version,
  nbf: d.NBF,
  exp: String(d.EXP),
});

beforeAll(async () => {
  const storage = process.env.AZURITE_CONNECTION_STRING;
  if (!storage) throw new Error('AZURITE_CONNECTION_STRING is not set (tests/support/globalSetup.ts)');
  demo = await seedDemo(azure(), { storage });
  workspace = [...azure().state.workspaces.values()].find((w) => w.url === demo.workspaceUrl)!.name;
  // The app settings, set before the first handler call: getRuntime() reads them once per process.
  for (const [key, value] of Object.entries(demo.env)) {
    savedEnv[key] = process.env[key];
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  // Whatever reaches the console (the SDKs, the emulator) is checked for leaks too, and not printed.
  console_ = captureOutput();
}, 60_000);

afterEach(() => azure().servers.faults.clear());

afterAll(() => {
  console_?.stop();
  for (const [key, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

describe('onKeyVaultEvent', () => {
  test.each([
    ['no data', { id: 'e1', eventType: NEAR_EXPIRY, subject: 'x' }, /no data object/],
    ['garbage', 'not an event', /expected object, received string/],
    ['null', null, /expected object, received null/],
    ['no id', { eventType: NEAR_EXPIRY, data: {} }, /\bid: /],
    [
      'an EXP that is no date',
      {
        id: 'e4',
        eventType: NEAR_EXPIRY,
        data: { VaultName: DEMO_VAULTS.dataPlatform, ObjectName: DEMO_SECRETS.pat.name, EXP: 'soon' },
      },
      /"soon" is neither unix seconds nor a date/,
    ],
    [
      'no secret name',
      { id: 'e5', eventType: NEAR_EXPIRY, data: { VaultName: DEMO_VAULTS.dataPlatform } },
      /no secret name/,
    ],
  ])('a malformed event (%s) completes with an error line that says what is wrong', async (_, input, why) => {
    const before = vaultSnapshot();
    const run = await event(input);
    expect(run.error).toBeUndefined();
    const errors = lines(run, 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/ignored a malformed event/);
    expect(errors[0]).toMatch(why);
    // The poison alert sees it: one MessagePoisoned event, cause malformed.
    expect(alerted(run, 'poisonedAlert')).toEqual([
      expect.objectContaining({
        queue: 'event-grid',
        poisonQueue: 'dropped',
        cause: 'malformed',
        invocationId: run.context.invocationId,
      }),
    ]);
    expect(run.notices).toBeUndefined();
    expect(vaultSnapshot()).toBe(before);
  });

  test('an event from a vault that is not in KEY_VAULT_URIS is ignored with a warning', async () => {
    const pat = await seedPat();
    const before = vaultSnapshot();
    // The secret exists (and is due) in a configured vault under the same name: it must not be touched.
    const run = await event(
      gridEvent(pat, { vaultName: 'kv-elsewhere', vaultUrl: 'https://kv-elsewhere.vault.azure.net' }),
    );
    expect(run.error).toBeUndefined();
    expect(lines(run, 'warning')).toEqual([expect.stringMatching(/not configured/)]);
    expect(lines(run, 'warning')[0]).toMatch(/vault=kv-elsewhere/);
    expect(run.notices).toBeUndefined();
    expect(vaultSnapshot()).toBe(before);
  });

  test('an event whose VaultName says not-ours but whose data.Id is a configured vault is rejected (attack 10)', async () => {
    const pat = await seedPat();
    const before = vaultSnapshot();
    const forged = gridEvent(pat, { vaultName: 'not-ours' });
    const run = await event(forged);
    expect(run.error).toBeUndefined();
    expect(lines(run, 'error')).toEqual([
      expect.stringMatching(
        new RegExp(`rejected event ${forged.id}: data.VaultName names vault "not-ours" but`),
      ),
    ]);
    expect(current(pat.vault, pat.name)!.version).toBe(pat.version);
    expect(run.notices ?? []).toEqual([]);
    expect(vaultSnapshot()).toBe(before);
  }, 60_000);

  test('SecretNewVersionCreated is ignored (info), nothing is rotated', async () => {
    const pat = await seedPat();
    const before = vaultSnapshot();
    const run = await event(gridEvent(pat, { type: 'Microsoft.KeyVault.SecretNewVersionCreated' }));
    expect(run.error).toBeUndefined();
    expect(lines(run, 'information')).toEqual([
      expect.stringMatching(/ignored an event type .*eventType=Microsoft\.KeyVault\.SecretNewVersionCreated/),
    ]);
    expect(run.notices).toBeUndefined();
    expect(vaultSnapshot()).toBe(before);
  });

  test('a secret that is not opted in is skipped: no notification, the vault version unchanged', async () => {
    const { vault, name } = DEMO_SECRETS.notOptedIn;
    const s = current(vault, name)!;
    const before = vaultSnapshot();
    const run = await event(gridEvent({ vault, name, version: s.version, exp: s.exp }));
    expect(run.error).toBeUndefined();
    expect(eventLine(run, 'SecretRotationSkipped')).toMatch(/not opted in/);
    expect(run.notices ?? []).toEqual([]);
    expect(vaultSnapshot()).toBe(before);
  });

  const envelopes: [string, (e: GridEvent) => unknown][] = [
    ['Event Grid schema, PascalCase data', (e) => e],
    ['Event Grid schema, camelCase data, EXP as a string', (e) => ({ ...e, data: camelCaseData(e.data) })],
    ['CloudEvents, PascalCase data', (e) => toCloudEvent(e)],
    [
      'CloudEvents, camelCase data, EXP as a string',
      (e) => ({ ...toCloudEvent(e), data: camelCaseData(e.data) }),
    ],
  ];

  test.each(envelopes)(
    'SecretNearExpiry (%s) rotates the secret and notifies every configured channel',
    async (_, envelope) => {
      const pat = await seedPat();
      const run = await event(envelope(gridEvent(pat)));
      expect(run.error).toBeUndefined();
      const latest = current(pat.vault, pat.name)!;
      expect(latest.version).not.toBe(pat.version);
      expect(latest.tags[TAGS.previousCredentialId]).toBe(pat.tokenId);
      expect(latest.tags[TAGS.credentialId]).not.toBe(pat.tokenId);
      expect(tokens().some((t) => t.tokenId === latest.tags[TAGS.credentialId])).toBe(true);
      expect(run.notices?.map((m) => m.channel)).toEqual(CHANNELS);
      for (const m of run.notices ?? [])
        expect(m.notification).toMatchObject({ kind: 'rotated', vault: pat.vault, secret: pat.name });
      expect(eventLine(run, 'SecretRotated')).toMatch(/trigger=event/);
    },
    60_000,
  );

  test('the same event delivered again is skipped: no new version, no notification', async () => {
    const pat = await seedPat();
    const e = gridEvent(pat);
    const first = await event(e);
    expect(first.error).toBeUndefined();
    expect(first.notices).toHaveLength(CHANNELS.length);
    const rotated = current(pat.vault, pat.name)!.version;
    const tokenCount = tokens().length;

    const again = await event(e);
    expect(again.error).toBeUndefined();
    expect(eventLine(again, 'SecretRotationSkipped')).toMatch(/not due/);
    expect(again.notices ?? []).toEqual([]);
    expect(current(pat.vault, pat.name)!.version).toBe(rotated);
    expect(versions(pat.vault, pat.name)).toHaveLength(2);
    expect(tokens()).toHaveLength(tokenCount);
  }, 60_000);

  test('a transient failure (PAT create answers 500) throws so Event Grid retries; no notification', async () => {
    const pat = await seedPat();
    const tokenCount = tokens().length;
    azure().servers.faults.add({ ...PAT_CREATE, status: 500 });
    const run = await event(gridEvent(pat));
    expect(run.error).toBeInstanceOf(TransientError);
    expect(String((run.error as Error).message)).toMatch(/failed at create; Event Grid will retry/);
    expect(run.notices).toBeUndefined();
    expect(eventLine(run, 'SecretRotationFailed')).toMatch(/step=create .*transient=true/);
    // Event Grid redelivers it: not final, so no alert; the provider's own status is on the event.
    expect(eventLine(run, 'SecretRotationFailed')).toMatch(/final=false/);
    expect(eventLine(run, 'SecretRotationFailed')).toMatch(/errorStatus=500\b/);
    expect(alerted(run, 'rotationFailedAlert')).toEqual([]);
    expect(versions(pat.vault, pat.name).map((v) => v.version)).toEqual([pat.version]);
    expect(tokens()).toHaveLength(tokenCount);
  }, 60_000);

  test('a permanent failure (bad tags) completes with a rotation-failed notification', async () => {
    const { vault, name } = DEMO_SECRETS.badTag;
    const s = current(vault, name)!;
    const run = await event(gridEvent({ vault, name, version: s.version, exp: s.exp }));
    expect(run.error).toBeUndefined();
    expect(run.notices?.map((m) => m.channel)).toEqual(CHANNELS);
    for (const m of run.notices ?? []) {
      expect(m.notification).toMatchObject({ kind: 'rotation-failed', vault, secret: name });
      expect(m.notification.details).toMatchObject({ step: 'policy', transient: false });
      expect(String(m.notification.details.reason)).toMatch(/rotation-validity-days/);
    }
    // Permanent: final, one rotation-failed alert for this secret.
    expect(alerted(run, 'rotationFailedAlert')).toEqual([
      expect.objectContaining({ vault, secret: name, final: 'true', trigger: 'event' }),
    ]);
    expect(versions(vault, name).map((v) => v.version)).toEqual([s.version]);
  }, 60_000);
});

describe('rotateSecret', () => {
  test.each([
    ['not an object', 'rotate kv-data-platform/adf-databricks-pat', /message: /],
    ['an unknown op', { op: 'explode', vault: DEMO_VAULTS.dataPlatform, secret: 'x' }, /op: /],
    [
      'a bad secret name',
      { op: 'rotate', vault: DEMO_VAULTS.dataPlatform, secret: '../etc' },
      /secret: expected a Key Vault secret name/,
    ],
    ['an unknown field', { op: 'rotate', vault: DEMO_VAULTS.dataPlatform, secret: 'x', evil: true }, /evil/],
  ])('a malformed message (%s) goes to the poison queue output at once', async (_, message, why) => {
    const before = vaultSnapshot();
    const run = await work(message);
    expect(run.error).toBeUndefined();
    expect(run.poison).toEqual([message]);
    const errors = lines(run, 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(`malformed rotation request moved to ${STORAGE.rotationQueue}-poison`);
    expect(errors[0]).toMatch(why);
    // The poison alert sees it: one MessagePoisoned event, cause malformed.
    expect(alerted(run, 'poisonedAlert')).toEqual([
      expect.objectContaining({
        queue: STORAGE.rotationQueue,
        poisonQueue: `${STORAGE.rotationQueue}-poison`,
        cause: 'malformed',
        invocationId: run.context.invocationId,
      }),
    ]);
    expect(run.notices).toBeUndefined();
    expect(vaultSnapshot()).toBe(before);
  });

  test('a transient failure throws on attempt 1 (no notice) and is parked with a notice on the last', async () => {
    const pat = await seedPat();
    const item = { op: 'rotate', vault: pat.vault, secret: pat.name, reason: 'due' };
    azure().servers.faults.add({ ...PAT_CREATE, status: 500 });

    const first = await work(item, 1);
    expect(first.error).toBeInstanceOf(TransientError);
    expect(String((first.error as Error).message)).toMatch(`attempt 1 of ${MAX_DEQUEUE_COUNT}`);
    expect(first.notices).toBeUndefined();
    expect(first.poison).toBeUndefined();
    const firstLine = eventLine(first, 'SecretRotationFailed');
    expect(firstLine).toMatch(/transient=true/);
    expect(firstLine).toMatch(/attempt=1\b/);
    expect(firstLine).not.toMatch(/poisoned=/);
    // Retried by the queue: neither alert hears of attempt 1.
    expect(alerted(first, 'rotationFailedAlert')).toEqual([]);
    expect(alerted(first, 'poisonedAlert')).toEqual([]);

    const last = await work(item, MAX_DEQUEUE_COUNT);
    expect(last.error).toBeUndefined();
    expect(last.poison).toEqual([item]);
    expect(last.notices?.map((m) => m.channel)).toEqual(CHANNELS);
    for (const m of last.notices ?? []) {
      expect(m.notification).toMatchObject({ kind: 'rotation-failed', vault: pat.vault, secret: pat.name });
      expect(m.notification.details).toMatchObject({ step: 'create', transient: true });
    }
    const lastLine = eventLine(last, 'SecretRotationFailed');
    expect(lastLine).toMatch(/poisoned=true/);
    expect(lastLine).toMatch(new RegExp(`attempt=${MAX_DEQUEUE_COUNT}\\b`));
    // Retries used up: final (one rotation-failed alert) and poisoned (one poison alert).
    expect(alerted(last, 'rotationFailedAlert')).toEqual([
      expect.objectContaining({ vault: pat.vault, secret: pat.name, final: 'true', errorStatus: '500' }),
    ]);
    expect(alerted(last, 'poisonedAlert')).toEqual([
      expect.objectContaining({ vault: pat.vault, secret: pat.name, cause: 'retries-exhausted' }),
    ]);
    expect(versions(pat.vault, pat.name).map((v) => v.version)).toEqual([pat.version]);
  }, 60_000);

  test('a secret whose lock another worker holds is retried by the queue, not dropped', async () => {
    const pat = await seedPat();
    const item = { op: 'rotate', vault: pat.vault, secret: pat.name, reason: 'due' };
    // The other worker: one that is rotating this secret now, or that died holding the lease.
    const locks = new BlobLeaseLocks(
      BlobServiceClient.fromConnectionString(process.env.AzureWebJobsStorage!).getContainerClient(
        STORAGE.lockContainer,
      ),
    );
    const held = await locks.acquire(`${pat.vault}/${pat.name}`);
    expect(held).toBeDefined();
    try {
      const first = await work(item, 1);
      // Thrown: the queue delivers it again after its delay. Not a failure: no alert, no notice.
      expect(first.error).toBeInstanceOf(TransientError);
      expect(String((first.error as Error).message)).toMatch(/waits for the lock \(attempt 1 of /);
      expect(eventLine(first, 'SecretRotationSkipped')).toMatch(/holds the lock/);
      expect(eventLine(first, 'SecretRotationFailed')).toBeUndefined();
      expect(first.notices ?? []).toEqual([]);
      expect(first.poison).toBeUndefined();
      // On the last delivery it is done (skipped), not poisoned: the holder is alive after all that time.
      const last = await work(item, MAX_DEQUEUE_COUNT);
      expect(last.error).toBeUndefined();
      expect(last.poison).toBeUndefined();
    } finally {
      await held?.release();
    }
    expect(versions(pat.vault, pat.name).map((v) => v.version)).toEqual([pat.version]);
    // The lock is free: the next delivery rotates.
    const retry = await work(item, 2);
    expect(retry.error).toBeUndefined();
    expect(eventLine(retry, 'SecretRotated')).toBeDefined();
    expect(versions(pat.vault, pat.name)).toHaveLength(2);
  }, 60_000);

  test('a dry-run request plans and changes nothing', async () => {
    const pat = await seedPat();
    const tokenCount = tokens().length;
    const before = vaultSnapshot();
    const run = await work({ op: 'rotate', vault: pat.vault, secret: pat.name, dryRun: true });
    expect(run.error).toBeUndefined();
    expect(eventLine(run, 'SecretRotationPlanned')).toMatch(/outcome=planned/);
    expect(run.notices ?? []).toEqual([]);
    expect(run.poison).toBeUndefined();
    expect(vaultSnapshot()).toBe(before);
    expect(tokens()).toHaveLength(tokenCount);
  });

  test("the outcome event carries the message's reason (why the scan planned it)", async () => {
    const pat = await seedPat();
    const rotated = await work({
      op: 'rotate',
      vault: pat.vault,
      secret: pat.name,
      reason: 'planned-for-hx',
    });
    expect(rotated.error).toBeUndefined();
    expect(eventLine(rotated, 'SecretRotated')).toMatch(/=planned-for-hx\b/);
    // A skipped outcome has its own reason (why it was skipped); the message's must survive beside it.
    const skipped = await work({
      op: 'revoke-previous',
      vault: pat.vault,
      secret: pat.name,
      reason: 'revoke-for-hx',
    });
    const line = eventLine(skipped, 'SecretRotationSkipped');
    expect(line).toMatch(/grace period/);
    expect(line).toMatch(/=revoke-for-hx\b/);
  });

  test('revoke-previous after a rotation whose grace period is over revokes the previous PAT', async () => {
    const pat = await seedPat({ [TAGS.graceHours]: '0' });
    const rotated = await work({ op: 'rotate', vault: pat.vault, secret: pat.name, reason: 'due' });
    expect(rotated.error).toBeUndefined();
    expect(eventLine(rotated, 'SecretRotated')).toBeDefined();
    expect(current(pat.vault, pat.name)!.tags[TAGS.previousCredentialId]).toBe(pat.tokenId);
    expect(tokens().some((t) => t.tokenId === pat.tokenId)).toBe(true);

    const run = await work({
      op: 'revoke-previous',
      vault: pat.vault,
      secret: pat.name,
      reason: 'grace-period-over',
    });
    expect(run.error).toBeUndefined();
    expect(eventLine(run, 'PreviousCredentialRevoked')).toMatch(/outcome=revoked/);
    expect(tokens().some((t) => t.tokenId === pat.tokenId)).toBe(false);
    const latest = current(pat.vault, pat.name)!;
    expect(latest.tags[TAGS.previousCredentialId]).toBeUndefined();
    expect(latest.tags[TAGS.revokePreviousAfter]).toBeUndefined();
    expect(run.notices?.map((m) => m.channel)).toEqual(CHANNELS);
    for (const m of run.notices ?? [])
      expect(m.notification).toMatchObject({
        kind: 'previous-revoked',
        details: expect.objectContaining({ credentialId: pat.tokenId }),
      });
  }, 60_000);

  test('revoke-previous during the grace period is skipped and the previous PAT keeps working', async () => {
    const pat = await seedPat(); // default grace: 24 h
    const rotated = await work({ op: 'rotate', vault: pat.vault, secret: pat.name });
    expect(rotated.error).toBeUndefined();
    const run = await work({ op: 'revoke-previous', vault: pat.vault, secret: pat.name });
    expect(run.error).toBeUndefined();
    expect(eventLine(run, 'SecretRotationSkipped')).toMatch(/grace period/);
    expect(run.notices ?? []).toEqual([]);
    expect(tokens().some((t) => t.tokenId === pat.tokenId)).toBe(true);
    expect(current(pat.vault, pat.name)!.tags[TAGS.previousCredentialId]).toBe(pat.tokenId);
  }, 60_000);
});

describe('sendNotifications', () => {
  const message = (channel: string): NotificationMessage =>
    JSON.parse(
      JSON.stringify({
        notification: notification(
          'rotated',
          { vault: DEMO_VAULTS.dataPlatform, secret: `hx-notice-${hex(4)}` },
          { credentialId: '1234', newExpiry: new Date(Date.now() + 90 * DAY_MS).toISOString() },
          new Date(),
        ),
        channel,
      }),
    ) as NotificationMessage;
  const delivered = (id: string) =>
    azure()
      .sink.forChannel('webhook')
      .filter((d) => (d.body as { notification?: { id?: string } }).notification?.id === id);

  test('a valid webhook message is delivered, signed, to the sink', async () => {
    const m = message('webhook');
    const run = await send(m);
    expect(run.error).toBeUndefined();
    const got = delivered(m.notification.id);
    expect(got).toHaveLength(1);
    expect((got[0]!.body as { notification: unknown }).notification).toMatchObject({
      kind: 'rotated',
      secret: m.notification.secret,
    });
    expect(verifySignature(got[0]!.rawBody, got[0]!.headers, demo.env.WEBHOOK_SIGNING_KEY as string)).toEqual(
      {
        ok: true,
        timestamp: expect.any(Number),
      },
    );
    expect(eventLine(run, 'NotificationSent')).toMatch(/channel=webhook .*outcome=sent/);
  });

  test.each([
    ['garbage', 'not a notification'],
    ['an unknown channel', { ...message('webhook'), channel: 'pigeon' }],
    ['no notification', { channel: 'webhook' }],
  ])(
    'a malformed message (%s) is parked in notifications-poison: NotificationFailed, MessagePoisoned',
    async (_, m) => {
      const sinkBefore = azure().sink.deliveries.length;
      const run = await send(m);
      expect(run.error).toBeUndefined();
      const line = eventLine(run, 'NotificationFailed');
      expect(line).toMatch(/transient=false/);
      expect(line).toMatch(/final=true/);
      expect(line).toMatch(/malformed notification message/);
      expect(run.context.extraOutputs.get(notificationPoisonQueue)).toEqual([m]);
      expect(alerted(run, 'poisonedAlert')).toEqual([
        expect.objectContaining({ poisonQueue: `${STORAGE.notificationQueue}-poison`, cause: 'malformed' }),
      ]);
      expect(azure().sink.deliveries.length).toBe(sinkBefore);
    },
  );

  test('a sink answering 503 throws (transient); the last attempt says poisoned=true', async () => {
    azure().servers.faults.add({ service: 'sink', method: 'POST', route: '/sink/:channel', status: 503 });
    const m = message('webhook');

    const first = await send(m, 1);
    expect(first.error).toBeInstanceOf(TransientError);
    const firstLine = eventLine(first, 'NotificationFailed');
    expect(firstLine).toMatch(/transient=true/);
    expect(firstLine).toMatch(/poisoned=false/);
    expect(firstLine).toMatch(/HTTP 503/);
    expect(firstLine).toMatch(/final=false/);
    expect(alerted(first, 'poisonedAlert')).toEqual([]);

    const last = await send(m, MAX_DEQUEUE_COUNT);
    expect(last.error).toBeInstanceOf(TransientError);
    const lastLine = eventLine(last, 'NotificationFailed');
    expect(lastLine).toMatch(/transient=true/);
    expect(lastLine).toMatch(/poisoned=true/);
    expect(lastLine).toMatch(new RegExp(`attempt=${MAX_DEQUEUE_COUNT}\\b`));
    // The host moves it to notifications-poison after this throw: the poison alert hears of it now.
    expect(alerted(last, 'poisonedAlert')).toEqual([
      expect.objectContaining({
        channel: 'webhook',
        cause: 'retries-exhausted',
        poisonQueue: `${STORAGE.notificationQueue}-poison`,
      }),
    ]);
    expect(delivered(m.notification.id)).toEqual([]);
  });
});

describe('scanVault', () => {
  test.each([
    ['not an object', 'kv-apps', /message: /],
    ['a vault that is not configured', { vault: 'kv-elsewhere' }, /"kv-elsewhere" is not configured/],
    ['an unknown field', { vault: DEMO_VAULTS.apps, evil: true }, /evil/],
  ])('a bad request (%s) is reported and completes: nothing is scanned or enqueued', async (_, m, why) => {
    azure().servers.counts.reset();
    const run = await invoke(scanVault as Handler, 'scanVault', m);
    expect(run.error).toBeUndefined();
    expect(lines(run, 'error')).toEqual([expect.stringMatching(why)]);
    expect(eventLine(run, 'ScanCompleted')).toBeUndefined();
    const kv = Object.keys(azure().servers.counts.snapshot()).filter((l) => l.startsWith('keyvault/'));
    expect(kv).toEqual([]);
  });
});

test('no secret value appears in any log line, output, thrown error or console output', () => {
  const known: KnownValue[] = [
    ...Object.entries(demo.initial).map(([k, value]) => ({ value, source: `demo initial ${k}` })),
    { value: demo.reader.secret, source: 'demo reader secret' },
    { value: demo.env.WEBHOOK_SIGNING_KEY as string, source: 'WEBHOOK_SIGNING_KEY' },
    ...vaultValues(azure()),
  ];
  // Many rotations happened: the vault holds the seeded values and every new one.
  expect(known.length).toBeGreaterThan(20);
  expect(outputs.length).toBeGreaterThan(50);
  const all = [...outputs, ...console_.lines.map((text, i) => ({ where: `console ${i}`, text }))];
  expect(findLeaks(all, known)).toEqual([]);
});
