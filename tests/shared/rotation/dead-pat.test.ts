import { randomUUID } from 'node:crypto';
import { TAGS } from '../../../shared/constants';
import { targetKey } from '../../../shared/issuance';
import { ROTATORS } from '../../../shared/rotators';
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
  const at = new Date(azure().clock.now() - 60 * 60_000);
  const rotationId = randomUUID();
  await vault.client.updateSecretProperties(SECRETS.pat, current.properties.version!, {
    tags: { ...current.properties.tags, [TAGS.rotationStarted]: `${rotationId}@${at.toISOString()}` },
  });
  // The issuance record as a refused create leaves it when recording the refusal failed too.
  const parsed = ROTATORS.get('databricks-pat')!.parseTarget(current.properties.tags!, tenant.settings);
  if (!('target' in parsed)) throw new Error('bad tags');
  await services.issuance.begin({
    vault: tenant.vaultName,
    secret: SECRETS.pat,
    kind: 'databricks-pat',
    target: targetKey('databricks-pat', parsed.target),
    rotationId,
    at,
  });
  // The PAT is revoked at the workspace: every call it authenticates now answers 403.
  const workspace = azure().state.workspaces.get(`ws-${tenant.vaultName}`)!;
  workspace.tokens = workspace.tokens.filter(
    (t) => t.tokenId !== current.properties.tags![TAGS.credentialId],
  );

  const req = { vault: tenant.vaultName, secret: SECRETS.pat };
  const results = [await services.engine.reconcile(req), await services.engine.rotate(req)];
  for (const result of results) {
    expect(result.outcome).toMatchObject({
      status: 'failed',
      step: 'reconcile',
      transient: false,
      reason: expect.stringContaining('store a new PAT by hand'),
    });
  }
  // Owners hear it once (the same failure of the same version is not news again today).
  expect(results.map((r) => r.notifications.map((n) => n.kind))).toEqual([['rotation-failed'], []]);
  // Nothing changed in the vault: the value is the dead PAT, still marked for a person to replace.
  const after = await vault.client.getSecret(SECRETS.pat);
  expect(after.properties.version).toBe(current.properties.version);
});
