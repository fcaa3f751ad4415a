import { randomBytes, randomUUID } from 'node:crypto';
import { TAGS } from '../../../shared/constants';
import type { Outcome } from '../../../shared/rotation/engine';
import { targetKey } from '../../../shared/issuance';
import { ROTATORS } from '../../../shared/rotators';
import { mayFree } from '../../../shared/rotators/room';
import type { Services } from '../../../shared/services';
import { sha256 } from '../../../local/azure/state';
import { useLocalAzure } from '../../support/localAzure';
import { createEngine, DAY, SECRETS, seedTenant, type Tenant } from '../../support/tenant';

/**
 * Provider limits, one per kind: Databricks' per-user PAT quota, 5 OAuth secrets per service
 * principal, Entra's per-app password credentials. At a limit the rotator frees room only with
 * credentials the issuance record proves this service issued and that neither the current nor the
 * previous version references; otherwise the rotation fails permanently, naming the limit and the
 * credentials in the way.
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
/** Records `credentialId` as issued and stored by this service for `secret`, as the engine would have. */
async function recordIssued(secret: string, credentialId: string): Promise<void> {
  const tags = (await tenant.reader.getSecret(secret)).properties.tags ?? {};
  const kind = tags[TAGS.kind]!;
  const parsed = ROTATORS.get(kind)!.parseTarget(tags, tenant.settings) as { target: unknown };
  const at = new Date(azure().clock.now());
  const start = {
    vault: tenant.vaultName,
    secret,
    kind,
    target: targetKey(kind, parsed.target),
    rotationId: randomUUID(),
    at,
  };
  const record = await services.issuance.begin(start);
  const issued = await services.issuance.update(record, { state: 'issued', credentialId, at });
  // Stored in an older version (say, one whose revoke-previous failed): no interrupted rotation, so
  // only making room at the limit may revoke it.
  await services.issuance.update(issued, { state: 'stored', version: randomBytes(16).toString('hex'), at });
}

const rotate = (secret: string, force = false) =>
  services.engine.rotate({ vault: tenant.vaultName, secret, force });
const iso = (ms: number) => new Date(ms).toISOString();

describe('mayFree', () => {
  const ctx = {
    vaultName: 'v',
    secretName: 's',
    currentValue: '',
    credentialId: 'cur',
    previousCredentialId: 'prev',
    issued: (id: string) => ['ours', 'cur', 'prev'].includes(id),
  };
  test.each([
    ['one this service issued that nothing references', 'ours', ctx, true],
    ['one the issuance record does not prove ours (even if expired)', 'theirs', ctx, false],
    ['the current credential', 'cur', ctx, false],
    ['the previous credential', 'prev', ctx, false],
    ['anything while the current id is unknown', 'ours', { ...ctx, credentialId: undefined }, false],
    ['anything without an issuance record', 'ours', { ...ctx, issued: undefined }, false],
  ])('%s → %s', (_case, id, context, expected) => {
    expect(mayFree({ id, createdAt: new Date(0), expiresAt: new Date(0) }, context)).toBe(expected);
  });
});

describe('databricks-sp-secret: 5 OAuth secrets per service principal', () => {
  const sp = () =>
    azure()
      .state.accounts.get(tenant.accountId)!
      .servicePrincipals.find((s) => s.id === tenant.spId)!;
  const addSecret = (expireMs: number): string => {
    const id = randomBytes(16).toString('hex');
    sp().secrets.push({
      id,
      secretHash: sha256(randomUUID()),
      createTime: iso(azure().clock.now() - DAY),
      updateTime: iso(azure().clock.now() - DAY),
      expireTime: iso(expireMs),
      status: 'ACTIVE',
    });
    return id;
  };

  test('at the limit, secrets this service issued that nothing references are deleted to make room', async () => {
    const now = azure().clock.now();
    const ours = [addSecret(now + 100 * DAY), addSecret(now - DAY)];
    // Not in the issuance record: kept, even expired.
    const theirs = [addSecret(now - DAY), addSecret(now + 100 * DAY)];
    for (const id of ours) await recordIssued(SECRETS.sp, id);
    expect(sp().secrets).toHaveLength(5);
    const current = (await tenant.reader.getSecret(SECRETS.sp)).properties.tags?.[TAGS.credentialId];

    const result = await rotate(SECRETS.sp, true);
    const rotated = expectStatus(result.outcome, 'rotated');

    const ids = sp().secrets.map((s) => s.id);
    expect(ids).toEqual(expect.arrayContaining([rotated.credentialId, current, ...theirs]));
    for (const id of ours) expect(ids).not.toContain(id);
    // Their records are closed, and the owners are told what was revoked and why.
    const records = await services.issuance.list(tenant.vaultName, SECRETS.sp);
    for (const id of ours) expect(records.find((r) => r.credentialId === id)?.state).toBe('revoked');
    const told = result.notifications.filter((n) => n.kind === 'orphan-revoked').map((n) => n.details);
    expect(told).toEqual(
      ours.map((id) =>
        expect.objectContaining({ credentialId: id, reason: 'revoked to make room at a provider limit' }),
      ),
    );
  });

  test('at the limit with nothing provably ours and unused: failed permanently, naming the limit and the secrets', async () => {
    // The SP secret a person stored was never adopted (no previous to revoke first): five stay five.
    expect(
      (await tenant.reader.getSecret(SECRETS.sp)).properties.tags?.[TAGS.previousCredentialId],
    ).toBeUndefined();
    while (sp().secrets.length < 5) addSecret(azure().clock.now() + 100 * DAY);
    const inTheWay = sp().secrets.map((s) => s.id);

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
  test('at the quota, an older PAT this service issued that nothing references is revoked to make room', async () => {
    const ws = azure().state.workspaces.get(`ws-${tenant.vaultName}`)!;
    const owner = ws.principals.find((p) => p.userName === 'data-eng@contoso.com')!;
    const older = `dapi${randomBytes(16).toString('hex')}`;
    await azure().seed({
      workspaces: [{ name: ws.name, tokens: [{ owner: 'data-eng@contoso.com', value: older }] }],
    });
    const olderId = sha256(older);
    await recordIssued(SECRETS.pat, olderId);
    const live = () => ws.tokens.filter((t) => t.ownerId === owner.id);
    ws.maxTokensPerUser = live().length;
    try {
      const result = await rotate(SECRETS.pat, true);
      const rotated = expectStatus(result.outcome, 'rotated');
      const ids = live().map((t) => t.tokenId);
      expect(ids).toContain(rotated.credentialId);
      expect(ids).not.toContain(olderId);
      expect(result.notifications.find((n) => n.kind === 'orphan-revoked')?.details).toMatchObject({
        credentialId: olderId,
      });
    } finally {
      ws.maxTokensPerUser = undefined;
    }
  });

  test('at the quota: failed permanently, naming the limit and the tokens in the way; nothing revoked', async () => {
    const ws = azure().state.workspaces.get(`ws-${tenant.vaultName}`)!;
    const owner = ws.principals.find((p) => p.userName === 'data-eng@contoso.com')!;
    const live = () =>
      ws.tokens.filter(
        (t) => t.ownerId === owner.id && (t.expiryTime === -1 || t.expiryTime > azure().clock.now()),
      );
    // A forced rotation first revokes a previous PAT still in grace: the quota counts what is left.
    const previous = (await tenant.reader.getSecret(SECRETS.pat)).properties.tags?.[
      TAGS.previousCredentialId
    ];
    const before = live()
      .map((t) => t.tokenId)
      .filter((id) => id !== previous);
    ws.maxTokensPerUser = before.length;
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

  test('at the limit, a secret this service issued that nothing references is removed to make room', async () => {
    const oursKey = randomUUID();
    app().passwordCredentials.push({
      keyId: oursKey,
      displayName: 'from an interrupted rotation',
      hint: 'old',
      secretHash: sha256(randomUUID()),
      startDateTime: iso(azure().clock.now() - DAY),
      endDateTime: iso(azure().clock.now() + 300 * DAY),
    });
    await recordIssued(SECRET, oursKey);
    expect(app().passwordCredentials).toHaveLength(2);

    const rotated = expectStatus((await rotate(SECRET)).outcome, 'rotated');

    const keys = app().passwordCredentials.map((p) => p.keyId);
    expect(keys).toEqual(expect.arrayContaining([rotated.credentialId, rotated.previousCredentialId]));
    expect(keys).not.toContain(oursKey);
  });

  test('at the limit with nothing provably unused: failed permanently, naming the secrets in the way', async () => {
    // A secret someone added by hand (no issuance record), already expired: still not ours to remove.
    // A forced rotation first revokes the previous secret, leaving the current one and this one.
    const handMade = randomUUID();
    app().passwordCredentials.push({
      keyId: handMade,
      displayName: 'added in the portal',
      hint: 'xyz',
      secretHash: sha256(randomUUID()),
      startDateTime: iso(azure().clock.now() - 400 * DAY),
      endDateTime: iso(azure().clock.now() - DAY),
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
