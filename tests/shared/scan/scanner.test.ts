import { randomBytes } from 'node:crypto';
import { BlobServiceClient } from '@azure/storage-blob';
import { BlobNotices } from '../../../shared/clients/notices';
import { ROTATORS } from '../../../shared/rotators';
import { Scanner } from '../../../shared/scan/scanner';
import { createTelemetry } from '../../../shared/telemetry/telemetry';
import { useLocalAzure } from '../../support/localAzure';
import { createEngine, DAY, seedTenant } from '../../support/tenant';

const azure = useLocalAzure();

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
    telemetry,
    now: () => new Date(azure().clock.now()),
  });
  azure().servers.counts.reset();
  const first = await scanner.scan();

  const counts = azure().servers.counts.snapshot();
  const kv = Object.entries(counts).filter(([label]) => label.startsWith(`keyvault/${tenant.vaultName}`));
  const secretsInVault = 57 + 3;
  expect(Object.fromEntries(kv)).toEqual({
    [`keyvault/${tenant.vaultName} GET /secrets`]: Math.ceil(secretsInVault / 25) + 1,
  });
  // +1: the SDK's first request is the unauthenticated challenge.
  expect(first.vaults[0]).toMatchObject({ scanned: secretsInVault, optedIn: 3, due: 3, listPages: 3 });
  expect(first.work.map((w) => `${w.op}:${w.secret}`).sort()).toEqual(
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
  const second = await scanner.scan();
  expect(
    second.notifications
      .filter((n) => n.kind === 'expiring')
      .map((n) => n.secret)
      .sort(),
  ).toEqual(['bulk-0', 'bulk-1']);
  const third = await scanner.scan();
  expect(third.notifications.filter((n) => n.kind === 'expiring')).toEqual([]);
  azure().clock.advance(4.5 * DAY);
  const fourth = await scanner.scan();
  const bulk = fourth.notifications.filter((n) => n.kind === 'expiring' && n.secret.startsWith('bulk-'));
  expect(bulk.map((n) => n.details.within)).toEqual(['1d', '1d']);
  // The opted-in secrets were never rotated in this test: below their window, owners hear it.
  expect(
    fourth.notifications.filter((n) => !n.secret.startsWith('bulk-')).map((n) => n.details.reason),
  ).toEqual(Array(3).fill('rotation has not succeeded yet'));
});

test('one unreachable vault does not stop the scan of the others', async () => {
  const tenant = await seedTenant(azure());
  const settings = {
    ...tenant.settings,
    KEY_VAULT_URIS: [...tenant.settings.KEY_VAULT_URIS, { name: 'gone', url: 'https://localhost:1' }],
  };
  const { vaults } = createEngine({ ...tenant, settings });
  const scanner = new Scanner({
    settings,
    vaults,
    rotators: ROTATORS,
    notices: { firstTime: async () => true },
    telemetry: createTelemetry(settings, undefined, () => undefined),
    now: () => new Date(azure().clock.now()),
  });
  const result = await scanner.scan();
  const byVault = Object.fromEntries(result.vaults.map((v) => [v.vault, v]));
  expect(byVault.gone?.error).toBeDefined();
  expect(byVault[tenant.vaultName]).toMatchObject({ scanned: 3, due: 3 });
  expect(result.work).toHaveLength(3);
});
