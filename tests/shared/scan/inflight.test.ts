import { randomBytes, randomUUID } from 'node:crypto';
import { BlobServiceClient } from '@azure/storage-blob';
import { Announcements } from '../../../shared/announcements';
import { BlobNotices } from '../../../shared/clients/notices';
import { BlobRecords } from '../../../shared/clients/records';
import { TAGS } from '../../../shared/constants';
import { Failures } from '../../../shared/failures';
import { InFlight } from '../../../shared/inflight';
import type { Outcome } from '../../../shared/rotation/engine';
import { ROTATORS } from '../../../shared/rotators';
import type { Notification } from '../../../shared/notifications/notification';
import { Scanner, type ScanOutput } from '../../../shared/scan/scanner';
import type { WorkItem } from '../../../shared/work';
import { createTelemetry } from '../../../shared/telemetry/telemetry';
import { useLocalAzure } from '../../support/localAzure';
import { createEngine, SECRETS, seedTenant, type Tenant } from '../../support/tenant';

/**
 * The scan's durable records on Azurite: work in flight is not enqueued twice, a rotation stored but
 * never announced is announced once, "rotation has not succeeded yet" waits for a failed rotation, and
 * a rotation that keeps failing transiently is told after a bounded time.
 */
const azure = useLocalAzure();

const container = () =>
  BlobServiceClient.fromConnectionString(process.env.AZURITE_CONNECTION_STRING!).getContainerClient(
    `records-${randomBytes(4).toString('hex')}`,
  );

function parts(tenant: Tenant, options: { clock?: () => number } = {}) {
  const c = container();
  const now = options.clock ?? (() => azure().clock.now());
  const inflight = new InFlight(new BlobRecords(c, 'inflight', now));
  const failures = new Failures(new BlobRecords(c, 'failing', now), 60 * 60_000, now);
  const announcements = new Announcements(new BlobRecords(c, 'announced', now), tenant.settings, ROTATORS);
  const { vaults } = createEngine(tenant);
  const scanner = new Scanner({
    settings: tenant.settings,
    vaults,
    rotators: ROTATORS,
    notices: new BlobNotices(c),
    now: () => new Date(now()),
    inflight,
    announcements,
    failures,
  });
  const telemetry = createTelemetry(tenant.settings, undefined, () => undefined);
  // Every vault as its scanVault invocation scans it, the output collected instead of enqueued.
  const scan = async () => {
    const result = { work: [] as WorkItem[], notifications: [] as Notification[] };
    const out: ScanOutput = {
      work: async (items) => void result.work.push(...items),
      notices: async (items) => void result.notifications.push(...items),
    };
    for (const vault of vaults.names()) await scanner.scanVault(vault, out, { telemetry });
    return result;
  };
  return { inflight, failures, announcements, scanner: { scan }, vaults };
}

const rotates = (work: { op: string; secret: string }[]) =>
  work
    .filter((w) => w.op === 'rotate')
    .map((w) => w.secret)
    .sort();

test('a secret with work in flight is not enqueued again until the worker releases it', async () => {
  const tenant = await seedTenant(azure(), { expiresInDays: 10 });
  const { scanner, inflight } = parts(tenant);
  const first = await scanner.scan();
  expect(rotates(first.work)).toEqual(Object.values(SECRETS).sort());
  // The next tick, before the worker ran: nothing is enqueued twice.
  expect((await scanner.scan()).work).toEqual([]);
  // The worker finished one of them: only that one can be planned again.
  await inflight.release(first.work.find((w) => w.secret === SECRETS.pat)!);
  expect(rotates((await scanner.scan()).work)).toEqual([SECRETS.pat]);
});

test('a claim whose holder died (older than the stale time) is taken over', async () => {
  let now = Date.now();
  const c = container();
  const records = new BlobRecords(c, 'inflight', () => now);
  const inflight = new InFlight(records, 60_000);
  const item = { op: 'rotate' as const, vault: 'kv', secret: 's' };
  expect(await inflight.admit([item])).toEqual([item]);
  expect(await inflight.admit([item])).toEqual([]);
  now += 61_000;
  expect(await inflight.admit([item])).toEqual([item]);
  // The new claim is fresh (the blob's time is the store's clock, which did not jump).
  now = Date.now();
  expect(await inflight.admit([item])).toEqual([]);
  // Forced work is never held back.
  expect(await inflight.admit([{ ...item, force: true }])).toHaveLength(1);
});

test('a retry of the same scan request takes back its own claims; another request does not', async () => {
  const inflight = new InFlight(new BlobRecords(container(), 'inflight'));
  const item = { op: 'rotate' as const, vault: 'kv', secret: 's' };
  expect(await inflight.admit([item], 'request-1')).toEqual([item]);
  // Its instance died after claiming: the queue delivers the same request (same message id) again.
  expect(await inflight.admit([item], 'request-1')).toEqual([item]);
  expect(await inflight.admit([item], 'request-2')).toEqual([]);
  expect(await inflight.admit([item])).toEqual([]);
});

test('a scan that fails after claiming releases what it never sent: the next scan plans it', async () => {
  const tenant = await seedTenant(azure(), { expiresInDays: 10 });
  const { vaults } = createEngine(tenant);
  const c = container();
  const inflight = new InFlight(new BlobRecords(c, 'inflight'));
  const scanner = new Scanner({
    settings: tenant.settings,
    vaults,
    rotators: ROTATORS,
    notices: new BlobNotices(c),
    inflight,
  });
  const telemetry = createTelemetry(tenant.settings, undefined, () => undefined);
  const failing: ScanOutput = {
    work: async () => {
      throw Object.assign(new Error('queue unavailable'), { statusCode: 503 });
    },
    notices: async () => undefined,
  };
  await expect(
    scanner.scanVault(tenant.vaultName, failing, { telemetry, retryable: true, requestId: 'r-1' }),
  ).rejects.toThrow(/queue unavailable/);
  const sent: WorkItem[] = [];
  const ok: ScanOutput = { work: async (items) => void sent.push(...items), notices: async () => undefined };
  // A later tick (another request) is not held back by claims the failed scan never used.
  await scanner.scanVault(tenant.vaultName, ok, { telemetry, requestId: 'r-2' });
  expect(rotates(sent)).toEqual(Object.values(SECRETS).sort());
});

test('"expired, rotation has not succeeded yet" is not sent in the tick that enqueues the rotation', async () => {
  const tenant = await seedTenant(azure(), { expiresInDays: -1 });
  const { scanner, failures } = parts(tenant);
  const first = await scanner.scan();
  expect(rotates(first.work)).toHaveLength(3);
  expect(first.notifications.filter((n) => n.kind === 'expired')).toEqual([]);
  // The rotation of one of them failed: the next scan tells its owners, once.
  const failed = {
    vault: tenant.vaultName,
    secret: SECRETS.sp,
    status: 'failed',
    step: 'create',
    reason: 'x',
    transient: false,
    durationMs: 1,
  } as Outcome;
  await failures.observe(failed, false);
  const second = await scanner.scan();
  expect(second.notifications.filter((n) => n.kind === 'expired').map((n) => n.secret)).toEqual([SECRETS.sp]);
  expect((await scanner.scan()).notifications.filter((n) => n.kind === 'expired')).toEqual([]);
});

test('a transient failure is told after the bounded time, once a day; a success clears it', async () => {
  let now = Date.now();
  const failures = new Failures(new BlobRecords(container(), 'failing', () => now), 60 * 60_000, () => now);
  const failed = {
    vault: 'kv',
    secret: 's',
    status: 'failed',
    step: 'create',
    reason: 'HTTP 503',
    transient: true,
    durationMs: 1,
  } as Outcome;
  expect(await failures.observe(failed, false)).toBe(false);
  now += 30 * 60_000;
  expect(await failures.observe(failed, false)).toBe(false);
  // Azurite's last-modified is real time: move our clock past the bound from it.
  now = Date.now() + 61 * 60_000;
  expect(await failures.observe(failed, false)).toBe(true);
  expect(await failures.observe(failed, false)).toBe(false);
  expect(await failures.observe(failed, true)).toBe(true);
  expect(await failures.observe({ ...failed, transient: false } as Outcome, false)).toBe(true);
  const rotated = { vault: 'kv', secret: 's', status: 'rotated' } as Outcome;
  expect(await failures.observe(rotated, false)).toBe(true);
  expect(await failures.hasFailed('kv', 's')).toBe(false);
});

test('a rotation stored but never announced is announced by the scan, once; a delivered one is not', async () => {
  const tenant = await seedTenant(azure(), { expiresInDays: 200 });
  let now = azure().clock.now();
  const { scanner, announcements } = parts(tenant, { clock: () => now });
  const vault = azure().state.vaults.get(tenant.vaultName)!;
  // Two rotations stored (tags as the engine writes them); only the PAT's was announced.
  const ids = { pat: randomUUID(), app: randomUUID() };
  for (const [secret, rotationId] of [
    [SECRETS.pat, ids.pat],
    [SECRETS.app, ids.app],
  ] as const) {
    const latest = vault.secrets.get(secret)!.at(-1)!;
    latest.tags = { ...latest.tags, [TAGS.rotationId]: rotationId };
  }
  await announcements.announcing({
    kind: 'rotated',
    vault: tenant.vaultName,
    secret: SECRETS.pat,
    details: { rotationId: ids.pat },
  });
  // Within the settle time nothing is announced: the announcement may still be on its way.
  expect((await scanner.scan()).notifications.filter((n) => n.kind === 'rotated')).toEqual([]);
  now += (tenant.settings.ANNOUNCE_MISSED_AFTER_MINUTES + 1) * 60_000;
  const late = (await scanner.scan()).notifications.filter((n) => n.kind === 'rotated');
  expect(late).toMatchObject([{ secret: SECRETS.app, details: { rotationId: ids.app } }]);
  expect((await scanner.scan()).notifications.filter((n) => n.kind === 'rotated')).toEqual([]);
});
