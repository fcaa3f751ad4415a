import { useLocalAzure } from '../../support/localAzure';
import { createEngine, DAY, SECRETS, seedTenant } from '../../support/tenant';

const azure = useLocalAzure();

test.each(Object.entries(SECRETS))('rotates %s', async (_k, secret) => {
  const tenant = await seedTenant(azure());
  const { engine } = createEngine(tenant);
  const result = await engine.rotate({ vault: tenant.vaultName, secret });
  console.log(JSON.stringify(result, null, 1));
  expect(result.outcome.status).toBe('rotated');
  azure().clock.advance(2 * DAY);
  const revoked = await engine.revokePrevious({ vault: tenant.vaultName, secret });
  console.log(JSON.stringify(revoked.outcome));
  expect(revoked.outcome.status).toBe('revoked');
});
