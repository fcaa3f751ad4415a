import { randomBytes, randomUUID } from 'node:crypto';
import { DatabricksClient } from '../../../shared/clients/databricks';
import { ProviderError } from '../../../shared/errors';
import { isAllowedOrigin } from '../../../shared/hosts';
import { appCredential, useLocalAzure } from '../../support/localAzure';

/**
 * DatabricksClient paging and SCIM errors against the local Databricks: `page_token` lists are
 * followed to the end, SCIM lists by `startIndex`/`count`, and SCIM error bodies become the same
 * typed errors as the rest of the API.
 */
const azure = useLocalAzure();

const ADMIN = { appId: randomUUID(), secret: `adm-${randomBytes(12).toString('hex')}` };
const ACCOUNT = randomUUID();
const SP = randomUUID();
const PAT = `dapi${randomBytes(16).toString('hex')}`;
const WS = `ws-paging-${randomBytes(3).toString('hex')}`;
const USERS = Array.from({ length: 7 }, (_, i) => `user${i}@contoso.com`);

let workspace: string;
let accounts: string;
let secretsPath: string;
let client: DatabricksClient;
const admin = async () => ({
  bearer: (await appCredential(azure(), ADMIN.appId, ADMIN.secret).getToken(
    '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default',
  ))!.token,
});
const count = (service: string, method: string, route: string) =>
  azure().servers.counts.snapshot()[`${service} ${method} ${route}`] ?? 0;

beforeAll(async () => {
  const seed = await azure().seed({
    apps: [{ displayName: 'paging-admin', appId: ADMIN.appId, secrets: [{ value: ADMIN.secret }] }],
    accounts: [
      {
        accountId: ACCOUNT,
        admins: [ADMIN.appId],
        servicePrincipals: [
          {
            applicationId: SP,
            secrets: Array.from({ length: 5 }, (_, i) => ({ value: `dose-seeded-${i}` })),
          },
        ],
      },
    ],
    workspaces: [
      {
        name: WS,
        principals: USERS.map((userName) => ({ userName })),
        tokens: [{ owner: USERS[0]!, value: PAT }],
      },
    ],
  });
  workspace = seed.workspaces[WS]!.url;
  accounts = seed.accountsUrl;
  const spId = seed.accounts[ACCOUNT]!.servicePrincipals[SP]!.id;
  secretsPath = `/api/2.0/accounts/${ACCOUNT}/servicePrincipals/${spId}/credentials/secrets`;
  client = new DatabricksClient({
    isAllowedOrigin: (origin) => isAllowedOrigin(origin, [new URL(workspace).host, new URL(accounts).host]),
    baseDelayMs: 10,
  });
});
afterAll(async () => {
  await client.close();
});
beforeEach(() => azure().servers.counts.reset());
afterEach(() => azure().servers.faults.clear());

describe('page_token lists', () => {
  const route = '/api/2.0/accounts/:accountId/servicePrincipals/:spId/credentials/secrets';

  test('listAll follows next_page_token until a page has none', async () => {
    const secrets = await client.listAll<{ id: string }>(accounts, secretsPath, 'secrets', {
      auth: await admin(),
      pageSize: 2,
    });
    expect(secrets).toHaveLength(5);
    expect(new Set(secrets.map((s) => s.id)).size).toBe(5);
    expect(count('accounts', 'GET', route)).toBe(3);
  });

  test('a page token that comes back again is a ProviderError, not an endless loop', async () => {
    azure().servers.faults.add({
      service: 'accounts',
      method: 'GET',
      route,
      status: 200,
      body: { secrets: [], next_page_token: 'same' },
    });
    const e = await client
      .listAll(accounts, secretsPath, 'secrets', { auth: await admin() })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ProviderError);
    expect((e as Error).message).toContain('repeated a page token');
  });
});

describe('SCIM lists', () => {
  const users = '/api/2.0/preview/scim/v2/Users';

  test('scimListAll pages by startIndex and count until totalResults', async () => {
    const all = await client.scimListAll<{ userName: string }>(workspace, users, {
      auth: { bearer: PAT },
      count: 3,
    });
    expect(all.map((u) => u.userName).sort()).toEqual([...USERS].sort());
    expect(count(`databricks/${WS}`, 'GET', users)).toBe(3);
  });

  test('with a filter, only the matches', async () => {
    const found = await client.scimListAll<{ userName: string }>(workspace, users, {
      auth: { bearer: PAT },
      filter: 'userName sw "user1" or userName eq "user6@contoso.com"',
    });
    expect(found.map((u) => u.userName).sort()).toEqual(['user1@contoso.com', 'user6@contoso.com']);
  });
});

describe('SCIM errors become the same typed errors', () => {
  test('a SCIM 404 is RESOURCE_DOES_NOT_EXIST with the detail as message', async () => {
    const e = await client
      .call(accounts, `/api/2.0/accounts/${ACCOUNT}/scim/v2/ServicePrincipals/999`, {
        method: 'GET',
        auth: await admin(),
      })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ProviderError);
    expect(e).toMatchObject({ status: 404, code: 'RESOURCE_DOES_NOT_EXIST', transient: false });
    expect((e as Error).message).toContain('Service principal 999 not found.');
  });

  test('a SCIM 400 is INVALID_PARAMETER_VALUE and keeps the scimType', async () => {
    const e = await client
      .scimListAll(workspace, '/api/2.0/preview/scim/v2/Users', {
        auth: { bearer: PAT },
        filter: 'userName lt "b"',
      })
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ status: 400, code: 'INVALID_PARAMETER_VALUE' });
    expect((e as Error).message).toContain('(scimType invalidFilter)');
  });
});
