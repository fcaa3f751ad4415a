/**
 * Reconcile goes by the issuance record only: what an interrupted rotation asked for is revoked by the
 * id it recorded, or by the marker its request carried (a PAT's comment, an Entra secret's name, an SP
 * secret's lifetime), never a credential someone else made in the same window. A lost `stored` write
 * is completed, never revoked.
 */
import { randomUUID } from 'node:crypto';
import { createBlobServiceClient } from '../../../shared/clients/lock';
import { MARKER_PREFIX, STORAGE, TAGS } from '../../../shared/constants';
import { BlobIssuance, targetKey } from '../../../shared/issuance';
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
  return {
    tenant,
    services,
    secret,
    orphan,
    initial: current.value!,
    rotationId,
    target: parsed.target,
    key: targetKey(kind, parsed.target),
  };
}

/** The provider's create endpoint drops the next request's connection before acting on it. */
function dropOnce(service: 'graph' | 'databricks', route: string): void {
  azure().servers.faults.add({ service, method: 'POST', route, drop: true, times: 1 });
}

describe.each(KINDS)('$kind: an interrupted rotation whose answer was lost', ({ key, kind }) => {
  test('is revoked by the marker its request carried; the current credential keeps working', async () => {
    const { tenant, services, secret, orphan, initial } = await lostAnswer(key, kind);
    const result = await services.engine.reconcile({ vault: tenant.vaultName, secret });
    expect(result.outcome).toMatchObject({ status: 'revoked', credentialIds: [orphan.id] });
    expect(result.notifications.map((n) => [n.kind, n.details.credentialId])).toEqual([
      ['orphan-revoked', orphan.id],
    ]);
    expect(await credentialWorks(tenant, key, orphan.value)).toMatchObject({ works: false });
    expect(await credentialWorks(tenant, key, initial)).toMatchObject({ works: true });
    // The record is closed: the next reconcile has nothing to do or say.
    const again = await services.engine.reconcile({ vault: tenant.vaultName, secret });
    expect(again.outcome.status).toBe('skipped');
    expect(again.notifications).toEqual([]);
  });
});

test("an SP secret someone else made in the rotation's window is not revoked, nor one of another rotation", async () => {
  const { tenant, services, secret, orphan, initial } = await lostAnswer('sp', 'databricks-sp-secret');
  const sp = azure()
    .state.accounts.get(tenant.accountId)!
    .servicePrincipals.find((p) => p.id === tenant.spId)!;
  // A person's secret, made a second after ours: a lifetime of whole days, as the UI and CLI ask.
  const at = azure().clock.now() + 1000;
  const days = (n: number) => new Date(at + n * 86_400_000).toISOString();
  sp.secrets.push({
    id: 'a1b2c3d4e5f60718293a4b5c6d7e8f90',
    secretHash: 'f'.repeat(64),
    createTime: new Date(at).toISOString(),
    updateTime: new Date(at).toISOString(),
    expireTime: days(90),
    status: 'ACTIVE',
  });
  // Another rotation's request (a sibling secret on the same principal): its marker is not ours.
  const rotator = ROTATORS.get('databricks-sp-secret')!;
  const parsed = rotator.parseTarget(
    (await services.vaults.get(tenant.vaultName).client.getSecret(secret)).properties.tags ?? {},
    tenant.settings,
  );
  if (!('target' in parsed)) throw new Error('bad tags');
  const sibling = await rotator.create(
    parsed.target,
    { vaultName: tenant.vaultName, secretName: 'sibling', currentValue: initial },
    {
      lifetimeSeconds: 86_400 * 30,
      expiresAt: new Date(at + 86_400_000 * 30),
      marker: `${MARKER_PREFIX}:${tenant.vaultName}/sibling:${randomUUID()}`,
    },
    services.deps,
  );
  const result = await services.engine.reconcile({ vault: tenant.vaultName, secret });
  expect(result.outcome).toMatchObject({ status: 'revoked', credentialIds: [orphan.id] });
  const left = sp.secrets.map((s) => s.id);
  expect(left).toEqual(expect.arrayContaining(['a1b2c3d4e5f60718293a4b5c6d7e8f90', sibling.id]));
  expect(left).not.toContain(orphan.id);
});

test("a sibling's SP secret that carries the lost request's marker by chance is the sibling's, not revoked", async () => {
  const kind = 'databricks-sp-secret';
  const lost = await lostAnswer('sp', kind);
  const { tenant, services, secret, orphan, initial } = lost;
  const rotator = ROTATORS.get(kind)!;
  // A secret in another vault on the same principal, rotated meanwhile: its secret's lifetime falls on
  // the same second of the marker span as ours (3 in 3,599 do), and its record holds it.
  const sibling = await rotator.create(
    lost.target,
    { vaultName: 'kv-other', secretName: 'sibling', currentValue: initial },
    {
      lifetimeSeconds: 86_400 * 30,
      expiresAt: new Date(azure().clock.now() + 86_400_000 * 30),
      marker: `${MARKER_PREFIX}:${tenant.vaultName}/${secret}:${lost.rotationId}`,
    },
    services.deps,
  );
  const at = new Date(azure().clock.now());
  const start = {
    vault: 'kv-other',
    secret: 'sibling',
    kind,
    target: lost.key,
    rotationId: randomUUID(),
    at,
  };
  const record = await services.issuance.begin(start);
  await services.issuance.update(record, { state: 'issued', credentialId: sibling.id, at });
  expect(await services.issuance.claimant(lost.key, sibling.id)).toEqual({
    vault: 'kv-other',
    secret: 'sibling',
    rotationId: start.rotationId,
  });

  const result = await services.engine.reconcile({ vault: tenant.vaultName, secret });
  expect(result.outcome).toMatchObject({ status: 'revoked', credentialIds: [orphan.id] });
  expect(await credentialWorks(tenant, 'sp', sibling.value)).toMatchObject({ works: true });
  expect(await credentialWorks(tenant, 'sp', orphan.value)).toMatchObject({ works: false });
});

test('a create request its provider carries out after the rotation gave up is revoked once it cannot be in flight', async () => {
  const tenant = await seedTenant(azure());
  const services = createEngine(tenant, { inFlightMs: 90_000 });
  const req = { vault: tenant.vaultName, secret: SECRETS.app };
  dropOnce('graph', '/graph/v1.0/:appIdKey/addPassword');
  const first = await services.engine.rotate({ ...req, force: true });
  expect(first.outcome).toMatchObject({ status: 'failed', step: 'create', transient: true });
  // The retry at once: nothing carries the first request's marker yet, which proves nothing.
  const second = await services.engine.rotate({ ...req, force: true });
  expect(second.outcome.status).toBe('rotated');
  const stored = await tenant.reader.getSecret(SECRETS.app);
  expect(stored.properties.tags?.[TAGS.rotationStarted]).toMatch(new RegExp(`^${first.outcome.rotationId}@`));
  const records = await services.issuance.list(tenant.vaultName, SECRETS.app);
  expect(records.find((r) => r.rotationId === first.outcome.rotationId)?.state).toBe('requested');

  // The provider carries out the first request late.
  const rotator = ROTATORS.get('entra-app-secret')!;
  const parsed = rotator.parseTarget(stored.properties.tags ?? {}, tenant.settings);
  if (!('target' in parsed)) throw new Error('bad tags');
  const late = await rotator.create(
    parsed.target,
    { vaultName: tenant.vaultName, secretName: SECRETS.app, currentValue: stored.value ?? '' },
    {
      lifetimeSeconds: 86_400 * 30,
      expiresAt: new Date(azure().clock.now() + 86_400_000 * 30),
      marker: `${MARKER_PREFIX}:${tenant.vaultName}/${SECRETS.app}:${first.outcome.rotationId}`,
    },
    services.deps,
  );
  const early = await services.engine.reconcile(req);
  expect(early.outcome.status).toBe('skipped');
  expect(await credentialWorks(tenant, 'app', late.value)).toMatchObject({ works: true });

  azure().clock.advance(91_000);
  const result = await services.engine.reconcile(req);
  expect(result.outcome).toMatchObject({ status: 'revoked', credentialIds: [late.id] });
  expect(await credentialWorks(tenant, 'app', late.value)).toMatchObject({ works: false });
  const after = await tenant.reader.getSecret(SECRETS.app);
  expect(after.properties.tags?.[TAGS.rotationStarted]).toBeUndefined();
  expect(after.properties.version).toBe(stored.properties.version);
  expect(await credentialWorks(tenant, 'app', after.value!)).toMatchObject({ works: true });
});

test('an unanswered create request that nothing carries out is closed once it cannot be in flight', async () => {
  const tenant = await seedTenant(azure());
  const services = createEngine(tenant, { inFlightMs: 90_000 });
  const req = { vault: tenant.vaultName, secret: SECRETS.pat };
  dropOnce('databricks', '/api/2.0/token/create');
  const first = await services.engine.rotate({ ...req, force: true });
  expect(first.outcome).toMatchObject({ status: 'failed', step: 'create', transient: true });
  expect((await services.engine.reconcile(req)).outcome.status).toBe('skipped');
  const state = async () =>
    (await services.issuance.list(tenant.vaultName, SECRETS.pat)).find(
      (r) => r.rotationId === first.outcome.rotationId,
    )?.state;
  expect(await state()).toBe('requested');
  azure().clock.advance(91_000);
  expect((await services.engine.reconcile(req)).outcome).toMatchObject({
    status: 'skipped',
    reason: 'no orphaned credentials',
  });
  expect(await state()).toBe('refused');
  expect(
    (await tenant.reader.getSecret(SECRETS.pat)).properties.tags?.[TAGS.rotationStarted],
  ).toBeUndefined();
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

test('a lost answer whose id was claimed before the host died, with no record holding it, is revoked: the claim is its own', async () => {
  const lost = await lostAnswer('app', 'entra-app-secret');
  const { tenant, services, secret, orphan, initial } = lost;
  // The host dies between the two writes of `issued`: the claim is written, the record is not.
  const record = (await services.issuance.list(tenant.vaultName, secret)).find(
    (r) => r.rotationId === lost.rotationId,
  )!;
  const container = createBlobServiceClient(services.settings, services.credential).getContainerClient(
    STORAGE.issuanceContainer,
  );
  const dying = new BlobIssuance(
    new Proxy(container, {
      get: (target, p) => {
        if (p === 'getBlockBlobClient')
          return (name: string) =>
            name.startsWith('_targets/')
              ? target.getBlockBlobClient(name)
              : { upload: () => Promise.reject(new Error('the host was killed')) };
        const value: unknown = Reflect.get(target, p);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }),
  );
  await expect(
    dying.update(record, { state: 'issued', credentialId: orphan.id, at: new Date(azure().clock.now()) }),
  ).rejects.toThrow('the host was killed');
  expect(await services.issuance.claimant(lost.key, orphan.id)).toMatchObject({
    rotationId: lost.rotationId,
  });

  const result = await services.engine.reconcile({ vault: tenant.vaultName, secret });
  expect(result.outcome).toMatchObject({ status: 'revoked', credentialIds: [orphan.id] });
  expect(await credentialWorks(tenant, 'app', orphan.value)).toMatchObject({ works: false });
  expect(await credentialWorks(tenant, 'app', initial)).toMatchObject({ works: true });
});
