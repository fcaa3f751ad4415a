import { createHash, randomBytes } from 'node:crypto';
import { RequestCounts, type FaultRule } from '../../../local/azure/faults';
import { parseSettings, type Settings } from '../../../shared/config';
import { TAGS } from '../../../shared/constants';
import type { Notification } from '../../../shared/notifications/notification';
import { emailHtml, emailSubject, facts, title } from '../../../shared/notifications/render';
import type { Outcome, RotationResult } from '../../../shared/rotation/engine';
import type { Services } from '../../../shared/services';
import { createTelemetry, trackOutcome } from '../../../shared/telemetry/telemetry';
import {
  captureOutput,
  captureRequests,
  findLeaks,
  vaultValues,
  type KnownValue,
  type OutputCapture,
} from '../../support/capture';
import { useLocalAzure } from '../../support/localAzure';
import { credentialWorks, type SecretKey } from '../../support/probes';
import { createEngine, DAY, newPat, SECRETS, seedTenant, type Tenant } from '../../support/tenant';

/**
 * The rotation protocol end to end (design sections 2-4), for each kind, with the real clients
 * against local Azure and Azurite: what an application reading the vault sees before, during and
 * after a rotation; the grace period; duplicate and concurrent requests; what must never be rotated
 * or touched; and that no secret value reaches any output.
 */

const azure = useLocalAzure();
const HOUR = 3_600_000;

interface Kind {
  key: SecretKey;
  kind: string;
  /** The route that creates a credential at the provider, as request counts and faults name it. */
  createRoute: (t: Tenant) => {
    service: 'databricks' | 'accounts' | 'graph';
    instance?: string;
    method: string;
    route: string;
  };
}

const KINDS: Kind[] = [
  {
    key: 'pat',
    kind: 'databricks-pat',
    createRoute: (t) => ({
      service: 'databricks',
      instance: `ws-${t.vaultName}`,
      method: 'POST',
      route: '/api/2.0/token/create',
    }),
  },
  {
    key: 'sp',
    kind: 'databricks-sp-secret',
    createRoute: () => ({
      service: 'accounts',
      method: 'POST',
      route: '/api/2.0/accounts/:accountId/servicePrincipals/:spId/credentials/secrets',
    }),
  },
  {
    key: 'app',
    kind: 'entra-app-secret',
    createRoute: () => ({
      service: 'graph',
      method: 'POST',
      route: '/graph/v1.0/:appIdKey/addPassword',
    }),
  },
];
const kindOf = (key: SecretKey): Kind => KINDS.find((k) => k.key === key)!;

// ---- Everything the engine produced in this file, checked for secret values by the last test ----

const produced: { op: string; result: RotationResult }[] = [];
let output: OutputCapture;
const knownValues: KnownValue[] = [];

beforeAll(() => {
  output = captureOutput();
});
afterAll(() => {
  output.stop();
  printCountsTable();
});

/**
 * Runs an engine operation the way the functions do: the outcome goes through telemetry to the log
 * (captured above) and the result is kept for the leak check.
 */
async function run(
  ctx: Ctx,
  op: 'rotate' | 'revoke-previous' | 'reconcile',
  promise: Promise<RotationResult>,
): Promise<RotationResult> {
  const result = await promise;
  produced.push({ op, result });
  trackOutcome(
    createTelemetry(ctx.tenant.settings).with({ test: expect.getState().currentTestName }),
    result.outcome,
    op,
  );
  return result;
}

// ---- Per-test context and helpers ----

interface Ctx {
  key: SecretKey;
  kind: string;
  tenant: Tenant;
  services: Services;
  secret: string;
  req: { vault: string; secret: string };
}

/** A fresh tenant; `env` changes app settings (it may name the tenant's vault and targets). */
async function setup(key: SecretKey, env?: (t: Tenant) => Record<string, string>): Promise<Ctx> {
  const tenant = await seedTenant(azure());
  for (const k of ['pat', 'sp', 'app'] as const)
    knownValues.push({ value: tenant.initial[k], source: `seed ${k}` });
  const t = env ? { ...tenant, settings: settingsWith(tenant, env(tenant)) } : tenant;
  const secret = SECRETS[key];
  return {
    key,
    kind: kindOf(key).kind,
    tenant: t,
    services: createEngine(t),
    secret,
    req: { vault: tenant.vaultName, secret },
  };
}

/** The tenant's settings re-parsed from app-setting strings with some settings changed. */
function settingsWith(tenant: Tenant, env: Record<string, string>): Settings {
  const s = tenant.settings;
  return parseSettings({
    KEY_VAULT_URIS: s.KEY_VAULT_URIS.map((v) => `${v.name}=${v.url}`).join(','),
    AZURE_TENANT_ID: s.AZURE_TENANT_ID,
    AZURE_CLIENT_ID: s.AZURE_CLIENT_ID,
    AZURE_AUTHORITY_HOST: s.AZURE_AUTHORITY_HOST,
    GRAPH_BASE_URL: s.GRAPH_BASE_URL,
    DATABRICKS_ACCOUNTS_HOST: s.DATABRICKS_ACCOUNTS_HOST,
    DATABRICKS_ALLOWED_HOSTS: s.DATABRICKS_ALLOWED_HOSTS.join(','),
    ROTATION_BINDINGS: s.ROTATION_BINDINGS.map((b) => `${b.vault}/${b.secret}=${b.target}`).join(','),
    AzureWebJobsStorage: s.AzureWebJobsStorage,
    ...env,
  });
}

/** A credential as the provider keeps it, expired ones included: id and expiry (epoch ms). */
interface ProviderCredential {
  id: string;
  expiresAt: number;
}

function providerCredentials(ctx: Pick<Ctx, 'tenant' | 'key'>): ProviderCredential[] {
  const { tenant } = ctx;
  const state = azure().state;
  switch (ctx.key) {
    case 'pat':
      return state.workspaces
        .get(`ws-${tenant.vaultName}`)!
        .tokens.map((t) => ({ id: t.tokenId, expiresAt: t.expiryTime }));
    case 'sp':
      return state.accounts
        .get(tenant.accountId)!
        .servicePrincipals.find((s) => s.applicationId === tenant.spApplicationId)!
        .secrets.map((s) => ({ id: s.id, expiresAt: Date.parse(s.expireTime) }));
    case 'app':
      return state.apps
        .find((a) => a.appId === tenant.appId)!
        .passwordCredentials.map((p) => ({ id: p.keyId, expiresAt: Date.parse(p.endDateTime) }));
  }
}
const providerIds = (ctx: Ctx) =>
  providerCredentials(ctx)
    .map((c) => c.id)
    .sort();

/** The secret's versions as the vault keeps them (for counts and for the values ever stored). */
const versions = (ctx: Ctx) => azure().state.vaults.get(ctx.tenant.vaultName)!.secrets.get(ctx.secret) ?? [];

/** The latest version as an application reads it (the tenant's Secrets User). */
async function latest(ctx: Ctx) {
  const s = await ctx.tenant.reader.getSecret(ctx.secret);
  return {
    value: s.value ?? '',
    version: s.properties.version,
    tags: { ...(s.properties.tags ?? {}) },
    expiresOn: s.properties.expiresOn,
    enabled: s.properties.enabled,
  };
}

/** The vault and the provider as they are, to show later that nothing changed. */
async function snapshot(ctx: Ctx) {
  const { value, ...rest } = await latest(ctx);
  // A digest, so a failing comparison never prints the value.
  const digest = createHash('sha256').update(value).digest('hex').slice(0, 12);
  return { latest: { ...rest, digest }, versions: versions(ctx).length, provider: providerIds(ctx) };
}
async function expectUnchanged(ctx: Ctx, before: Awaited<ReturnType<typeof snapshot>>) {
  expect(await snapshot(ctx)).toEqual(before);
}

const counts = () => azure().servers.counts.snapshot();
/** Requests per route since `before`, only routes that were called. */
function countsSince(before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(counts())
      .map(([label, n]) => [label, n - (before[label] ?? 0)] as const)
      .filter(([, n]) => n > 0),
  );
}

const seedTags = (ctx: Ctx) =>
  azure().state.vaults.get(ctx.tenant.vaultName)!.secrets.get(ctx.secret)![0]!.tags;

async function probe(ctx: Ctx, value: string) {
  return credentialWorks(ctx.tenant, ctx.key, value);
}

function expectStatus<S extends Outcome['status']>(o: Outcome, status: S): Extract<Outcome, { status: S }> {
  expect(o).toMatchObject({ status });
  return o as Extract<Outcome, { status: S }>;
}

afterEach(() => azure().servers.faults.clear());

// ---- 1. Happy path, with a reader before, during and after ----

interface Read {
  phase: 'before' | 'during' | 'after';
  version: string;
  value: string;
  works: boolean;
  detail: string;
}

async function readAndProbe(ctx: Ctx, phase: Read['phase']): Promise<Read> {
  const s = await latest(ctx);
  const p = await probe(ctx, s.value);
  return { phase, version: s.version ?? '', value: s.value, works: p.works, detail: p.detail };
}

describe.each(KINDS)('$kind: rotation as an application reading the vault sees it', ({ key }) => {
  test('every value read before, during and after works; new version, grace period, revoke', async () => {
    const ctx = await setup(key);
    const tagsBefore = { ...seedTags(ctx) };
    const oldId = tagsBefore[TAGS.credentialId]!;
    const initial = ctx.tenant.initial[key];
    const providerBefore = providerIds(ctx);

    const reads: Read[] = [];
    for (let i = 0; i < 2; i++) reads.push(await readAndProbe(ctx, 'before'));

    // A slower provider keeps the rotation in flight long enough for the reader to read during it.
    azure().servers.faults.add({ ...kindOf(key).createRoute(ctx.tenant), latencyMs: 400, times: 1 });
    const clockBefore = azure().clock.now();
    let settled = false;
    const rotation = run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req)).finally(() => {
      settled = true;
    });
    const reader = (async () => {
      while (!settled) reads.push(await readAndProbe(ctx, 'during'));
    })();
    const [result] = await Promise.all([rotation, reader]);
    const clockAfter = azure().clock.now();
    for (let i = 0; i < 2; i++) reads.push(await readAndProbe(ctx, 'after'));

    const rotated = expectStatus(result.outcome, 'rotated');
    // Every value the application got worked at the provider when it got it.
    expect(reads.filter((r) => !r.works).map(({ value: _v, ...r }) => r)).toEqual([]);
    expect(reads.filter((r) => r.phase === 'during').length).toBeGreaterThan(0);
    expect(reads.filter((r) => r.phase === 'before').every((r) => r.value === initial)).toBe(true);
    const after = await latest(ctx);
    expect(after.value).not.toBe(initial);
    expect(reads.filter((r) => r.phase === 'after').every((r) => r.value === after.value)).toBe(true);
    // During the rotation the reader saw the old value, then possibly the new one: never anything else.
    expect(reads.every((r) => r.value === initial || r.value === after.value)).toBe(true);

    // Exactly one new credential, and the version names it.
    const created = providerCredentials(ctx).filter((c) => !providerBefore.includes(c.id));
    expect(created.map((c) => c.id)).toEqual([rotated.credentialId]);
    const credential = created[0]!;
    // exp = the credential's expiry (Key Vault keeps seconds).
    expect(after.expiresOn?.getTime()).toBe(Math.floor(credential.expiresAt / 1000) * 1000);
    expect(rotated.newExpiry).toBe(new Date(credential.expiresAt).toISOString());

    // Tags: the policy tags carried forward, the state tags of this rotation, no started marker.
    const policyTags = Object.fromEntries(
      Object.entries(tagsBefore).filter(([k]) => k !== TAGS.credentialId),
    );
    expect(rotated.revokePreviousAfter).toBeDefined();
    expect(after.tags).toEqual({
      ...policyTags,
      [TAGS.credentialId]: credential.id,
      [TAGS.previousCredentialId]: oldId,
      [TAGS.revokePreviousAfter]: rotated.revokePreviousAfter,
      [TAGS.rotationId]: rotated.rotationId,
    });
    expect(after.tags[TAGS.rotationStarted]).toBeUndefined();
    const revokeAfter = Date.parse(after.tags[TAGS.revokePreviousAfter]!);
    expect(revokeAfter).toBeGreaterThanOrEqual(clockBefore + 24 * HOUR);
    expect(revokeAfter).toBeLessThanOrEqual(clockAfter + 24 * HOUR);
    expect(result.notifications.map((n) => n.kind)).toEqual(['rotated']);
    expect(result.notifications[0]!.details).toMatchObject({
      credentialId: credential.id,
      previousCredentialId: oldId,
    });

    // Within the grace period the previous credential keeps working and is not revoked.
    const stored = await snapshot(ctx);
    azure().clock.advance(23 * HOUR);
    const early = await run(ctx, 'revoke-previous', ctx.services.engine.revokePrevious(ctx.req));
    expect(early.outcome).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/grace period/) });
    expect(await probe(ctx, initial)).toMatchObject({ works: true });
    expect(providerIds(ctx)).toContain(oldId);
    expect(await snapshot(ctx)).toEqual(stored);

    // After it, the previous credential is revoked at the provider and its tags are gone.
    azure().clock.advance(2 * HOUR);
    const revoked = await run(ctx, 'revoke-previous', ctx.services.engine.revokePrevious(ctx.req));
    expect(revoked.outcome).toMatchObject({ status: 'revoked', credentialIds: [oldId] });
    expect(revoked.notifications.map((n) => n.kind)).toEqual(['previous-revoked']);
    expect(await probe(ctx, initial)).toMatchObject({ works: false });
    expect(providerIds(ctx)).toEqual([credential.id]);
    const final = await snapshot(ctx);
    expect(final.latest.tags).toEqual({
      ...policyTags,
      [TAGS.credentialId]: credential.id,
      [TAGS.rotationId]: rotated.rotationId,
    });
    // The same version (tags updated in place) and value.
    expect(final.latest).toMatchObject({ digest: stored.latest.digest, version: stored.latest.version });
    expect(final.versions).toBe(stored.versions);
    expect(await probe(ctx, after.value)).toMatchObject({ works: true });
  });
});

// ---- Request counts of one rotation, for the closing note ----

const observedCounts = new Map<string, { cold: Record<string, number>; warm: Record<string, number> }>();

function printCountsTable(): void {
  if (observedCounts.size === 0) return;
  const kindOfLabel = (label: string) =>
    label.startsWith('keyvault')
      ? 'Key Vault'
      : label.startsWith('msi')
        ? 'token (own identity)'
        : 'provider';
  const sum = (c: Record<string, number>, group: string) =>
    Object.entries(c)
      .filter(([l]) => kindOfLabel(l) === group)
      .reduce((n, [, v]) => n + v, 0);
  const lines = [
    '| kind | engine | provider calls | Key Vault calls | own-identity token calls | routes |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const [kind, { cold, warm }] of observedCounts) {
    for (const [name, c] of [
      ['cold', cold],
      ['warm', warm],
    ] as const) {
      const routes = Object.entries(c)
        .map(([l, n]) => `${l.replace(/^(\S+)\/\S+/, '$1')} ×${n}`)
        .join('; ');
      lines.push(
        `| ${kind} | ${name} | ${sum(c, 'provider')} | ${sum(c, 'Key Vault')} | ${sum(c, 'token (own identity)')} | ${routes} |`,
      );
    }
  }
  process.stdout.write(
    `\nRequests of one engine.rotate (request counts around the call):\n${lines.join('\n')}\n`,
  );
}

describe.each(KINDS)('$kind: requests of one rotation', ({ key, kind, createRoute }) => {
  test('one create, one verify, one store; a warm engine repeats it without the auth overhead', async () => {
    const ctx = await setup(key);
    const before = counts();
    const first = await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));
    const cold = countsSince(before);
    expectStatus(first.outcome, 'rotated');

    // Next time it is due, the same engine (tokens cached) does it again.
    azure().clock.advance(25 * HOUR);
    expectStatus(
      (await run(ctx, 'revoke-previous', ctx.services.engine.revokePrevious(ctx.req))).outcome,
      'revoked',
    );
    azure().clock.advance(61 * DAY);
    const before2 = counts();
    const second = await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));
    const warm = countsSince(before2);
    expectStatus(second.outcome, 'rotated');
    observedCounts.set(kind, { cold, warm });

    const vault = `keyvault/${ctx.tenant.vaultName}`;
    for (const c of [cold, warm]) {
      expect(c[RequestCounts.label(createRoute(ctx.tenant))]).toBe(1);
      // One store, one tag update (the started marker) on the version being replaced.
      expect(c[`${vault} PUT /secrets/:name/?`]).toBe(1);
      expect(Object.entries(c).filter(([l]) => l.startsWith(`${vault} PATCH`))).toHaveLength(1);
      expect(
        Object.entries(c).filter(
          ([l]) => l.includes('DELETE') || l.includes('removePassword') || l.includes('token/delete'),
        ),
      ).toEqual([]);
    }
    // A warm engine asks nothing of its own identity's token endpoint.
    expect(Object.keys(warm).filter((l) => l.startsWith('msi'))).toEqual([]);
  });
});

// ---- 2. Duplicate events and concurrency ----

describe.each(KINDS)('$kind: duplicate and concurrent requests create one credential', ({ key }) => {
  test('twice in a row: the second is skipped as not due', async () => {
    const ctx = await setup(key);
    const provider = providerIds(ctx).length;
    const stored = versions(ctx).length;

    const first = await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));
    const second = await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));

    expectStatus(first.outcome, 'rotated');
    expect(second.outcome).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/^not due/) });
    expect(second.notifications).toEqual([]);
    expect(providerIds(ctx)).toHaveLength(provider + 1);
    expect(versions(ctx)).toHaveLength(stored + 1);
    expect(await probe(ctx, (await latest(ctx)).value)).toMatchObject({ works: true });
  });

  test.each([
    ['the same engine', false],
    ['two workers (two engines)', true],
  ])('twice at once through %s: one rotated, one skipped', async (_name, twoWorkers) => {
    const ctx = await setup(key);
    const provider = providerIds(ctx).length;
    const stored = versions(ctx).length;
    const other = twoWorkers ? createEngine(ctx.tenant) : ctx.services;

    const results = await Promise.all([
      run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req)),
      run(ctx, 'rotate', other.engine.rotate(ctx.req)),
    ]);

    expect(results.map((r) => r.outcome.status).sort()).toEqual(['rotated', 'skipped']);
    expect(providerIds(ctx)).toHaveLength(provider + 1);
    expect(versions(ctx)).toHaveLength(stored + 1);
    const rotated = results.find((r) => r.outcome.status === 'rotated')!.outcome;
    const current = await latest(ctx);
    expect(current.tags[TAGS.credentialId]).toBe((rotated as { credentialId: string }).credentialId);
    expect(await probe(ctx, current.value)).toMatchObject({ works: true });
  });
});

// ---- 3. A PAT that already expired ----

describe('databricks-pat: the current PAT already expired', () => {
  async function expiredPat() {
    const ctx = await setup('pat');
    azure().clock.advance(11 * DAY); // the seed expires in 10 days; vault exp and PAT expiry alike
    expect(await probe(ctx, ctx.tenant.initial.pat)).toMatchObject({ works: false });
    return ctx;
  }

  test('failed at create with a clear reason and a notification; nothing changed', async () => {
    const ctx = await expiredPat();
    const before = await snapshot(ctx);
    const tokens = providerCredentials(ctx).length;

    const result = await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));

    const failed = expectStatus(result.outcome, 'failed');
    expect(failed).toMatchObject({ step: 'create', transient: false });
    expect(failed.reason).toMatch(/no longer valid \(expired or revoked\).*store a new PAT by hand/);
    expect(result.notifications.map((n) => n.kind)).toEqual(['rotation-failed']);
    expect(result.notifications[0]).toMatchObject({
      severity: 'error',
      details: { step: 'create', kind: 'databricks-pat', reason: failed.reason },
    });
    expect(providerCredentials(ctx)).toHaveLength(tokens);
    // No new version, no new token, and the version's tags as they were.
    await expectUnchanged(ctx, before);
  });

  test('a retry (the next scan or event) fails the same way, at create', async () => {
    const ctx = await expiredPat();
    const first = await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));
    expect(first.outcome).toMatchObject({ status: 'failed', step: 'create' });

    const retry = await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));

    expect(retry.outcome).toMatchObject({
      status: 'failed',
      step: 'create',
      reason: expect.stringMatching(/no longer valid/),
    });
  });
});

// ---- 4. Not opted in, bad tags, dry run ----

/** Where a request went, as request counts label it, grouped by service. */
const services = (c: Record<string, number>) =>
  [...new Set(Object.keys(c).map((l) => l.split(/[ /]/)[0]))].sort();

describe('what the engine must not touch', () => {
  test('a secret without rotation-kind is skipped: one Key Vault read, no write anywhere', async () => {
    const ctx = await setup('pat');
    const name = 'plain-connection-string';
    const value = `Server=tcp:db;Password=${randomBytes(12).toString('hex')}`;
    knownValues.push({ value, source: name });
    const vault = ctx.services.vaults.get(ctx.tenant.vaultName).client;
    await vault.setSecret(name, value, {
      tags: { owner: 'data-eng', [TAGS.databricksHost]: new URL(ctx.tenant.workspaceUrl).host },
    });
    const req = { vault: ctx.tenant.vaultName, secret: name };
    const stored = (await vault.getSecret(name)).properties;
    const before = counts();

    const result = await run(ctx, 'rotate', ctx.services.engine.rotate(req));
    const forced = await run(ctx, 'rotate', ctx.services.engine.rotate({ ...req, force: true }));

    for (const r of [result, forced]) {
      expect(r.outcome).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/not opted in/) });
      expect(r.notifications).toEqual([]);
    }
    const c = countsSince(before);
    expect(services(c).filter((s) => s !== 'msi')).toEqual(['keyvault']);
    expect(Object.keys(c).filter((l) => l.startsWith('keyvault') && !l.includes(' GET '))).toEqual([]);
    const now = (await vault.getSecret(name)).properties;
    expect(now).toEqual(stored);
  });

  /** A workspace that exists (its PAT works there) but is not in DATABRICKS_ALLOWED_HOSTS. */
  async function foreignWorkspace() {
    const name = `ws-other-${randomBytes(3).toString('hex')}`;
    const pat = newPat();
    knownValues.push({ value: pat, source: `${name} PAT` });
    const seeded = await azure().seed({
      workspaces: [
        {
          name,
          principals: [{ userName: 'x@contoso.com' }],
          tokens: [{ owner: 'x@contoso.com', value: pat }],
        },
      ],
    });
    const url = seeded.workspaces[name]!.url;
    return { name, url, host: new URL(url).host, pat };
  }

  test('bad tags → failed(policy) naming each finding; no request to the bad host nor any provider', async () => {
    const ctx = await setup('pat');
    const foreign = await foreignWorkspace();
    expect(
      await credentialWorks({ ...ctx.tenant, workspaceUrl: foreign.url }, 'pat', foreign.pat),
    ).toMatchObject({
      works: true,
    });
    const accountId = ctx.tenant.accountId;
    const cases: { name: string; tags: Record<string, string>; findings: Record<string, RegExp> }[] = [
      {
        name: 'unknown-kind',
        tags: { [TAGS.kind]: 'aws-access-key' },
        findings: { [TAGS.kind]: /unknown kind "aws-access-key"; expected one of databricks-pat/ },
      },
      {
        name: 'non-numeric-days',
        tags: {
          [TAGS.kind]: 'databricks-pat',
          [TAGS.databricksHost]: new URL(ctx.tenant.workspaceUrl).host,
          [TAGS.validityDays]: 'ninety',
          [TAGS.graceHours]: '24h',
        },
        findings: {
          [TAGS.validityDays]: /"ninety": expected a whole number/,
          [TAGS.graceHours]: /"24h": expected a whole number/,
        },
      },
      {
        name: 'missing-host',
        tags: { [TAGS.kind]: 'databricks-pat', [TAGS.windowDays]: '7' },
        findings: { [TAGS.databricksHost]: /required for databricks-pat/ },
      },
      {
        name: 'evil-host',
        tags: { [TAGS.kind]: 'databricks-pat', [TAGS.databricksHost]: 'evil.example.com' },
        findings: {
          [TAGS.databricksHost]:
            /"evil\.example\.com" is not an Azure Databricks host .*DATABRICKS_ALLOWED_HOSTS/,
        },
      },
      {
        name: 'host-not-allowlisted',
        tags: { [TAGS.kind]: 'databricks-pat', [TAGS.databricksHost]: foreign.url },
        findings: { [TAGS.databricksHost]: new RegExp(`"${foreign.host}" is not an Azure Databricks host`) },
      },
      {
        name: 'sp-bad-ids',
        tags: {
          [TAGS.kind]: 'databricks-sp-secret',
          [TAGS.databricksAccountId]: 'contoso',
          [TAGS.databricksSpId]: ctx.tenant.spId,
          [TAGS.validityDays]: '-5',
        },
        findings: {
          [TAGS.databricksAccountId]: /expected the Databricks account id \(GUID\)/,
          [TAGS.validityDays]: /"-5": expected a whole number/,
        },
      },
      {
        name: 'app-missing-id',
        tags: { [TAGS.kind]: 'entra-app-secret', [TAGS.databricksAccountId]: accountId },
        findings: { [TAGS.entraAppId]: /required for entra-app-secret/ },
      },
    ];
    const vault = ctx.services.vaults.get(ctx.tenant.vaultName).client;
    for (const c of cases) await vault.setSecret(c.name, foreign.pat, { tags: c.tags });
    const stored = Object.fromEntries(
      await Promise.all(
        cases.map(async (c) => [c.name, (await vault.getSecret(c.name)).properties] as const),
      ),
    );
    const foreignLabel = `databricks/${foreign.name}`;
    const before = counts();
    const requests = captureRequests();
    const results: RotationResult[] = [];
    try {
      for (const c of cases)
        results.push(
          await run(
            ctx,
            'rotate',
            ctx.services.engine.rotate({ vault: ctx.tenant.vaultName, secret: c.name, force: true }),
          ),
        );
    } finally {
      requests.stop();
    }

    cases.forEach((c, i) => {
      const { outcome, notifications } = results[i]!;
      const failed = expectStatus(outcome, 'failed');
      expect(failed).toMatchObject({ step: 'policy', transient: false });
      for (const [tag, reason] of Object.entries(c.findings)) {
        expect(failed.reason).toMatch(new RegExp(`${tag}: ${reason.source}`));
      }
      expect(notifications.map((n) => n.kind)).toEqual(['rotation-failed']);
      expect(notifications[0]!.details).toMatchObject({ step: 'policy', reason: failed.reason });
    });
    // Only Key Vault (and the rotator's own token for it) was asked anything; the foreign workspace nothing.
    const c = countsSince(before);
    expect(services(c).filter((s) => s !== 'msi')).toEqual(['keyvault']);
    expect(Object.keys(c).filter((l) => l.startsWith('keyvault') && !l.includes(' GET '))).toEqual([]);
    expect(Object.keys(c).filter((l) => l.startsWith(foreignLabel))).toEqual([]);
    // Seen from this process: no request to evil.example.com or the foreign workspace, nor to any provider.
    const allowed = [
      ctx.tenant.vaultUrl,
      azure().url,
      new URL(process.env.AZURITE_CONNECTION_STRING!.match(/BlobEndpoint=([^;]+)/)![1]!).origin,
    ];
    // Jest reuses a worker across test files: an Application Insights exporter started by an earlier
    // file (tests/infra/telemetry.test.ts, its own local ingestion server) may flush during this one.
    // That is telemetry ingestion, not a provider; anything else must not be here.
    const outside = requests.requests.filter(
      (r) =>
        r.path !== '/v2.1/track' &&
        (!allowed.includes(r.origin) || (r.origin === azure().url && !r.path.startsWith('/msi/'))),
    );
    expect(outside).toEqual([]);
    expect(requests.requests.some((r) => r.origin === ctx.tenant.vaultUrl)).toBe(true);
    // The secrets themselves are untouched.
    for (const c of cases) expect((await vault.getSecret(c.name)).properties).toEqual(stored[c.name]);
  });
});

describe.each(KINDS)('$kind: dry run', ({ key, kind }) => {
  const planFor = (ctx: Ctx) => {
    const target = {
      pat: new URL(ctx.tenant.workspaceUrl).host,
      sp: `account ${ctx.tenant.accountId} service principal ${ctx.tenant.spId}`,
      app: `app ${ctx.tenant.appId}`,
    }[key];
    return [
      `create a ${kind} credential for ${target} valid 90 days`,
      'verify it',
      `store it as a new version of ${ctx.secret} (previous credential revoked after 24 h)`,
    ];
  };

  async function expectPlannedOnly(
    ctx: Ctx,
    engine: Services['engine'],
    req: Parameters<Services['engine']['rotate']>[0],
  ) {
    const before = await snapshot(ctx);
    const c0 = counts();
    const result = await run(ctx, 'rotate', engine.rotate(req));
    expect(result.outcome).toMatchObject({ status: 'planned', plan: planFor(ctx) });
    expect(result.notifications).toEqual([]);
    const c = countsSince(c0);
    // Reads only: Key Vault GETs, and for the Entra app the binding check (a Graph GET).
    expect(Object.keys(c).filter((l) => !l.startsWith('msi') && !l.includes(' GET '))).toEqual([]);
    await expectUnchanged(ctx, before);
  }

  test('dryRun: true → planned, no write at any provider nor Key Vault', async () => {
    const ctx = await setup(key);
    await expectPlannedOnly(ctx, ctx.services.engine, { ...ctx.req, dryRun: true });
  });

  test('ROTATION_DRY_RUN=true → planned, no write', async () => {
    const ctx = await setup(key, () => ({ ROTATION_DRY_RUN: 'true' }));
    expect(ctx.tenant.settings.ROTATION_DRY_RUN).toBe(true);
    await expectPlannedOnly(ctx, ctx.services.engine, ctx.req);
  });

  test('ROTATION_DRY_RUN=true is not overridden by a request that says dryRun: false', async () => {
    const ctx = await setup(key, () => ({ ROTATION_DRY_RUN: 'true' }));
    await expectPlannedOnly(ctx, ctx.services.engine, { ...ctx.req, dryRun: false });
  });
});

// ---- 5. Binding (confused deputy) and disabled versions ----

describe('binding: a vault may only rotate targets bound to it', () => {
  const spCases: [string, (t: Tenant) => string][] = [
    ['no binding at all', () => ''],
    [
      'bound to another secret in the vault',
      (t) => `${t.vaultName}/other-secret=databricks-sp:${t.accountId}/${t.spId}`,
    ],
    ['bound to another vault', (t) => `kv-elsewhere/${SECRETS.sp}=databricks-sp:${t.accountId}/${t.spId}`],
    [
      'the binding names another service principal',
      (t) => `${t.vaultName}/${SECRETS.sp}=databricks-sp:${t.accountId}/999`,
    ],
  ];

  test.each(spCases)(
    'databricks-sp-secret, %s → failed(binding), nothing created',
    async (_name, binding) => {
      const ctx = await setup('sp', (t) => ({ ROTATION_BINDINGS: binding(t) }));
      const before = await snapshot(ctx);
      const c0 = counts();

      const result = await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));

      const failed = expectStatus(result.outcome, 'failed');
      expect(failed).toMatchObject({ step: 'binding', transient: false });
      expect(failed.reason).toContain(
        `"${ctx.tenant.vaultName}/${SECRETS.sp}=databricks-sp:${ctx.tenant.accountId}/${ctx.tenant.spId}" to ROTATION_BINDINGS`,
      );
      expect(result.notifications.map((n) => n.kind)).toEqual(['rotation-failed']);
      expect(services(countsSince(c0)).filter((s) => s !== 'msi')).toEqual(['keyvault']);
      await expectUnchanged(ctx, before);
    },
  );

  test('databricks-sp-secret bound with a vault-wide entry (vault/*) → rotates', async () => {
    const ctx = await setup('sp', (t) => ({
      ROTATION_BINDINGS: `${t.vaultName}/*=databricks-sp:${t.accountId}/${t.spId}`,
    }));
    expectStatus((await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req))).outcome, 'rotated');
  });

  /** Sets the Entra application's tags, as one of its owners would. */
  function setAppTags(t: Tenant, tags: string[]): void {
    azure().state.apps.find((a) => a.appId === t.appId)!.tags = tags;
  }

  test.each([
    ['no tag', (): string[] => []],
    ['a tag for another secret', (t: Tenant) => [`kv-rotator:${t.vaultName}/other-secret`]],
    ['a tag for another vault', () => [`kv-rotator:kv-elsewhere/${SECRETS.app}`]],
  ])(
    'entra-app-secret with %s and no binding setting → failed(binding), nothing created',
    async (_n, tags) => {
      const ctx = await setup('app');
      setAppTags(ctx.tenant, tags(ctx.tenant));
      const before = await snapshot(ctx);

      const result = await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));

      const failed = expectStatus(result.outcome, 'failed');
      expect(failed).toMatchObject({ step: 'binding', transient: false });
      expect(failed.reason).toContain(
        `app ${ctx.tenant.appId} is not bound to ${ctx.tenant.vaultName}/${SECRETS.app}`,
      );
      expect(failed.reason).toContain(
        `or tag the target "kv-rotator:${ctx.tenant.vaultName}/${SECRETS.app}"`,
      );
      expect(result.notifications.map((n) => n.kind)).toEqual(['rotation-failed']);
      await expectUnchanged(ctx, before);
    },
  );

  test('entra-app-secret without the tag but with a ROTATION_BINDINGS entry → rotates', async () => {
    const ctx = await setup('app', (t) => ({
      ROTATION_BINDINGS: `${t.vaultName}/${SECRETS.app}=entra-app:${t.appId}`,
    }));
    setAppTags(ctx.tenant, []);

    const result = await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));

    expectStatus(result.outcome, 'rotated');
    expect(await probe(ctx, (await latest(ctx)).value)).toMatchObject({ works: true });
  });
});

describe.each(KINDS)('$kind: a disabled current version', ({ key }) => {
  test('failed(read) with a clear reason, nothing created, nothing written', async () => {
    const ctx = await setup(key);
    const vault = ctx.services.vaults.get(ctx.tenant.vaultName).client;
    const current = await vault.getSecret(ctx.secret);
    await vault.updateSecretProperties(ctx.secret, current.properties.version!, { enabled: false });
    const provider = providerIds(ctx);
    const stored = structuredClone(versions(ctx));
    const c0 = counts();

    const result = await run(ctx, 'rotate', ctx.services.engine.rotate({ ...ctx.req, force: true }));

    const failed = expectStatus(result.outcome, 'failed');
    expect(failed).toMatchObject({ step: 'read', transient: false });
    expect(failed.reason).toMatch(/the current version is disabled: it is reported, not rotated/);
    expect(result.notifications.map((n) => n.kind)).toEqual(['rotation-failed']);
    expect(providerIds(ctx)).toEqual(provider);
    expect(versions(ctx)).toEqual(stored);
    const c = countsSince(c0);
    expect(services(c).filter((s) => s !== 'msi')).toEqual(['keyvault']);
    expect(Object.keys(c).filter((l) => l.startsWith('keyvault') && !l.includes(' GET '))).toEqual([]);
  });
});

// ---- 6. No secret value in any output ----

/** Every text an operator or owner could see for one engine result. */
function outputsOf(i: number, { op, result }: { op: string; result: RotationResult }) {
  const texts = [{ where: `outcome ${i} (${op})`, text: JSON.stringify(result.outcome) }];
  result.notifications.forEach((n: Notification, j) => {
    texts.push({ where: `notification ${i}.${j} (${n.kind})`, text: JSON.stringify(n) });
    texts.push({
      where: `notification ${i}.${j} rendered`,
      text: [title(n), emailSubject(n), emailHtml(n), JSON.stringify(facts(n))].join('\n'),
    });
  });
  return texts;
}

describe('no secret value in any output', () => {
  test('the capture sees console and stream output, and the leak check finds a value and a shape', () => {
    const probeCapture = captureOutput();
    const canary = `canary-${randomBytes(12).toString('hex')}`;
    try {
      console.info('value', { nested: canary });
      process.stderr.write(`dapi${'0'.repeat(32)}\n`);
    } finally {
      probeCapture.stop();
    }
    const leaks = findLeaks(
      probeCapture.lines.map((text, i) => ({ where: `line ${i}`, text })),
      [{ value: canary, source: 'canary' }],
    );
    expect(leaks).toEqual([
      { where: 'line 0', what: 'canary' },
      { where: 'line 1', what: 'something shaped like a databricksPat' },
    ]);
  });

  test('the request capture sees the Azure SDK (node:http) and the Databricks client (undici)', async () => {
    const ctx = await setup('pat');
    const requests = captureRequests();
    try {
      await latest(ctx);
      await probe(ctx, ctx.tenant.initial.pat);
    } finally {
      requests.stop();
    }
    const ws = new URL(ctx.tenant.workspaceUrl).origin;
    expect(requests.requests).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ client: 'http', method: 'GET', origin: ctx.tenant.vaultUrl }),
        expect.objectContaining({
          client: 'undici',
          method: 'GET',
          origin: ws,
          path: '/api/2.0/preview/scim/v2/Me',
        }),
      ]),
    );
  });

  test('success, failures and bad tags of every kind: no log line, reason or notification holds a value', async () => {
    // Scenarios of their own (so this test stands alone), on top of everything the tests above ran.
    for (const { key } of KINDS) {
      const ctx = await setup(key);
      await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));
      await run(ctx, 'rotate', ctx.services.engine.rotate({ ...ctx.req, dryRun: true, force: true }));
      azure().clock.advance(25 * HOUR);
      await run(ctx, 'revoke-previous', ctx.services.engine.revokePrevious(ctx.req));
      await run(ctx, 'reconcile', ctx.services.engine.reconcile(ctx.req));

      // The new credential is refused by the provider at verify: compensated, reported.
      const verifyRoutes: Record<SecretKey, FaultRule> = {
        pat: {
          service: 'databricks',
          instance: `ws-${ctx.tenant.vaultName}`,
          method: 'GET',
          route: '/api/2.0/preview/scim/v2/Me',
        },
        sp: { service: 'accounts', method: 'POST', route: '/oidc/accounts/:accountId/v1/token' },
        app: { service: 'entra', method: 'POST', route: '/:tenant/oauth2/v2.0/token' },
      };
      const revokeRoutes: Record<SecretKey, FaultRule> = {
        pat: {
          service: 'databricks',
          instance: `ws-${ctx.tenant.vaultName}`,
          method: 'POST',
          route: '/api/2.0/token/delete',
        },
        sp: {
          service: 'accounts',
          method: 'DELETE',
          route: '/api/2.0/accounts/:accountId/servicePrincipals/:spId/credentials/secrets/:secretId',
        },
        app: { service: 'graph', method: 'POST', route: '/graph/v1.0/:appIdKey/removePassword' },
      };
      azure().servers.faults.add({
        ...verifyRoutes[key],
        status: 401,
        body: { error: 'invalid_client', error_description: 'rejected' },
      });
      await run(ctx, 'rotate', ctx.services.engine.rotate({ ...ctx.req, force: true }));
      azure().servers.faults.clear();
      // Key Vault refuses the new version; the provider refuses to revoke it too.
      azure().servers.faults.add({
        service: 'keyvault',
        instance: ctx.tenant.vaultName,
        method: 'PUT',
        route: '/secrets/:name/?',
        status: 400,
        body: { error: { code: 'BadParameter', message: 'refused' } },
      });
      azure().servers.faults.add({
        ...revokeRoutes[key],
        status: 500,
        body: { error_code: 'INTERNAL_ERROR', message: 'revoke is down' },
      });
      await run(ctx, 'rotate', ctx.services.engine.rotate({ ...ctx.req, force: true }));
      azure().servers.faults.clear();
      await run(ctx, 'reconcile', ctx.services.engine.reconcile(ctx.req));
    }

    // Failures whose messages could carry a value: an expired PAT, a value pasted into a tag.
    const ctx = await setup('pat');
    const vault = ctx.services.vaults.get(ctx.tenant.vaultName).client;
    const pasted = `p4ssw0rd-${randomBytes(10).toString('hex')}`;
    knownValues.push({ value: pasted, source: 'pasted into tags' });
    await vault.setSecret('pasted-into-tags', pasted, {
      tags: {
        [TAGS.kind]: 'databricks-pat',
        [TAGS.databricksHost]: pasted,
        [TAGS.validityDays]: pasted,
        [TAGS.notify]: pasted,
      },
    });
    const pastedResult = await run(
      ctx,
      'rotate',
      ctx.services.engine.rotate({ vault: ctx.tenant.vaultName, secret: 'pasted-into-tags' }),
    );
    expect(pastedResult.outcome).toMatchObject({ status: 'failed', step: 'policy' });
    await vault.setSecret('pat-in-host-tag', ctx.tenant.initial.pat, {
      tags: { [TAGS.kind]: 'databricks-pat', [TAGS.databricksHost]: ctx.tenant.initial.pat },
    });
    await run(
      ctx,
      'rotate',
      ctx.services.engine.rotate({ vault: ctx.tenant.vaultName, secret: 'pat-in-host-tag' }),
    );
    azure().clock.advance(11 * DAY);
    await run(ctx, 'rotate', ctx.services.engine.rotate(ctx.req));

    const values = [...knownValues, ...vaultValues(azure())];
    // The check has teeth: it saw every engine result, log lines, and values this file created.
    expect(produced.length).toBeGreaterThan(20);
    expect(output.lines.some((l) => l.includes('[SecretRotated]'))).toBe(true);
    expect(output.lines.some((l) => l.includes('[SecretRotationFailed]'))).toBe(true);
    expect(values.length).toBeGreaterThan(30);
    const outputs = [
      ...output.lines.map((text, i) => ({ where: `log line ${i}`, text })),
      ...produced.flatMap((p, i) => outputsOf(i, p)),
    ];
    expect(findLeaks(outputs, values)).toEqual([]);
  });
});
