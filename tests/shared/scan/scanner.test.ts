import { randomBytes } from 'node:crypto';
import { BlobServiceClient } from '@azure/storage-blob';
import { BlobNotices } from '../../../shared/clients/notices';
import { InFlight } from '../../../shared/inflight';
import { ROTATORS } from '../../../shared/rotators';
import { TransientError } from '../../../shared/errors';
import type { Notification } from '../../../shared/notifications/notification';
import { Scanner, type ScanOutput } from '../../../shared/scan/scanner';
import { createTelemetry, type Telemetry } from '../../../shared/telemetry/telemetry';
import type { WorkItem } from '../../../shared/work';
import { useLocalAzure } from '../../support/localAzure';
import { createEngine, DAY, seedTenant } from '../../support/tenant';

const azure = useLocalAzure();

/** An output that records each call, so a test sees what was sent page by page. */
function recorder() {
  const calls: { work: WorkItem[][]; notices: Notification[][] } = { work: [], notices: [] };
  const out: ScanOutput = {
    work: async (items) => void calls.work.push(items),
    notices: async (items) => void calls.notices.push(items),
  };
  return { out, calls, work: () => calls.work.flat(), notifications: () => calls.notices.flat() };
}

/** Every configured vault, one after the other, into one recorder. */
async function scanEach(scanner: Scanner, names: string[], telemetry: Telemetry) {
  const r = recorder();
  const vaults = [];
  for (const name of names) vaults.push(await scanner.scanVault(name, r.out, { telemetry }));
  return { ...r, vaults };
}

function addSecrets(
  vaultName: string,
  count: number,
  tags: (i: number) => Record<string, string>,
  expInDays: number,
) {
  const vault = azure().state.vaults.get(vaultName)!;
  const now = azure().clock.nowSeconds();
  for (let i = 0; i < count; i++) {
    vault.secrets.set(`bulk-${i}`, [
      {
        version: randomBytes(16).toString('hex'),
        value: `value-${i}`,
        enabled: true,
        exp: now + expInDays * 86400,
        created: now,
        updated: now,
        tags: tags(i),
        emitted: { nearExpiry: false, expired: false },
      },
    ]);
  }
}

test('the scan reads list pages only (ceil(n/25) per vault, no per-secret GET) and plans what is due', async () => {
  const tenant = await seedTenant(azure());
  addSecrets(tenant.vaultName, 57, () => ({}), 200);
  const { vaults } = createEngine(tenant);
  const lines: string[] = [];
  const telemetry = createTelemetry(tenant.settings, undefined, (_l, line) => lines.push(line));
  const container = BlobServiceClient.fromConnectionString(
    process.env.AZURITE_CONNECTION_STRING!,
  ).getContainerClient(`notices-${randomBytes(4).toString('hex')}`);
  const scanner = new Scanner({
    settings: tenant.settings,
    vaults,
    rotators: ROTATORS,
    notices: new BlobNotices(container),
    now: () => new Date(azure().clock.now()),
  });
  const scan = () => scanEach(scanner, [tenant.vaultName], telemetry);
  azure().servers.counts.reset();
  const first = await scan();

  const counts = azure().servers.counts.snapshot();
  const kv = Object.entries(counts).filter(([label]) => label.startsWith(`keyvault/${tenant.vaultName}`));
  const secretsInVault = 57 + 3;
  expect(Object.fromEntries(kv)).toEqual({
    [`keyvault/${tenant.vaultName} GET /secrets`]: Math.ceil(secretsInVault / 25) + 1,
  });
  // +1: the SDK's first request is the unauthenticated challenge.
  expect(first.vaults[0]).toMatchObject({ scanned: secretsInVault, optedIn: 3, due: 3, listPages: 3 });
  // Sent page by page as the scan goes: one batch per list page, nothing held for the end.
  expect(first.calls.work).toHaveLength(3);
  expect(first.calls.notices).toHaveLength(3);
  expect(
    first
      .work()
      .map((w) => `${w.op}:${w.secret}`)
      .sort(),
  ).toEqual(
    ['rotate:adf-databricks-pat', 'rotate:etl-sp-oauth-secret', 'rotate:reporting-app-secret'].sort(),
  );
  expect(
    lines.some(
      (l) =>
        l.startsWith('[ScanCompleted]') &&
        l.includes(`vault=${tenant.vaultName}`) &&
        l.includes('scanned=60'),
    ),
  ).toBe(true);

  // Secrets that are not opted in are announced once per threshold: a second scan sends nothing new.
  addSecrets(tenant.vaultName, 2, () => ({ owner: 'team-a' }), 5);
  const second = await scan();
  expect(
    second
      .notifications()
      .filter((n) => n.kind === 'expiring')
      .map((n) => n.secret)
      .sort(),
  ).toEqual(['bulk-0', 'bulk-1']);
  const third = await scan();
  expect(third.notifications().filter((n) => n.kind === 'expiring')).toEqual([]);
  azure().clock.advance(4.5 * DAY);
  const fourth = await scan();
  const bulk = fourth.notifications().filter((n) => n.kind === 'expiring' && n.secret.startsWith('bulk-'));
  expect(bulk.map((n) => n.details.within)).toEqual(['1d', '1d']);
  // The opted-in secrets were never rotated in this test: below their window, owners hear it.
  expect(
    fourth
      .notifications()
      .filter((n) => !n.secret.startsWith('bulk-'))
      .map((n) => n.details.reason),
  ).toEqual(Array(3).fill('rotation has not succeeded yet'));
});

test('an unreachable vault: retried alone while attempts remain, then reported failed; others unaffected', async () => {
  const tenant = await seedTenant(azure());
  const settings = {
    ...tenant.settings,
    KEY_VAULT_URIS: [...tenant.settings.KEY_VAULT_URIS, { name: 'gone', url: 'https://localhost:1' }],
  };
  const { vaults } = createEngine({ ...tenant, settings });
  const lines: string[] = [];
  const telemetry = createTelemetry(settings, undefined, (_l, line) => lines.push(line));
  const scanner = new Scanner({
    settings,
    vaults,
    rotators: ROTATORS,
    notices: { firstTime: async () => true },
    now: () => new Date(azure().clock.now()),
  });
  const completed = () => lines.filter((l) => l.startsWith('[ScanCompleted]'));

  const retried = recorder();
  await expect(scanner.scanVault('gone', retried.out, { telemetry, retryable: true })).rejects.toThrow(
    TransientError,
  );
  // Not reported yet: the queue retries it, and one ScanCompleted per vault scan is the contract.
  expect(completed()).toEqual([]);

  const last = await scanner.scanVault('gone', retried.out, { telemetry, retryable: false });
  expect(last.error).toBeDefined();
  expect(completed()).toEqual([expect.stringMatching(/vault=gone .*outcome=failed/)]);

  const other = recorder();
  const ok = await scanner.scanVault(tenant.vaultName, other.out, { telemetry, retryable: true });
  expect(ok).toMatchObject({ scanned: 3, due: 3 });
  expect(other.work()).toHaveLength(3);
  expect(completed()[1]).toMatch(new RegExp(`vault=${tenant.vaultName} .*outcome=completed`));
});

test('a throttled vault is waited out page by page: the scan completes, no page is read twice', async () => {
  const tenant = await seedTenant(azure());
  addSecrets(tenant.vaultName, 60, () => ({}), 300);
  const { vaults } = createEngine(tenant);
  const scanner = new Scanner({
    settings: tenant.settings,
    vaults,
    rotators: ROTATORS,
    notices: { firstTime: async () => true },
    now: () => new Date(azure().clock.now()),
  });
  const telemetry = createTelemetry(tenant.settings, undefined, () => undefined);
  await scanner.scanVault(tenant.vaultName, recorder().out, { telemetry }); // warm: token, challenge
  const { servers } = azure();
  // More 429s in a row than the SDK retries (3): Key Vault throttling a burst.
  servers.faults.add({
    service: 'keyvault',
    method: 'GET',
    status: 429,
    retryAfterSeconds: 1,
    times: 6,
    body: { error: { code: 'Throttled', message: 'Too many requests' } },
  });
  servers.counts.reset();
  const summary = await scanner.scanVault(tenant.vaultName, recorder().out, { telemetry, retryable: true });
  expect(summary.error).toBeUndefined();
  expect(summary).toMatchObject({ scanned: 63, listPages: 3 });
  const counts = servers.counts.snapshot();
  // 3 pages answered, plus the 6 throttled answers: nothing started over.
  expect(counts[`keyvault/${tenant.vaultName} GET /secrets`]).toBe(3 + 6);
}, 30_000);

test("the scan's own records failing in Storage do not fail it: the work is planned, the notice waits", async () => {
  const tenant = await seedTenant(azure(), { expiresInDays: 10 });
  const { vaults } = createEngine(tenant);
  const storageDown = async (): Promise<never> => {
    throw Object.assign(new Error('Injected fault'), { statusCode: 500 });
  };
  const scanner = new Scanner({
    settings: tenant.settings,
    vaults,
    rotators: ROTATORS,
    notices: { firstTime: storageDown },
    inflight: new InFlight({
      create: storageDown,
      writtenAt: storageDown,
      claim: storageDown,
      delete: storageDown,
    }),
    now: () => new Date(azure().clock.now()),
  });
  const lines: string[] = [];
  const telemetry = createTelemetry(tenant.settings, undefined, (_l, line) => lines.push(line));
  const r = recorder();
  const summary = await scanner.scanVault(tenant.vaultName, r.out, { telemetry, retryable: true });
  expect(summary.error).toBeUndefined();
  // A claim that cannot be recorded admits the work (a duplicate is harmless, a skip is not).
  expect(r.work().map((w) => w.op)).toEqual(['rotate', 'rotate', 'rotate']);
  // The "expiring" notices could not be recorded as sent: they wait for a scan that can.
  expect(r.notifications()).toEqual([]);
  expect(lines.some((l) => /3 record reads or writes failed/.test(l))).toBe(true);
});
