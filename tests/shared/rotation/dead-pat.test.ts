import { randomUUID } from 'node:crypto';
import { TAGS } from '../../../shared/constants';
import { useLocalAzure } from '../../support/localAzure';
import { createEngine, SECRETS, seedTenant } from '../../support/tenant';

/**
 * A dead PAT (expired or revoked) whose rotation was refused and whose tags could not be restored keeps
 * a `rotation-started` marker. Reconcile (and the next rotation, which reconciles first) must then say
 * what to do — store a new PAT by hand — instead of a bare `token/list → 403`, and not retry it.
 */
const azure = useLocalAzure();

test('reconcile and rotate of a dead PAT left with a marker say "store a new PAT by hand"', async () => {
  const tenant = await seedTenant(azure());
  const services = createEngine(tenant);
  const vault = services.vaults.get(tenant.vaultName);
  const current = await vault.client.getSecret(SECRETS.pat);
  const started = new Date(azure().clock.now() - 60 * 60_000).toISOString();
  await vault.client.updateSecretProperties(SECRETS.pat, current.properties.version!, {
    tags: { ...current.properties.tags, [TAGS.rotationStarted]: `${randomUUID()}@${started}` },
  });
  // The PAT is revoked at the workspace: every call it authenticates now answers 403.
  const workspace = azure().state.workspaces.get(`ws-${tenant.vaultName}`)!;
  workspace.tokens = workspace.tokens.filter(
    (t) => t.tokenId !== current.properties.tags![TAGS.credentialId],
  );

  const req = { vault: tenant.vaultName, secret: SECRETS.pat };
  for (const result of [await services.engine.reconcile(req), await services.engine.rotate(req)]) {
    expect(result.outcome).toMatchObject({
      status: 'failed',
      step: 'reconcile',
      transient: false,
      reason: expect.stringContaining('store a new PAT by hand'),
    });
    expect(result.notifications.map((n) => n.kind)).toEqual(['rotation-failed']);
  }
  // Nothing changed in the vault: the value is the dead PAT, still marked for a person to replace.
  const after = await vault.client.getSecret(SECRETS.pat);
  expect(after.properties.version).toBe(current.properties.version);
});
