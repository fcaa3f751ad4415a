import { randomBytes, randomUUID } from 'node:crypto';
import { TAGS } from '../../../shared/constants';
import type { Outcome } from '../../../shared/rotation/engine';
import { mayFree } from '../../../shared/rotators/room';
import type { Services } from '../../../shared/services';
import { sha256 } from '../../../local/azure/state';
import { useLocalAzure } from '../../support/localAzure';
import { createEngine, DAY, SECRETS, seedTenant, type Tenant } from '../../support/tenant';

/**
 * Provider limits, one per kind: Databricks' per-user PAT quota, 5 OAuth secrets per service
 * principal, Entra's per-app password credentials. At a limit the rotator frees room only with
 * credentials it can show are unused (expired, and neither current nor previous in the vault);
 * otherwise the rotation fails permanently, naming the limit and the credentials in the way.
 */
const azure = useLocalAzure();

function expectStatus<S extends Outcome['status']>(
  outcome: Outcome,
  status: S,
): Extract<Outcome, { status: S }> {
  expect(outcome).toMatchObject({ status });
  return outcome as Extract<Outcome, { status: S }>;
}

let tenant: Tenant;
let services: Services;
beforeAll(async () => {
  tenant = await seedTenant(azure());
  services = createEngine(tenant);
});
afterAll(async () => {
  await services.deps.databricks.close();
});
const rotate = (secret: string, force = false) =>
  services.engine.rotate({ vault: tenant.vaultName, secret, force });
const iso = (ms: number) => new Date(ms).toISOString();

describe('mayFree (until the issuance record lands)', () => {
  const ctx = {
    vaultName: 'v',
    secretName: 's',
    currentValue: '',
    credentialId: 'cur',
    previousCredentialId: 'prev',
  };
  const now = new Date('2026-12-01T00:00:00Z');
  const expired = new Date('2026-11-01T00:00:00Z');
  test.each([
    ['an expired credential the vault does not reference', { id: 'x', expiresAt: expired }, ctx, true],
    ['a credential that has not expired', { id: 'x', expiresAt: new Date('2027-01-01') }, ctx, false],
    ['a credential without an expiry', { id: 'x' }, ctx, false],
    ['the current credential, even expired', { id: 'cur', expiresAt: expired }, ctx, false],
    ['the previous credential, even expired', { id: 'prev', expiresAt: expired }, ctx, false],
    [
      'anything while the current id is unknown',
      { id: 'x', expiresAt: expired },
      { ...ctx, credentialId: undefined },
      false,
    ],
  ])('%s → %s', (_case, c, context, expected) => {
    expect(mayFree({ createdAt: new Date(0), ...c }, context, now)).toBe(expected);
  });
});

describe('databricks-sp-secret: 5 OAuth secrets per service principal', () => {
  const sp = () =>
    azure()
      .state.accounts.get(tenant.accountId)!
      .servicePrincipals.find((s) => s.id === tenant.spId)!;
  const addSecret = (expireMs: number) =>
    sp().secrets.push({
      id: randomBytes(16).toString('hex'),
      secretHash: sha256(randomUUID()),
      createTime: iso(azure().clock.now() - DAY),
      updateTime: iso(azure().clock.now() - DAY),
      expireTime: iso(expireMs),
      status: 'ACTIVE',
    });

  test('at the limit, expired secrets nothing references are deleted to make room', async () => {
    const now = azure().clock.now();
    addSecret(now - DAY);
    addSecret(now - DAY);
    addSecret(now + 100 * DAY);
    addSecret(now + 100 * DAY);
    expect(sp().secrets).toHaveLength(5);
    const expiredIds = sp()
      .secrets.filter((s) => Date.parse(s.expireTime) < now)
      .map((s) => s.id);

    const rotated = expectStatus((await rotate(SECRETS.sp, true)).outcome, 'rotated');

    const ids = sp().secrets.map((s) => s.id);
    expect(ids).toContain(rotated.credentialId);
    expect(ids).toContain(rotated.previousCredentialId);
    for (const id of expiredIds) expect(ids).not.toContain(id);
  });

  test('at the limit with nothing provably unused: failed permanently, naming the limit and the secrets', async () => {
    // A forced rotation first revokes the previous secret (still in grace): six leave five.
    while (sp().secrets.length < 6) addSecret(azure().clock.now() + 100 * DAY);
    const previous = (await tenant.reader.getSecret(SECRETS.sp)).properties.tags?.[TAGS.previousCredentialId];
    const inTheWay = sp()
      .secrets.map((s) => s.id)
      .filter((id) => id !== previous);

    const result = await rotate(SECRETS.sp, true);

    const failed = expectStatus(result.outcome, 'failed');
    expect(failed).toMatchObject({ step: 'create', transient: false });
    expect(failed.reason).toContain('the provider limit of 5 OAuth secrets per service principal is reached');
    for (const id of inTheWay) expect(failed.reason).toContain(id);
    expect(sp().secrets.map((s) => s.id)).toEqual(inTheWay);
    expect(result.notifications.filter((n) => n.kind === 'rotation-failed')).toHaveLength(1);
  });
});

describe('databricks-pat: the per-user PAT quota', () => {
  test('at the quota: failed permanently, naming the limit and the tokens in the way; nothing revoked', async () => {
    const ws = azure().state.workspaces.get(`ws-${tenant.vaultName}`)!;
    const owner = ws.principals.find((p) => p.userName === 'data-eng@contoso.com')!;
    const live = () =>
      ws.tokens.filter(
        (t) => t.ownerId === owner.id && (t.expiryTime === -1 || t.expiryTime > azure().clock.now()),
      );
    ws.maxTokensPerUser = live().length;
    const before = live().map((t) => t.tokenId);
    try {
      const result = await rotate(SECRETS.pat, true);
      const failed = expectStatus(result.outcome, 'failed');
      expect(failed).toMatchObject({ step: 'create', transient: false });
      expect(failed.reason).toContain('personal access tokens per user in the workspace');
      for (const id of before) expect(failed.reason).toContain(id);
      expect(live().map((t) => t.tokenId)).toEqual(before);
      expect(result.notifications.filter((n) => n.kind === 'rotation-failed')).toHaveLength(1);
    } finally {
      ws.maxTokensPerUser = undefined;
    }
  });
});

describe("entra-app-secret: Entra's per-app password credential limit", () => {
  const SECRET = 'consumer-app-secret';
  let appId: string;
  const app = () => azure().state.apps.find((a) => a.appId === appId)!;

  beforeAll(async () => {
    const value = `abc8Q~${randomBytes(17).toString('hex')}`;
    const seeded = await azure().seed({
      apps: [
        {
          displayName: `consumer-${tenant.vaultName}`,
          // Apps that allow personal Microsoft accounts hold at most two client secrets.
          signInAudience: 'AzureADandPersonalMicrosoftAccount',
          owners: [`rotator-${tenant.vaultName}`],
          secrets: [{ value }],
          tags: [`kv-rotator:${tenant.vaultName}/${SECRET}`],
        },
      ],
    });
    const created = seeded.apps.find((a) => a.displayName === `consumer-${tenant.vaultName}`)!;
    appId = created.appId;
    const exp = Math.floor((azure().clock.now() + 10 * DAY) / 1000);
    azure()
      .state.vaults.get(tenant.vaultName)!
      .secrets.set(SECRET, [
        {
          version: randomBytes(16).toString('hex'),
          value,
          enabled: true,
          exp,
          created: azure().clock.nowSeconds(),
          updated: azure().clock.nowSeconds(),
          tags: {
            [TAGS.kind]: 'entra-app-secret',
            [TAGS.entraAppId]: appId,
            [TAGS.credentialId]: created.keyIds[0]!,
          },
          emitted: { nearExpiry: false, expired: false },
        },
      ]);
  });

  test('at the limit, an expired secret nothing references is removed to make room', async () => {
    const expiredKey = randomUUID();
    app().passwordCredentials.push({
      keyId: expiredKey,
      displayName: 'old',
      hint: 'old',
      secretHash: sha256(randomUUID()),
      startDateTime: iso(azure().clock.now() - 400 * DAY),
      endDateTime: iso(azure().clock.now() - DAY),
    });
    expect(app().passwordCredentials).toHaveLength(2);

    const rotated = expectStatus((await rotate(SECRET)).outcome, 'rotated');

    const keys = app().passwordCredentials.map((p) => p.keyId);
    expect(keys).toEqual(expect.arrayContaining([rotated.credentialId, rotated.previousCredentialId]));
    expect(keys).not.toContain(expiredKey);
  });

  test('at the limit with nothing provably unused: failed permanently, naming the secrets in the way', async () => {
    // A secret someone added by hand: not expired, so not ours to remove. A forced rotation first
    // revokes the previous secret, leaving the current one and this one.
    const handMade = randomUUID();
    app().passwordCredentials.push({
      keyId: handMade,
      displayName: 'added in the portal',
      hint: 'xyz',
      secretHash: sha256(randomUUID()),
      startDateTime: iso(azure().clock.now()),
      endDateTime: iso(azure().clock.now() + 300 * DAY),
    });
    const current = (await tenant.reader.getSecret(SECRET)).properties.tags?.[TAGS.credentialId];
    const keys = [current, handMade];

    const failed = expectStatus((await rotate(SECRET, true)).outcome, 'failed');

    expect(failed).toMatchObject({ step: 'create', transient: false });
    expect(failed.reason).toContain("password credentials on the application (Entra's per-app limit)");
    for (const key of keys) expect(failed.reason).toContain(key);
    expect(
      app()
        .passwordCredentials.map((p) => p.keyId)
        .sort(),
    ).toEqual([...keys].sort());
  });
});
