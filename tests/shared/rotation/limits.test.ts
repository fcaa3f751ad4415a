import { useLocalAzure } from '../../support/localAzure';
import { createEngine, SECRETS, seedTenant } from '../../support/tenant';

const azure = useLocalAzure();

test('a lifetime above the workspace maximum is a clear, permanent failure that names the limit and changes nothing', async () => {
  const tenant = await seedTenant(azure());
  const workspace = [...azure().state.workspaces.values()].find((w) => w.url === tenant.workspaceUrl)!;
  workspace.maxTokenLifetimeSeconds = 30 * 86_400;
  const vault = azure().state.vaults.get(tenant.vaultName)!;
  const before = vault.secrets.get(SECRETS.pat)!.map((v) => ({ version: v.version, tags: { ...v.tags } }));
  const tokensBefore = workspace.tokens.length;

  const { engine } = createEngine(tenant);
  const { outcome, notifications } = await engine.rotate({ vault: tenant.vaultName, secret: SECRETS.pat });

  expect(outcome).toMatchObject({ status: 'failed', step: 'create', transient: false });
  expect(outcome.status === 'failed' && outcome.reason).toMatch(/INVALID_PARAMETER_VALUE/);
  // The workspace's own message, which names its maximum (30 days), reaches the owners.
  expect(outcome.status === 'failed' && outcome.reason).toMatch(/2592000 seconds|30 days/);
  expect(notifications.map((n) => n.kind)).toEqual(['rotation-failed']);
  expect(workspace.tokens).toHaveLength(tokensBefore);
  // No new version, and the rotation marker written before create was taken back (nothing was created).
  expect(vault.secrets.get(SECRETS.pat)!.map((v) => ({ version: v.version, tags: v.tags }))).toEqual(before);

  // Within the limit, the same secret rotates.
  Object.assign(vault.secrets.get(SECRETS.pat)!.at(-1)!.tags, {
    'rotation-validity-days': '30',
    'rotation-window-days': '10',
  });
  expect((await engine.rotate({ vault: tenant.vaultName, secret: SECRETS.pat })).outcome.status).toBe(
    'rotated',
  );
});
