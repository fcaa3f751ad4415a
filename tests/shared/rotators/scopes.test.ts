import { randomBytes } from 'node:crypto';
import { TAGS } from '../../../shared/constants';
import type { Outcome } from '../../../shared/rotation/engine';
import type { Services } from '../../../shared/services';
import { useLocalAzure } from '../../support/localAzure';
import { createEngine, DAY, newPat, seedTenant, type Tenant } from '../../support/tenant';

/**
 * A rotation keeps exactly the scopes and autoscope setting of the credential it replaces, never
 * wider; a credential whose scopes cannot be read rotates only with a `databricks-scopes` tag; and
 * verify shows the successor reaches the areas its scopes name. Against local Azure, whose
 * Databricks refuses calls outside a token's scopes as Databricks does.
 */
const azure = useLocalAzure();

let tenant: Tenant;
let services: Services;
let workspaceName: string;

beforeAll(async () => {
  tenant = await seedTenant(azure());
  services = createEngine(tenant);
  workspaceName = `ws-${tenant.vaultName}`;
});
afterAll(async () => {
  await services.deps.databricks.close();
});

const OWNER = 'data-eng@contoso.com';
const workspace = () => azure().state.workspaces.get(workspaceName)!;

/** Seeds a PAT (with the given scopes) and a secret holding it, opted in for rotation. */
async function patSecret(
  scopes: { scopes?: string[]; autoscopeEnabled?: boolean },
  tags: Record<string, string> = {},
  { tagId = true } = {},
): Promise<{ name: string; value: string; tokenId: string }> {
  const value = newPat();
  const exp = Math.floor((azure().clock.now() + 10 * DAY) / 1000);
  const seeded = await azure().seed({
    workspaces: [{ name: workspaceName, tokens: [{ owner: OWNER, value, expiryTime: exp, ...scopes }] }],
  });
  const tokenId = seeded.workspaces[workspaceName]!.tokenIds.at(-1)!;
  const name = `pat-${randomBytes(3).toString('hex')}`;
  azure()
    .state.vaults.get(tenant.vaultName)!
    .secrets.set(name, [
      {
        version: randomBytes(16).toString('hex'),
        value,
        enabled: true,
        exp,
        created: azure().clock.nowSeconds(),
        updated: azure().clock.nowSeconds(),
        tags: {
          [TAGS.kind]: 'databricks-pat',
          [TAGS.databricksHost]: new URL(tenant.workspaceUrl).host,
          ...(tagId ? { [TAGS.credentialId]: tokenId } : {}),
          ...tags,
        },
        emitted: { nearExpiry: false, expired: false },
      },
    ]);
  return { name, value, tokenId };
}

const rotate = (secret: string) => services.engine.rotate({ vault: tenant.vaultName, secret });
const tokenById = (id: string) => workspace().tokens.find((t) => t.tokenId === id);

function expectStatus<S extends Outcome['status']>(
  outcome: Outcome,
  status: S,
): Extract<Outcome, { status: S }> {
  expect(outcome).toMatchObject({ status });
  return outcome as Extract<Outcome, { status: S }>;
}

const probes = (path: string) => azure().servers.counts.total(`databricks/${workspaceName} GET ${path}`);

describe('databricks-pat', () => {
  test('a scoped PAT with autoscope is replaced by one with exactly its scopes and autoscope', async () => {
    const scopes = ['authentication', 'jobs:read', 'sql'];
    const s = await patSecret({ scopes, autoscopeEnabled: true });
    const warehousesBefore = probes('/api/2.0/sql/warehouses');
    const jobsBefore = probes('/api/2.1/jobs/list');

    const rotated = expectStatus((await rotate(s.name)).outcome, 'rotated');

    const successor = tokenById(rotated.credentialId)!;
    expect(successor.scopes).toEqual(scopes);
    expect(successor.autoscopeEnabled).toBe(true);
    // Verify called one read in each scoped area with the new PAT.
    expect(probes('/api/2.0/sql/warehouses')).toBe(warehousesBefore + 1);
    expect(probes('/api/2.1/jobs/list')).toBe(jobsBefore + 1);
  });

  test('an unscoped PAT is replaced by an unscoped one (no scopes asked for)', async () => {
    const s = await patSecret({});
    const rotated = expectStatus((await rotate(s.name)).outcome, 'rotated');
    expect(tokenById(rotated.credentialId)).toMatchObject({ scopes: undefined, autoscopeEnabled: false });
  });

  test('without a credential-id tag the current PAT is found by its id (the SHA-256 of its value)', async () => {
    const s = await patSecret({ scopes: ['authentication', 'sql'] }, {}, { tagId: false });
    const rotated = expectStatus((await rotate(s.name)).outcome, 'rotated');
    expect(tokenById(rotated.credentialId)?.scopes).toEqual(['authentication', 'sql']);
  });

  test('scopes that cannot be read: a finding without the tag; with it, exactly the tag’s scopes', async () => {
    // The credential-id tag names a token that is not in the list, and the value matches none.
    const s = await patSecret({ scopes: ['authentication', 'sql'] });
    const version = azure().state.vaults.get(tenant.vaultName)!.secrets.get(s.name)!.at(-1)!;
    version.tags[TAGS.credentialId] = 'f'.repeat(64);
    workspace().tokens.find((t) => t.tokenId === s.tokenId)!.tokenId = '0'.repeat(64);
    const before = workspace().tokens.length;

    const failed = expectStatus((await rotate(s.name)).outcome, 'failed');
    expect(failed).toMatchObject({ step: 'create', transient: false });
    expect(failed.reason).toContain('the scopes of the current credential cannot be read');
    expect(failed.reason).toContain(`set the ${TAGS.databricksScopes} tag`);
    expect(workspace().tokens).toHaveLength(before);

    version.tags[TAGS.databricksScopes] = 'sql, authentication';
    const rotated = expectStatus((await rotate(s.name)).outcome, 'rotated');
    expect(tokenById(rotated.credentialId)?.scopes).toEqual(['authentication', 'sql']);
  });

  test('a tag that disagrees with the readable scopes is refused, never used to widen', async () => {
    const s = await patSecret({ scopes: ['authentication', 'sql'] }, { [TAGS.databricksScopes]: 'all-apis' });
    const before = workspace().tokens.length;
    const failed = expectStatus((await rotate(s.name)).outcome, 'failed');
    expect(failed.reason).toMatch(/tag says "all-apis" but the current credential has "authentication,sql"/);
    expect(workspace().tokens).toHaveLength(before);
  });

  test('a malformed scopes tag is a policy finding naming the tag', async () => {
    const s = await patSecret({}, { [TAGS.databricksScopes]: 'sql;DROP' });
    const failed = expectStatus((await rotate(s.name)).outcome, 'failed');
    expect(failed).toMatchObject({ step: 'policy' });
    expect(failed.reason).toContain(`${TAGS.databricksScopes}: "sql;DROP"`);
  });

  test('a PAT whose scopes lack `authentication` cannot mint its successor: a clear permanent failure', async () => {
    const s = await patSecret({ scopes: ['sql'] });
    const failed = expectStatus((await rotate(s.name)).outcome, 'failed');
    expect(failed).toMatchObject({ step: 'create', transient: false });
    expect(failed.reason).toContain('its scopes lack "authentication"');
  });

  test('verify fails (and the new PAT is revoked) if the successor cannot reach a scoped area', async () => {
    const s = await patSecret({ scopes: ['authentication', 'clusters'] });
    azure().servers.faults.add({
      service: 'databricks',
      instance: workspaceName,
      method: 'GET',
      route: '/api/2.0/clusters/list',
      status: 403,
      body: {
        error_code: 'PERMISSION_DENIED',
        message: 'Provided access token does not have required scopes: clusters',
      },
    });
    try {
      const before = workspace().tokens.length;
      const failed = expectStatus((await rotate(s.name)).outcome, 'failed');
      expect(failed.step).toBe('verify');
      expect(workspace().tokens).toHaveLength(before);
    } finally {
      azure().servers.faults.clear();
    }
  });
});

describe('databricks-sp-secret', () => {
  test('a scoped SP secret is replaced by one with the same scopes; verify checks the token scope', async () => {
    const account = azure().state.accounts.get(tenant.accountId)!;
    const sp = account.servicePrincipals.find((x) => x.id === tenant.spId)!;
    const current = sp.secrets[0]!;
    current.scopes = ['sql', 'unity-catalog:read'];

    const rotated = expectStatus(
      (await services.engine.rotate({ vault: tenant.vaultName, secret: 'etl-sp-oauth-secret' })).outcome,
      'rotated',
    );
    expect(sp.secrets.find((x) => x.id === rotated.credentialId)?.scopes).toEqual([
      'sql',
      'unity-catalog:read',
    ]);
  });

  test('verify refuses a new secret whose tokens carry wider scopes than the old one', async () => {
    const sp = azure()
      .state.accounts.get(tenant.accountId)!
      .servicePrincipals.find((x) => x.id === tenant.spId)!;
    const before = sp.secrets.map((x) => x.id);
    azure().servers.faults.add({
      service: 'accounts',
      method: 'POST',
      route: '/oidc/accounts/:accountId/v1/token',
      status: 200,
      body: { access_token: 'x.y.z', token_type: 'Bearer', expires_in: 3600, scope: 'all-apis' },
    });
    try {
      const failed = expectStatus(
        (
          await services.engine.rotate({
            vault: tenant.vaultName,
            secret: 'etl-sp-oauth-secret',
            force: true,
          })
        ).outcome,
        'failed',
      );
      expect(failed).toMatchObject({ step: 'verify', transient: false });
      expect(failed.reason).toContain('not the scopes of the secret it replaces ("sql,unity-catalog:read")');
      // The new secret was revoked again (compensation).
      expect(sp.secrets.filter((x) => !before.includes(x.id))).toEqual([]);
    } finally {
      azure().servers.faults.clear();
    }
  });
});
