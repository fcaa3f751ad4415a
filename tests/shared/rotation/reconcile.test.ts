/**
 * Reconcile goes by the issuance record only: what an interrupted rotation asked for is revoked by the
 * id it recorded, or by its marker; without either (an SP secret whose answer was lost) the owners are
 * told the candidates and nothing is revoked. A lost `stored` write is completed, never revoked.
 */
import { randomUUID } from 'node:crypto';
import { MARKER_PREFIX, TAGS } from '../../../shared/constants';
import { targetKey } from '../../../shared/issuance';
import { ROTATORS } from '../../../shared/rotators';
import { useLocalAzure } from '../../support/localAzure';
import { credentialWorks, type SecretKey } from '../../support/probes';
import { createEngine, SECRETS, seedTenant } from '../../support/tenant';

const azure = useLocalAzure();
const KINDS = [
  { key: 'app', kind: 'entra-app-secret' },
  { key: 'sp', kind: 'databricks-sp-secret' },
  { key: 'pat', kind: 'databricks-pat' },
] as const satisfies readonly { key: SecretKey; kind: string }[];

/** A rotation killed after the provider created the credential and before its answer was recorded. */
async function lostAnswer(key: SecretKey, kind: string) {
  const tenant = await seedTenant(azure());
  const services = createEngine(tenant);
  const secret = SECRETS[key];
  const vault = services.vaults.get(tenant.vaultName);
  const current = await vault.client.getSecret(secret);
  const rotator = ROTATORS.get(kind)!;
  const parsed = rotator.parseTarget(current.properties.tags ?? {}, tenant.settings);
  if (!('target' in parsed)) throw new Error('bad tags');
  const rotationId = randomUUID();
  const now = new Date(azure().clock.now() - 60 * 60_000);
  await services.issuance.begin({
    vault: tenant.vaultName,
    secret,
    kind,
    target: targetKey(kind, parsed.target),
    rotationId,
    at: now,
  });
  const orphan = await rotator.create(
    parsed.target,
    { vaultName: tenant.vaultName, secretName: secret, currentValue: current.value ?? '' },
    {
      lifetimeSeconds: 86_400 * 30,
      expiresAt: new Date(now.getTime() + 86_400_000 * 30),
      marker: `${MARKER_PREFIX}:${tenant.vaultName}/${secret}:${rotationId}`,
    },
    services.deps,
  );
  return { tenant, services, secret, orphan, initial: current.value! };
}

describe.each(KINDS)('$kind: an interrupted rotation whose answer was lost', ({ key, kind }) => {
  test('is revoked by its marker, or reported (no marker) and nothing is revoked', async () => {
    const { tenant, services, secret, orphan, initial } = await lostAnswer(key, kind);
    const result = await services.engine.reconcile({ vault: tenant.vaultName, secret });
    if (kind === 'databricks-sp-secret') {
      expect(result.outcome).toMatchObject({ status: 'skipped', reason: 'no orphaned credentials' });
      const notice = result.notifications.find((n) => n.kind === 'rotation-failed');
      expect(notice?.details.reason).toEqual(expect.stringContaining(orphan.id));
      expect(notice?.details.reason).toEqual(expect.stringContaining('nothing was revoked'));
      expect(await credentialWorks(tenant, key, orphan.value)).toMatchObject({ works: true });
      // Told once: the record is closed, so the next reconcile has nothing to say.
      const again = await services.engine.reconcile({ vault: tenant.vaultName, secret });
      expect(again.notifications).toEqual([]);
    } else {
      expect(result.outcome).toMatchObject({ status: 'revoked', credentialIds: [orphan.id] });
      expect(await credentialWorks(tenant, key, orphan.value)).toMatchObject({ works: false });
    }
    expect(await credentialWorks(tenant, key, initial)).toMatchObject({ works: true });
  });
});

test('a stored credential whose `stored` write was lost is completed, not revoked', async () => {
  const tenant = await seedTenant(azure());
  const services = createEngine(tenant);
  const rotated = await services.engine.rotate({ vault: tenant.vaultName, secret: SECRETS.app, force: true });
  expect(rotated.outcome.status).toBe('rotated');
  const records = await services.issuance.list(tenant.vaultName, SECRETS.app);
  const mine = records.find((r) => r.rotationId === rotated.outcome.rotationId)!;
  // Put the record back to `issued`, as if the process died right after the vault answered.
  await services.issuance.update(mine, { state: 'issued', at: new Date() });
  const result = await services.engine.reconcile({ vault: tenant.vaultName, secret: SECRETS.app });
  expect(result.outcome.status).toBe('skipped');
  const stored = await tenant.reader.getSecret(SECRETS.app);
  expect(stored.properties.tags?.[TAGS.rotationId]).toBe(rotated.outcome.rotationId);
  expect(await credentialWorks(tenant, 'app', stored.value!)).toMatchObject({ works: true });
  const after = await services.issuance.list(tenant.vaultName, SECRETS.app);
  expect(after.find((r) => r.rotationId === mine.rotationId)?.state).toBe('stored');
});

test('revoke-previous never revokes the credential the vault holds, even one this service issued', async () => {
  const tenant = await seedTenant(azure());
  const services = createEngine(tenant);
  const rotated = await services.engine.rotate({ vault: tenant.vaultName, secret: SECRETS.app, force: true });
  expect(rotated.outcome.status).toBe('rotated');
  const vault = services.vaults.get(tenant.vaultName);
  const current = await vault.client.getSecret(SECRETS.app);
  const tags = current.properties.tags ?? {};
  // A tag writer points previous-credential-id at the current credential.
  await vault.client.updateSecretProperties(SECRETS.app, current.properties.version!, {
    tags: {
      ...tags,
      [TAGS.previousCredentialId]: tags[TAGS.credentialId]!,
      [TAGS.revokePreviousAfter]: new Date(azure().clock.now() - 1000).toISOString(),
    },
  });
  const result = await services.engine.revokePrevious({ vault: tenant.vaultName, secret: SECRETS.app });
  expect(result.outcome).toMatchObject({ status: 'failed', step: 'revoke', transient: false });
  if (result.outcome.status === 'failed')
    expect(result.outcome.reason).toMatch(/is the credential the vault holds now: nothing was revoked/);
  expect(await credentialWorks(tenant, 'app', current.value!)).toMatchObject({ works: true });
});
