import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { BlobServiceClient, type BlobLeaseClient } from '@azure/storage-blob';
import { RequestCounts, type FaultRule } from '../../../local/azure/faults';
import { BlobLeaseLocks, type Locks } from '../../../shared/clients/lock';
import { MARKER_PREFIX, STORAGE, TAGS } from '../../../shared/constants';
import type { Outcome, RotationResult, Step } from '../../../shared/rotation/engine';
import { targetKey } from '../../../shared/issuance';
import { ROTATORS } from '../../../shared/rotators';
import type { Services } from '../../../shared/services';
import { useLocalAzure } from '../../support/localAzure';
import { credentialWorks, markerPrefix, providerCredentials, type SecretKey } from '../../support/probes';
import { createEngine, DAY, SECRETS, seedTenant, type Tenant } from '../../support/tenant';

/**
 * Failure at each step of the rotation protocol (design section 3), for each kind. Whatever fails,
 * the vault's latest version must hold a working credential, reconcile must leave no credential of
 * ours that the vault does not reference, and the next rotation must succeed.
 */

const azure = useLocalAzure();

/** A provider route as fault rules and request counts name it. */
interface Route {
  service: NonNullable<FaultRule['service']>;
  instance?: string;
  method: string;
  route: string;
}

interface KindCase {
  key: SecretKey;
  kind: string;
  routes: (t: Tenant) => Record<'create' | 'verify' | 'revoke', Route>;
  /** An error of the provider's management API, in its own shape. */
  error: (code: string, message: string) => unknown;
  /** What the verify route answers for a credential it does not accept (yet). */
  rejected: { status: number; body: unknown };
  verifyReason: RegExp;
}

const accountSecrets = '/api/2.0/accounts/:accountId/servicePrincipals/:spId/credentials/secrets';
const databricksError = (code: string, message: string) => ({ error_code: code, message });

const CASES: KindCase[] = [
  {
    key: 'pat',
    kind: 'databricks-pat',
    routes: (t) => {
      const ws = { service: 'databricks', instance: `ws-${t.vaultName}` } as const;
      return {
        create: { ...ws, method: 'POST', route: '/api/2.0/token/create' },
        verify: { ...ws, method: 'GET', route: '/api/2.0/preview/scim/v2/Me' },
        revoke: { ...ws, method: 'POST', route: '/api/2.0/token/delete' },
      };
    },
    error: databricksError,
    rejected: { status: 403, body: { error_code: 403, message: 'Invalid access token.' } },
    verifyReason: /scim\/v2\/Me.*403.*Invalid access token/,
  },
  {
    key: 'sp',
    kind: 'databricks-sp-secret',
    routes: () => ({
      create: { service: 'accounts', method: 'POST', route: accountSecrets },
      verify: { service: 'accounts', method: 'POST', route: '/oidc/accounts/:accountId/v1/token' },
      revoke: { service: 'accounts', method: 'DELETE', route: `${accountSecrets}/:secretId` },
    }),
    error: databricksError,
    rejected: {
      status: 401,
      body: { error: 'invalid_client', error_description: 'Client authentication failed' },
    },
    verifyReason: /v1\/token.*401.*Client authentication failed/,
  },
  {
    key: 'app',
    kind: 'entra-app-secret',
    routes: () => ({
      create: { service: 'graph', method: 'POST', route: '/graph/v1.0/:appIdKey/addPassword' },
      // The rotator's own identity gets its tokens from /msi/token; only the new app secret uses this.
      verify: { service: 'entra', method: 'POST', route: '/:tenant/oauth2/v2.0/token' },
      revoke: { service: 'graph', method: 'POST', route: '/graph/v1.0/:appIdKey/removePassword' },
    }),
    error: (code, message) => ({
      error: { code, message, innerError: { date: new Date().toISOString(), 'request-id': randomUUID() } },
    }),
    rejected: {
      status: 401,
      body: {
        error: 'invalid_client',
        error_description:
          'AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.',
        error_codes: [7000215],
      },
    },
    verifyReason: /does not issue tokens yet.*AADSTS7000215/,
  },
];

const INJECTED = 'Injected failure for the test';

// ---- What the tests observed, printed as a table at the end ----

interface Row {
  outcome?: string;
  works?: boolean;
  orphans?: number;
  /** Credential ids the vault's tags name that no longer exist at the provider. */
  dangling?: number;
  followUp?: string;
}
const observed = new Map<string, Row>();
const SCENARIOS: string[] = [];

afterAll(() => {
  const cell = (v: string | number | boolean | undefined) =>
    v === undefined ? '–' : typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v);
  const lines = [
    '| kind | step (injected) | outcome | vault credential works | orphans after reconcile | tag names a gone credential | follow-up rotate |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const kc of CASES) {
    for (const scenario of SCENARIOS) {
      const r = observed.get(`${kc.kind}|${scenario}`);
      if (!r) continue;
      lines.push(
        `| ${kc.kind} | ${scenario} | ${cell(r.outcome)} | ${cell(r.works)} | ${cell(r.orphans)} | ${cell(r.dangling === undefined ? undefined : r.dangling > 0)} | ${cell(r.followUp)} |`,
      );
    }
  }
  console.log(lines.join('\n'));
});

function describeOutcome(o: Outcome): string {
  switch (o.status) {
    case 'failed':
      return `failed(${o.step})${o.transient ? ', transient' : ''}`;
    case 'revoked':
      return `revoked ${o.credentialIds.length}`;
    default:
      return o.status;
  }
}

// ---- Per-test context and helpers ----

interface Ctx {
  kc: KindCase;
  tenant: Tenant;
  services: Services;
  secret: string;
  req: { vault: string; secret: string };
  routes: Record<'create' | 'verify' | 'revoke', Route>;
  counts: Record<string, number>;
  row: Row;
}

/** A fresh tenant; `scenario` names the table row the test fills in. */
async function setup(kc: KindCase, scenario?: string): Promise<Ctx> {
  const row: Row = {};
  if (scenario !== undefined) {
    if (!SCENARIOS.includes(scenario)) SCENARIOS.push(scenario);
    observed.set(`${kc.kind}|${scenario}`, row);
  }
  const tenant = await seedTenant(azure());
  const secret = SECRETS[kc.key];
  return {
    kc,
    tenant,
    services: createEngine(tenant),
    secret,
    req: { vault: tenant.vaultName, secret },
    routes: kc.routes(tenant),
    counts: azure().servers.counts.snapshot(),
    row,
  };
}

const label = (r: Route) => RequestCounts.label(r);
/** Requests to the route since the test's setup. */
const requests = (ctx: Ctx, r: Route) =>
  (azure().servers.counts.snapshot()[label(r)] ?? 0) - (ctx.counts[label(r)] ?? 0);

function fault(r: Route, rule: Omit<FaultRule, 'service' | 'instance' | 'method' | 'route'>): void {
  azure().servers.faults.add({ ...r, ...rule });
}

/**
 * The failed rotation left the provider with the credentials it had and the vault with the version it
 * had (whose credential works), and the next rotation succeeds.
 */
async function expectUnchangedThenRecovers(
  ctx: Ctx,
  before: { version?: string; value: string },
  ids: string[],
) {
  expect(providerIds(ctx)).toEqual(ids);
  expect(await latest(ctx)).toMatchObject({ version: before.version, value: before.value });
  await expectRecovers(ctx);
}

/** Key Vault refuses the new version with a status the SDK does not retry. */
function refuseStore(ctx: Ctx): void {
  fault(
    { service: 'keyvault', instance: ctx.tenant.vaultName, method: 'PUT', route: '/secrets/:name/?' },
    { status: 400, body: { error: { code: 'BadParameter', message: INJECTED } } },
  );
}

/** The latest version as an application reads it (the tenant's Secrets User). */
async function latest(ctx: Ctx) {
  const s = await ctx.tenant.reader.getSecret(ctx.secret);
  const tags = s.properties.tags ?? {};
  return {
    value: s.value ?? '',
    version: s.properties.version,
    tags,
    referenced: [tags[TAGS.credentialId], tags[TAGS.previousCredentialId]].filter((id): id is string =>
      Boolean(id),
    ),
  };
}

const providerIds = (ctx: Ctx) =>
  providerCredentials(ctx.tenant, ctx.kc.key)
    .map((c) => c.id)
    .sort();

function record(ctx: Ctx, result: RotationResult): Outcome {
  ctx.row.outcome = describeOutcome(result.outcome);
  return result.outcome;
}

function expectFailed(ctx: Ctx, result: RotationResult, step: Step, transient: boolean) {
  const o = record(ctx, result);
  expect(o).toMatchObject({ status: 'failed', step, transient });
  if (o.status !== 'failed') throw new Error('unreachable');
  expect(o.reason).not.toContain(ctx.tenant.initial[ctx.kc.key]);
  expect(result.notifications.map((n) => n.kind)).toContain('rotation-failed');
  return o;
}

/** (2) The vault's latest version holds a credential that works at the provider (faults cleared). */
async function expectVaultWorks(ctx: Ctx) {
  azure().servers.faults.clear();
  const current = await latest(ctx);
  const probe = await credentialWorks(ctx.tenant, ctx.kc.key, current.value);
  ctx.row.works = probe.works;
  expect(probe).toMatchObject({ works: true });
  return current;
}

/**
 * (3) Reconcile, then: no credential marked for this secret that the vault does not reference; for
 * SP secrets (no marker field) the SP's secrets are exactly the referenced ones.
 */
async function reconcileLeavesNoOrphans(ctx: Ctx): Promise<RotationResult> {
  azure().servers.faults.clear();
  const result = await ctx.services.engine.reconcile(ctx.req);
  expect(result.outcome.status).not.toBe('failed');
  const { referenced } = await latest(ctx);
  const prefix = markerPrefix(ctx.tenant.vaultName, ctx.secret);
  const credentials = providerCredentials(ctx.tenant, ctx.kc.key);
  const orphans = credentials.filter(
    (c) => !referenced.includes(c.id) && (ctx.kc.key === 'sp' || c.marker?.startsWith(prefix)),
  );
  ctx.row.orphans = orphans.length;
  ctx.row.dangling = referenced.filter((id) => !credentials.some((c) => c.id === id)).length;
  expect(orphans).toEqual([]);
  if (ctx.kc.key === 'sp') expect(credentials.map((c) => c.id).sort()).toEqual([...referenced].sort());
  return result;
}

/** (4) A rotation without faults succeeds and the reader gets the new, working credential. */
async function followUpRotates(ctx: Ctx, force = false): Promise<void> {
  const before = await latest(ctx);
  const result = await ctx.services.engine.rotate({ ...ctx.req, force });
  ctx.row.followUp = result.outcome.status;
  expect(result.outcome).toMatchObject({ status: 'rotated' });
  const after = await latest(ctx);
  expect(after.value).not.toBe(before.value);
  expect(await credentialWorks(ctx.tenant, ctx.kc.key, after.value)).toMatchObject({ works: true });
}

/** (2)–(4) after a failure. Returns the reconcile result. */
async function expectRecovers(ctx: Ctx, force = false): Promise<RotationResult> {
  await expectVaultWorks(ctx);
  const reconciled = await reconcileLeavesNoOrphans(ctx);
  await followUpRotates(ctx, force);
  return reconciled;
}

/** Request counts of everything but token issuance, to show a step changed nothing anywhere. */
function workCounts(): Record<string, number> {
  return Object.fromEntries(
    Object.entries(azure().servers.counts.snapshot()).filter(
      ([l]) => !l.startsWith('msi ') && !l.startsWith('entra '),
    ),
  );
}

/** Another worker's lease on the secret's lock blob, taken with the Storage SDK on Azurite. */
async function holdLock(vault: string, secret: string): Promise<BlobLeaseClient> {
  const container = BlobServiceClient.fromConnectionString(
    process.env.AZURITE_CONNECTION_STRING as string,
  ).getContainerClient(STORAGE.lockContainer);
  await container.createIfNotExists();
  const blob = container.getBlockBlobClient(`${vault}/${secret}`);
  if (!(await blob.exists())) await blob.upload('', 0);
  const lease = blob.getBlobLeaseClient();
  await lease.acquireLease(60);
  return lease;
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

afterEach(() => azure().servers.faults.clear());

describe.each(CASES)('$kind', (kc) => {
  test('create: a status the client does not retry (500) → failed(create), nothing created', async () => {
    const ctx = await setup(kc, 'create (500)');
    const before = await latest(ctx);
    const ids = providerIds(ctx);
    fault(ctx.routes.create, { status: 500, body: kc.error('INTERNAL_ERROR', INJECTED) });

    const result = await ctx.services.engine.rotate(ctx.req);

    const failed = expectFailed(ctx, result, 'create', true);
    expect(failed.reason).toContain(INJECTED);
    expect(requests(ctx, ctx.routes.create)).toBe(1);
    await expectUnchangedThenRecovers(ctx, before, ids);
  });

  test('create: 503 once with Retry-After 0 is retried by the client and the rotation succeeds', async () => {
    const ctx = await setup(kc, 'create (503 once, retried)');
    const before = await latest(ctx);
    fault(ctx.routes.create, {
      status: 503,
      body: kc.error('TEMPORARILY_UNAVAILABLE', INJECTED),
      retryAfterSeconds: 0,
      times: 1,
    });

    const result = await ctx.services.engine.rotate(ctx.req);

    expect(record(ctx, result)).toMatchObject({ status: 'rotated' });
    expect(requests(ctx, ctx.routes.create)).toBe(2);
    const after = await expectVaultWorks(ctx);
    expect(after.value).not.toBe(before.value);
    await reconcileLeavesNoOrphans(ctx);
    // The secret is no longer due: the follow-up rotation is forced (e.g. a suspected leak).
    await followUpRotates(ctx, true);
  });

  test('verify: the new credential keeps being rejected → failed(verify), it is revoked', async () => {
    const ctx = await setup(kc, 'verify');
    const before = await latest(ctx);
    const ids = providerIds(ctx);
    // No `times`: it outlasts every verify attempt of the engine (3 in createEngine).
    fault(ctx.routes.verify, kc.rejected);

    const result = await ctx.services.engine.rotate(ctx.req);

    // Never transient for every kind: the engine already retried for propagation and revoked the new
    // credential; an immediate retry (Event Grid, queue) would only mint and revoke more.
    const failed = expectFailed(ctx, result, 'verify', false);
    expect(failed.reason).toMatch(kc.verifyReason);
    expect(requests(ctx, ctx.routes.create)).toBe(1);
    expect(requests(ctx, ctx.routes.verify)).toBeGreaterThanOrEqual(3);
    // Compensation: the new credential was revoked at the provider.
    expect(requests(ctx, ctx.routes.revoke)).toBeGreaterThanOrEqual(1);
    await expectUnchangedThenRecovers(ctx, before, ids);
  });

  test('store: Key Vault refuses the new version (400) → failed(store), the new credential is revoked', async () => {
    const ctx = await setup(kc, 'store (400)');
    const before = await latest(ctx);
    const ids = providerIds(ctx);
    refuseStore(ctx);

    const result = await ctx.services.engine.rotate(ctx.req);

    const failed = expectFailed(ctx, result, 'store', false);
    expect(failed.reason).toContain(INJECTED);
    expect(requests(ctx, ctx.routes.create)).toBe(1);
    expect(requests(ctx, ctx.routes.revoke)).toBeGreaterThanOrEqual(1);
    await expectUnchangedThenRecovers(ctx, before, ids);
  });

  test('lock: the lease lapses during the rotation (a renewal refused) → failed(lock) before the store, the new credential revoked', async () => {
    const ctx = await setup(kc, 'lock lapsed before store');
    const before = await latest(ctx);
    const ids = providerIds(ctx);
    // The real lock, whose lease is lost from its second check on: the one before the store.
    const real = BlobLeaseLocks.fromSettings(ctx.tenant.settings, ctx.tenant.credential);
    const locks: Locks = {
      acquire: async (key) => {
        const lease = await real.acquire(key);
        if (!lease) return lease;
        let checks = 0;
        return { release: (o) => lease.release(o), held: () => ++checks < 2 && lease.held() };
      },
    };
    const { engine } = createEngine(ctx.tenant, { locks });

    const result = await engine.rotate(ctx.req);

    const failed = expectFailed(ctx, result, 'lock', true);
    expect(failed.reason).toMatch(/lapsed; stopped before storing the new credential/);
    expect(requests(ctx, ctx.routes.create)).toBe(1);
    expect(requests(ctx, ctx.routes.revoke)).toBeGreaterThanOrEqual(1);
    await expectUnchangedThenRecovers(ctx, before, ids);
  });

  test('store fails and so does the compensation → the reason says reconcile revokes it, and it does', async () => {
    const ctx = await setup(kc, 'store (400) + revoke (500)');
    const before = await latest(ctx);
    const ids = providerIds(ctx);
    refuseStore(ctx);
    fault(ctx.routes.revoke, { status: 500, body: kc.error('INTERNAL_ERROR', 'revoke is down') });

    const result = await ctx.services.engine.rotate(ctx.req);

    const failed = expectFailed(ctx, result, 'store', false);
    const created = providerCredentials(ctx.tenant, kc.key).filter((c) => !ids.includes(c.id));
    expect(created).toHaveLength(1);
    const orphan = created[0]!;
    if (kc.key !== 'sp')
      expect(orphan.marker).toBe(`${MARKER_PREFIX}:${ctx.req.vault}/${ctx.secret}:${failed.rotationId}`);
    expect(failed.reason).toContain(INJECTED);
    expect(failed.reason).toContain(orphan.id);
    expect(failed.reason).toMatch(/reconcile/);
    expect(await latest(ctx)).toMatchObject({ version: before.version, value: before.value });

    const reconciled = await expectRecovers(ctx);
    expect(reconciled.outcome).toMatchObject({ status: 'revoked', credentialIds: [orphan.id] });
  });

  test('create fails in a forced rotation that first revoked the pending previous credential', async () => {
    const ctx = await setup(kc, 'create (500), forced, previous pending');
    const first = await ctx.services.engine.rotate(ctx.req);
    expect(first.outcome).toMatchObject({ status: 'rotated' });
    const rotated = await latest(ctx);
    const previousId = rotated.tags[TAGS.previousCredentialId];
    expect(previousId).toBeDefined();
    fault(ctx.routes.create, { status: 500, body: kc.error('INTERNAL_ERROR', INJECTED) });

    // A forced rotation (suspected leak) revokes the previous credential still in grace, then creates.
    const result = await ctx.services.engine.rotate({ ...ctx.req, force: true });

    expectFailed(ctx, result, 'create', true);
    expect(result.notifications.map((n) => n.kind)).toContain('previous-revoked');
    expect(providerIds(ctx)).not.toContain(previousId);
    const tagsAfterFailure = (await latest(ctx)).tags;
    await expectRecovers(ctx, true);
    // The vault must not keep naming a credential that is gone as the one still to revoke.
    expect(tagsAfterFailure[TAGS.previousCredentialId]).toBeUndefined();
  });

  test('a pending previous credential that cannot be revoked does not block the rotation; it is reported', async () => {
    const ctx = await setup(kc, 'revoke pending previous (500) in a forced rotation');
    expect((await ctx.services.engine.rotate(ctx.req)).outcome).toMatchObject({ status: 'rotated' });
    const pending = (await latest(ctx)).tags[TAGS.previousCredentialId]!;
    fault(ctx.routes.revoke, { status: 500, body: kc.error('INTERNAL_ERROR', INJECTED) });

    const result = await ctx.services.engine.rotate({ ...ctx.req, force: true });

    expect(result.outcome).toMatchObject({ status: 'rotated' });
    const rotated = result.notifications.find((n) => n.kind === 'rotated')!;
    expect(rotated.details.unrevoked).toContain(pending);
    expect(providerIds(ctx)).toContain(pending);
    await expectVaultWorks(ctx);
  });

  test('revoke: the previous credential cannot be revoked → failed(revoke), the tags stay, a retry revokes it', async () => {
    const ctx = await setup(kc, 'revoke previous (500)');
    const rotated = await ctx.services.engine.rotate(ctx.req);
    expect(rotated.outcome).toMatchObject({ status: 'rotated' });
    const previousId = (await latest(ctx)).tags[TAGS.previousCredentialId];
    expect(previousId).toBeDefined();
    azure().clock.advance(2 * DAY); // past the default 24 h grace period
    fault(ctx.routes.revoke, { status: 500, body: kc.error('INTERNAL_ERROR', INJECTED) });

    const result = await ctx.services.engine.revokePrevious(ctx.req);

    const failed = expectFailed(ctx, result, 'revoke', true);
    expect(failed.reason).toContain(INJECTED);
    expect(requests(ctx, ctx.routes.revoke)).toBeGreaterThanOrEqual(1);
    const after = await latest(ctx);
    expect(after.tags[TAGS.previousCredentialId]).toBe(previousId);
    expect(after.tags[TAGS.revokePreviousAfter]).toBeDefined();
    expect(providerIds(ctx)).toContain(previousId);

    await expectVaultWorks(ctx);
    const retried = await ctx.services.engine.revokePrevious(ctx.req);
    expect(retried.outcome).toMatchObject({ status: 'revoked', credentialIds: [previousId] });
    expect(providerIds(ctx)).not.toContain(previousId);
    expect((await latest(ctx)).tags[TAGS.previousCredentialId]).toBeUndefined();
    expect(await credentialWorks(ctx.tenant, kc.key, ctx.tenant.initial[kc.key])).toMatchObject({
      works: false,
    });
    await reconcileLeavesNoOrphans(ctx);
    await followUpRotates(ctx, true);
  });

  test('lock: another holder keeps the lease → skipped, nothing changed', async () => {
    const ctx = await setup(kc, 'lock (held by another)');
    const before = await latest(ctx);
    const ids = providerIds(ctx);
    const lease = await holdLock(ctx.req.vault, ctx.secret);
    try {
      const counts = workCounts();
      const result = await ctx.services.engine.rotate(ctx.req);
      expect(record(ctx, result)).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/lock/) });
      expect(workCounts()).toEqual(counts);
    } finally {
      await lease.releaseLease();
    }
    expect(providerIds(ctx)).toEqual(ids);
    expect(await latest(ctx)).toMatchObject({
      version: before.version,
      value: before.value,
      tags: before.tags,
    });
    await expectRecovers(ctx);
  });

  test('lock: the lock store is unreachable → failed(lock), transient, nothing changed', async () => {
    const ctx = await setup(kc, 'lock (store unreachable)');
    const before = await latest(ctx);
    const ids = providerIds(ctx);
    const blobEndpoint = `http://127.0.0.1:${await closedPort()}/devstoreaccount1`;
    const settings = {
      ...ctx.tenant.settings,
      AzureWebJobsStorage: (process.env.AZURITE_CONNECTION_STRING as string).replace(
        /BlobEndpoint=[^;]+/,
        `BlobEndpoint=${blobEndpoint}`,
      ),
    };
    const { engine } = createEngine({ ...ctx.tenant, settings });
    const counts = workCounts();

    const result = await engine.rotate(ctx.req);

    const failed = expectFailed(ctx, result, 'lock', true);
    expect(failed.reason).toMatch(/ECONNREFUSED/);
    expect(workCounts()).toEqual(counts);
    expect(providerIds(ctx)).toEqual(ids);
    expect(await latest(ctx)).toMatchObject({
      version: before.version,
      value: before.value,
      tags: before.tags,
    });
    await expectRecovers(ctx);
  }, 120_000);

  test('crash between create and store: reconcile revokes the orphan', async () => {
    const ctx = await setup(kc, 'crash after create');
    const before = await latest(ctx);
    // What a killed process leaves behind: the started tag on the current version, and a new credential
    // created with the engine's marker that never made it into the vault.
    const vault = ctx.services.vaults.get(ctx.req.vault);
    const current = await vault.client.getSecret(ctx.secret);
    const tags = current.properties.tags ?? {};
    const rotator = ROTATORS.get(kc.kind)!;
    const parsed = rotator.parseTarget(tags, ctx.tenant.settings);
    if (!('target' in parsed)) throw new Error(`bad tags: ${JSON.stringify(parsed.findings)}`);
    const rotationId = randomUUID();
    const now = new Date(azure().clock.now());
    await vault.client.updateSecretProperties(ctx.secret, current.properties.version!, {
      tags: { ...tags, [TAGS.rotationStarted]: `${rotationId}@${now.toISOString()}` },
    });
    const lifetimeSeconds = 90 * 86_400;
    // As the engine does: the issuance record first, then the provider, then the record of its answer.
    const record = await ctx.services.issuance.begin({
      vault: ctx.req.vault,
      secret: ctx.secret,
      kind: kc.kind,
      target: targetKey(kc.kind, parsed.target),
      rotationId,
      at: now,
    });
    const orphan = await rotator.create(
      parsed.target,
      { vaultName: ctx.req.vault, secretName: ctx.secret, currentValue: current.value ?? '' },
      {
        lifetimeSeconds,
        expiresAt: new Date(now.getTime() + lifetimeSeconds * 1000),
        marker: `${MARKER_PREFIX}:${ctx.req.vault}/${ctx.secret}:${rotationId}`,
      },
      ctx.services.deps,
    );
    await ctx.services.issuance.update(record, { state: 'issued', credentialId: orphan.id, at: now });
    expect(await credentialWorks(ctx.tenant, kc.key, orphan.value)).toMatchObject({ works: true });
    expect(providerIds(ctx)).toContain(orphan.id);
    ctx.row.outcome = 'crashed (orphan left)';

    await expectVaultWorks(ctx);
    const reconciled = await reconcileLeavesNoOrphans(ctx);
    expect(reconciled.outcome).toMatchObject({ status: 'revoked', credentialIds: [orphan.id] });
    expect(reconciled.notifications.map((n) => n.kind)).toContain('orphan-revoked');
    expect(await credentialWorks(ctx.tenant, kc.key, orphan.value)).toMatchObject({ works: false });
    const after = await latest(ctx);
    expect(after.tags[TAGS.rotationStarted]).toBeUndefined();
    expect(after.value).toBe(before.value);
    await followUpRotates(ctx);
  });
});

/**
 * The transient flag follows the status the service answered, so an operator reading a failure
 * needs that status too (the Databricks client writes `METHOD path → status code: message`).
 */
describe('failure reasons name the HTTP status the service answered', () => {
  test.each(CASES)('$kind: the provider answers 500 on create', async (kc) => {
    const ctx = await setup(kc);
    fault(ctx.routes.create, { status: 500, body: kc.error('INTERNAL_ERROR', INJECTED) });
    const { outcome } = await ctx.services.engine.rotate(ctx.req);
    expect(outcome).toMatchObject({
      status: 'failed',
      step: 'create',
      reason: expect.stringContaining(INJECTED),
    });
    expect(outcome).toMatchObject({ reason: expect.stringMatching(/\b500\b/) });
  });

  test('Key Vault answers 400 on store', async () => {
    const ctx = await setup(CASES[0]!);
    refuseStore(ctx);
    const { outcome } = await ctx.services.engine.rotate(ctx.req);
    expect(outcome).toMatchObject({
      status: 'failed',
      step: 'store',
      reason: expect.stringContaining(INJECTED),
    });
    expect(outcome).toMatchObject({ reason: expect.stringMatching(/\b400\b/) });
  });
});
