import { randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { newNumericId } from '../../../local/azure/state';
import { parseSettings } from '../../../shared/config';
import { TAGS } from '../../../shared/constants';
import type { Outcome, RotationResult } from '../../../shared/rotation/engine';
import type { Services } from '../../../shared/services';
import { useLocalAzure } from '../../support/localAzure';
import { patWorks } from '../../support/probes';
import { createEngine, DAY, newPat, SECRETS, seedTenant, type Tenant } from '../../support/tenant';

/**
 * `databricks-pat-owner` (design section 4): the PAT rotator creates, lists and revokes as the
 * service principal that owns the PAT, with an Entra token for Databricks obtained through workload
 * identity federation (or as the service's own managed identity), instead of with the current PAT.
 * Real clients against local Azure and Azurite.
 */

const azure = useLocalAzure();
const SECRET = 'etl-owner-pat';
const HOUR = 3_600_000;
const ENTRA_TOKEN = 'entra POST /:tenant/oauth2/v2.0/token';
const engines: Services[] = [];

afterAll(async () => {
  await Promise.all(engines.map((s) => s.deps.databricks.close()));
});

interface Setup {
  tenant: Tenant;
  services: Services;
  workspaceName: string;
  ownerAppId: string;
  /** The owner's id among the workspace's principals (what a token's owner id points at). */
  ownerPrincipalId: string;
  /** The rotator's managed identity, as the emulator knows it. */
  rotator: { clientId: string; principalId: string };
  pat: string;
  patId: string;
}

/**
 * A tenant (seedTenant) plus a PAT owned by a service principal, stored in an opted-in secret with
 * `databricks-pat-owner`. The owner is an app registration "etl-owner" that trusts the rotator's
 * managed identity (`federated: false` leaves the trust out), or the managed identity itself.
 */
async function setup(
  options: {
    owner?: 'app' | 'rotator';
    federated?: boolean;
    workspacePrincipal?: boolean;
    bound?: boolean;
    ownerTag?: string;
  } = {},
): Promise<Setup> {
  const { owner = 'app', federated = true, workspacePrincipal = true, bound = true } = options;
  const tenant = await seedTenant(azure());
  const mi = azure().state.managedIdentities.find((m) => m.appId === tenant.settings.AZURE_CLIENT_ID)!;
  const rotator = { clientId: mi.appId, principalId: mi.objectId };

  let ownerAppId = rotator.clientId;
  if (owner === 'app') {
    const seeded = await azure().seed({
      apps: [
        {
          displayName: `etl-owner-${tenant.vaultName}`,
          federatedCredentials: federated
            ? [
                {
                  issuer: azure().tokens.issuer,
                  subject: rotator.principalId,
                  audiences: ['api://AzureADTokenExchange'],
                },
              ]
            : [],
        },
      ],
    });
    ownerAppId = seeded.apps.find((a) => a.displayName === `etl-owner-${tenant.vaultName}`)!.appId;
  }

  // Seeding an existing workspace name keeps its principals and ignores the seed's, so the owner is
  // added to the workspace's state directly; its token is then seeded as usual. An owner that is not
  // a workspace principal cannot own the PAT: then the seeded user does (a PAT that would still work).
  const workspaceName = `ws-${tenant.vaultName}`;
  const ownerPrincipalId = newNumericId();
  if (workspacePrincipal)
    azure().state.workspaces.get(workspaceName)!.principals.push({
      id: ownerPrincipalId,
      applicationId: ownerAppId,
      displayName: 'etl-owner',
      admin: false,
    });
  const pat = newPat();
  const exp = Math.floor((azure().clock.now() + 10 * DAY) / 1000);
  const tokenOwner = workspacePrincipal ? ownerAppId : 'data-eng@contoso.com';
  const seeded = await azure().seed({
    workspaces: [{ name: workspaceName, tokens: [{ owner: tokenOwner, value: pat, expiryTime: exp }] }],
  });
  const patId = seeded.workspaces[workspaceName]!.tokenIds.at(-1)!;

  const host = new URL(tenant.workspaceUrl).host;
  azure()
    .state.vaults.get(tenant.vaultName)!
    .secrets.set(SECRET, [
      {
        version: randomBytes(16).toString('hex'),
        value: pat,
        enabled: true,
        exp,
        created: azure().clock.nowSeconds(),
        updated: azure().clock.nowSeconds(),
        tags: {
          [TAGS.kind]: 'databricks-pat',
          [TAGS.databricksHost]: host,
          [TAGS.databricksPatOwner]: options.ownerTag ?? ownerAppId,
          [TAGS.credentialId]: patId,
        },
        emitted: { nearExpiry: false, expired: false },
      },
    ]);

  // The same settings seedTenant made, with the owner bound to this secret by whoever controls it.
  const bindings = [
    `${tenant.vaultName}/${SECRETS.sp}=databricks-sp:${tenant.accountId}/${tenant.spId}`,
    ...(bound ? [`${tenant.vaultName}/${SECRET}=databricks-pat:${host}/${ownerAppId}`] : []),
  ];
  const settings = parseSettings({
    KEY_VAULT_URIS: `${tenant.vaultName}=${tenant.vaultUrl}`,
    AZURE_TENANT_ID: azure().state.tenantId,
    AZURE_CLIENT_ID: rotator.clientId,
    AZURE_AUTHORITY_HOST: azure().authorityHost,
    GRAPH_BASE_URL: azure().graphUrl,
    DATABRICKS_ACCOUNTS_HOST: azure().accountsUrl,
    DATABRICKS_ALLOWED_HOSTS: host,
    ROTATION_BINDINGS: bindings.join(','),
    AzureWebJobsStorage: process.env.AZURITE_CONNECTION_STRING,
  });
  const services = createEngine({ ...tenant, settings });
  engines.push(services);
  return {
    tenant,
    services,
    workspaceName,
    ownerAppId,
    ownerPrincipalId,
    rotator,
    pat,
    patId,
  };
}

const tokens = (s: Setup) => azure().state.workspaces.get(s.workspaceName)!.tokens;
const request = (s: Setup, secret = SECRET) => ({ vault: s.tenant.vaultName, secret });

function expectStatus<S extends Outcome['status']>(
  outcome: Outcome,
  status: S,
): Extract<Outcome, { status: S }> {
  expect(outcome).toMatchObject({ status });
  return outcome as Extract<Outcome, { status: S }>;
}

interface WorkspaceCall {
  method: string;
  path: string;
  /** How the request authenticated: with a PAT, or with a JWT issued to this application id. */
  as: 'pat' | { appid: string } | 'none';
}

/**
 * The workspace requests the Databricks client (undici) sends while `fn` runs, with how each one
 * authenticated: only the bearer's shape and the JWT's `appid` claim are kept, never a token.
 */
async function workspaceCalls(s: Setup, fn: () => Promise<RotationResult>) {
  const origin = new URL(s.tenant.workspaceUrl).origin;
  const calls: WorkspaceCall[] = [];
  const onRequest = (message: unknown) => {
    const { request: r } = message as {
      request: { origin: unknown; method: string; path: string; headers: unknown };
    };
    if (String(r.origin) !== origin) return;
    const headers = r.headers as string[];
    const i = headers.findIndex((h, n) => n % 2 === 0 && h.toLowerCase() === 'authorization');
    const bearer = i >= 0 ? /^Bearer (.+)$/.exec(headers[i + 1] ?? '')?.[1] : undefined;
    const as: WorkspaceCall['as'] = !bearer
      ? 'none'
      : bearer.startsWith('dapi')
        ? 'pat'
        : {
            appid: String(
              (
                JSON.parse(Buffer.from(bearer.split('.')[1] ?? '', 'base64url').toString()) as {
                  appid?: unknown;
                }
              ).appid,
            ),
          };
    calls.push({ method: r.method, path: r.path.split('?')[0]!, as });
  };
  diagnostics.subscribe('undici:request:create', onRequest);
  try {
    const result = await fn();
    return { result, calls };
  } finally {
    diagnostics.unsubscribe('undici:request:create', onRequest);
  }
}

afterEach(() => azure().servers.faults.clear());

test('rotates as the owner: the new PAT is the owner’s, works, and the old one is revoked as the owner', async () => {
  const s = await setup();
  const entraBefore = azure().servers.counts.total(ENTRA_TOKEN);

  const { result, calls } = await workspaceCalls(s, () => s.services.engine.rotate(request(s)));

  const rotated = expectStatus(result.outcome, 'rotated');
  expect(rotated.previousCredentialId).toBe(s.patId);
  const created = tokens(s).find((t) => t.tokenId === rotated.credentialId)!;
  expect(created.ownerId).toBe(s.ownerPrincipalId);
  // Created as the owner through Entra (federation), not with the current PAT; verified with the new PAT.
  expect(azure().servers.counts.total(ENTRA_TOKEN)).toBeGreaterThan(entraBefore);
  // Then, once, the PAT a person stored is adopted: it still works and is the owner's only token that
  // this service did not issue, so it is the one the vault held and may be revoked after the grace.
  expect(calls).toEqual([
    { method: 'POST', path: '/api/2.0/token/create', as: { appid: s.ownerAppId } },
    { method: 'GET', path: '/api/2.0/preview/scim/v2/Me', as: 'pat' },
    { method: 'GET', path: '/api/2.0/preview/scim/v2/Me', as: 'pat' },
    { method: 'GET', path: '/api/2.0/token/list', as: { appid: s.ownerAppId } },
  ]);
  const stored = await s.tenant.reader.getSecret(SECRET);
  expect(stored.value).not.toBe(s.pat);
  expect(stored.properties.tags?.[TAGS.databricksPatOwner]).toBe(s.ownerAppId);
  const me = await patWorks(s.tenant.workspaceUrl, stored.value!);
  expect(me.works).toBe(true);
  expect(me.detail).toContain(s.ownerAppId);
  // Both PATs work during the grace period.
  expect(await patWorks(s.tenant.workspaceUrl, s.pat)).toMatchObject({ works: true });

  azure().clock.advance(25 * HOUR);
  const revoked = await workspaceCalls(s, () => s.services.engine.revokePrevious(request(s)));

  expect(revoked.result.outcome).toMatchObject({ status: 'revoked', credentialIds: [s.patId] });
  expect(revoked.calls).toEqual([
    { method: 'POST', path: '/api/2.0/token/delete', as: { appid: s.ownerAppId } },
  ]);
  expect(tokens(s).some((t) => t.tokenId === s.patId)).toBe(false);
  expect(await patWorks(s.tenant.workspaceUrl, s.pat)).toMatchObject({ works: false });
  expect(await patWorks(s.tenant.workspaceUrl, stored.value!)).toMatchObject({ works: true });

  // Reconcile goes by the issuance record: no interrupted rotation, so no call to the workspace at all.
  const reconciled = await workspaceCalls(s, () => s.services.engine.reconcile(request(s)));
  expect(reconciled.result.outcome).toMatchObject({
    status: 'skipped',
    reason: 'no interrupted rotation in the issuance record',
  });
  expect(reconciled.calls).toEqual([]);
});

test('recovers a PAT that already expired, where a plain PAT secret cannot', async () => {
  const s = await setup();
  azure().clock.advance(11 * DAY); // both PATs and both secrets expired a day ago: still due
  expect(await patWorks(s.tenant.workspaceUrl, s.pat)).toMatchObject({ works: false });
  expect(await patWorks(s.tenant.workspaceUrl, s.tenant.initial.pat)).toMatchObject({ works: false });

  const owned = await s.services.engine.rotate(request(s));
  const plain = await s.services.engine.rotate(request(s, SECRETS.pat));

  const rotated = expectStatus(owned.outcome, 'rotated');
  expect(tokens(s).find((t) => t.tokenId === rotated.credentialId)?.ownerId).toBe(s.ownerPrincipalId);
  const stored = await s.tenant.reader.getSecret(SECRET);
  expect(stored.properties.tags?.[TAGS.credentialId]).toBe(rotated.credentialId);
  expect(await patWorks(s.tenant.workspaceUrl, stored.value!)).toMatchObject({ works: true });
  const failed = expectStatus(plain.outcome, 'failed');
  expect(failed).toMatchObject({ step: 'create', transient: false });
  expect(failed.reason).toMatch(/no longer valid \(expired or revoked\)/);

  // The expired one cannot be shown to be the one the vault held (it no longer works): it is not
  // tracked as previous, and the owners are told its id.
  expect(rotated.previousCredentialId).toBeUndefined();
  const note = owned.notifications.find((n) => n.kind === 'rotated')?.details.note;
  expect(note).toEqual(
    expect.stringContaining(`previous credential ${s.patId} was not issued by this service`),
  );
  azure().clock.advance(25 * HOUR);
  const revoked = await s.services.engine.revokePrevious(request(s));
  expect(revoked.outcome).toMatchObject({ status: 'skipped', reason: 'no previous credential to revoke' });
});

test('without a ROTATION_BINDINGS entry for the owner: failed at binding, nothing created', async () => {
  const s = await setup({ bound: false });
  const before = tokens(s).length;
  const creates = () =>
    azure().servers.counts.total(`databricks/${s.workspaceName} POST /api/2.0/token/create`);
  const createsBefore = creates();

  const result = await s.services.engine.rotate(request(s));

  const failed = expectStatus(result.outcome, 'failed');
  expect(failed).toMatchObject({ step: 'binding', transient: false });
  expect(failed.reason).toContain(
    `${s.tenant.vaultName}/${SECRET}=databricks-pat:${new URL(s.tenant.workspaceUrl).host}/${s.ownerAppId}`,
  );
  expect(tokens(s)).toHaveLength(before);
  expect(creates()).toBe(createsBefore);
  expect((await s.tenant.reader.getSecret(SECRET)).value).toBe(s.pat);
});

test('an owner app with no federated credential trusting the rotator: failed at create, permanent, nothing created', async () => {
  const s = await setup({ federated: false });
  const before = tokens(s).length;

  const result = await s.services.engine.rotate(request(s));

  const failed = expectStatus(result.outcome, 'failed');
  expect(failed).toMatchObject({ step: 'create', transient: false });
  expect(failed.reason).toMatch(/no federated credential trusting this service's managed identity/);
  expect(failed.reason).toContain(s.ownerAppId);
  // What to add: the issuer and subject the rotator's assertion carries (AADSTS70021).
  expect(failed.reason).toContain(azure().tokens.issuer);
  expect(failed.reason).toContain(s.rotator.principalId);
  expect(failed.reason).toContain('AADSTS70021');
  expect(failed.reason).not.toMatch(/eyJ|dapi/);
  expect(tokens(s)).toHaveLength(before);
  // Refused: no interrupted rotation is left behind.
  const secret = await s.tenant.reader.getSecret(SECRET);
  expect(secret.value).toBe(s.pat);
  expect(secret.properties.tags?.[TAGS.rotationStarted]).toBeUndefined();
});

test('an owner that is not a principal of the workspace: failed at create, permanent, says why', async () => {
  const s = await setup({ workspacePrincipal: false });
  const before = tokens(s).length;
  // The current PAT works: the rotator must not fall back to it when the owner is refused.
  expect(await patWorks(s.tenant.workspaceUrl, s.pat)).toMatchObject({ works: true });

  const result = await s.services.engine.rotate(request(s));

  const failed = expectStatus(result.outcome, 'failed');
  expect(failed).toMatchObject({ step: 'create', transient: false });
  expect(failed.reason).toMatch(
    new RegExp(`PAT owner ${s.ownerAppId} is not a principal of the workspace or lacks permission`),
  );
  expect(tokens(s)).toHaveLength(before);
});

test('a databricks-pat-owner that is not an application id: failed at policy, naming the tag', async () => {
  const s = await setup({ ownerTag: 'etl-owner' });
  const before = tokens(s).length;

  const result = await s.services.engine.rotate(request(s));

  const failed = expectStatus(result.outcome, 'failed');
  expect(failed).toMatchObject({ step: 'policy', transient: false });
  expect(failed.reason).toMatch(/databricks-pat-owner: "etl-owner": expected the application \(client\) id/);
  expect(tokens(s)).toHaveLength(before);
});

test('the owner is the rotator’s own managed identity: rotated without federation', async () => {
  const s = await setup({ owner: 'rotator' });
  const entraBefore = azure().servers.counts.total(ENTRA_TOKEN);

  const { result, calls } = await workspaceCalls(s, () => s.services.engine.rotate(request(s)));

  const rotated = expectStatus(result.outcome, 'rotated');
  expect(tokens(s).find((t) => t.tokenId === rotated.credentialId)?.ownerId).toBe(s.ownerPrincipalId);
  expect(calls[0]).toEqual({
    method: 'POST',
    path: '/api/2.0/token/create',
    as: { appid: s.rotator.clientId },
  });
  // Its own managed-identity token: no client assertion at the Entra token endpoint.
  expect(azure().servers.counts.total(ENTRA_TOKEN)).toBe(entraBefore);
  const stored = await s.tenant.reader.getSecret(SECRET);
  expect(await patWorks(s.tenant.workspaceUrl, stored.value!)).toMatchObject({ works: true });
});
