import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { request } from 'undici';
import { appCredential, useLocalAzure } from '../support/localAzure';

/**
 * Provider fidelity of the local Databricks, written from the documented behaviour: token scopes
 * and autoscope, the per-user PAT quota and the 5-secret limit, paging of secrets and SCIM lists,
 * SCIM filters and error bodies, workspace membership, id formats.
 */
const azure = useLocalAzure();

const DATABRICKS_SCOPE = '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default';
const SCIM_ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const pat = () => `dapi${randomBytes(16).toString('hex')}`;
const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');

const IDS = {
  account: randomUUID(),
  adminApp: randomUUID(),
  memberSp: randomUUID(),
  outsiderSp: randomUUID(),
} as const;
const ADMIN_APP_SECRET = `admin-${randomBytes(12).toString('hex')}`;
const USER = 'analyst@contoso.com';
const ADMIN = 'admin@contoso.com';
const QUOTA = 5;
const PATS = { user: pat(), admin: pat() };

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function call(
  url: string,
  {
    method = 'GET',
    auth,
    json,
    form,
  }: { method?: string; auth?: string; json?: unknown; form?: Record<string, string> } = {},
): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = auth;
  let body: string | undefined;
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const res = await request(url, { method: method as 'GET', headers, body });
  const text = await res.body.text();
  return { status: res.statusCode, body: (text ? JSON.parse(text) : {}) as Json };
}
const bearer = (t: string) => `Bearer ${t}`;
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

let ws: string;
let workspaceId: string;
let accounts: string;
let memberSpId: string;
let outsiderSpId: string;
let principalIds: Record<string, string>;
const secretsUrl = (spId: string) =>
  `${accounts}/api/2.0/accounts/${IDS.account}/servicePrincipals/${spId}/credentials/secrets`;
const admin = async () =>
  bearer((await appCredential(azure(), IDS.adminApp, ADMIN_APP_SECRET).getToken(DATABRICKS_SCOPE))!.token);
const createPat = (auth: string, json: unknown) =>
  call(`${ws}/api/2.0/token/create`, { method: 'POST', auth: bearer(auth), json });

beforeAll(async () => {
  const seed = await azure().seed({
    apps: [{ displayName: 'account-admin', appId: IDS.adminApp, secrets: [{ value: ADMIN_APP_SECRET }] }],
    accounts: [
      {
        accountId: IDS.account,
        admins: [IDS.adminApp],
        servicePrincipals: [
          { applicationId: IDS.memberSp, displayName: 'etl-loader' },
          { applicationId: IDS.outsiderSp, displayName: 'billing-export' },
          ...['etl-reader', 'etl-writer', 'reporting', 'ml-train'].map((displayName) => ({
            applicationId: randomUUID(),
            displayName,
          })),
        ],
      },
    ],
    workspaces: [
      {
        name: 'provider-ws',
        accountId: IDS.account,
        maxTokensPerUser: QUOTA,
        principals: [{ userName: USER }, { userName: ADMIN, admin: true }, { applicationId: IDS.memberSp }],
        tokens: [
          { owner: USER, value: PATS.user },
          { owner: ADMIN, value: PATS.admin },
        ],
      },
    ],
  });
  const w = seed.workspaces['provider-ws']!;
  ws = w.url;
  workspaceId = w.workspaceId;
  principalIds = w.principals;
  accounts = seed.accountsUrl;
  memberSpId = seed.accounts[IDS.account]!.servicePrincipals[IDS.memberSp]!.id;
  outsiderSpId = seed.accounts[IDS.account]!.servicePrincipals[IDS.outsiderSp]!.id;
});

describe('token scopes and autoscope', () => {
  let scoped: { value: string; id: string };

  test('token/create takes scopes and autoscope_enabled; token/list returns them', async () => {
    const created = await createPat(PATS.admin, {
      lifetime_seconds: 3600,
      comment: 'scoped',
      scopes: ['sql', 'jobs:read', 'authentication'],
      autoscope_enabled: true,
    });
    expect(created.status).toBe(200);
    expect(created.body.token_info).toMatchObject({
      scopes: ['sql', 'jobs:read', 'authentication'],
      autoscope_state: 'AUTOSCOPE_STATE_RUNNING',
      inferred_scopes: [],
    });
    scoped = { value: created.body.token_value, id: created.body.token_info.token_id };

    // Used within its scopes, autoscope records what for.
    expect((await call(`${ws}/api/2.0/sql/warehouses`, { auth: bearer(scoped.value) })).status).toBe(200);
    const list = await call(`${ws}/api/2.0/token/list`, { auth: bearer(scoped.value) });
    const info = list.body.token_infos.find((t: Json) => t.token_id === scoped.id);
    expect(info).toMatchObject({
      scopes: ['sql', 'jobs:read', 'authentication'],
      autoscope_state: 'AUTOSCOPE_STATE_RUNNING',
      inferred_scopes: ['sql:read', 'authentication:read'],
    });
  });

  test('calls outside a token’s scopes are 403 PERMISSION_DENIED naming the missing scope', async () => {
    const clusters = await call(`${ws}/api/2.0/clusters/list`, { auth: bearer(scoped.value) });
    expect(clusters).toEqual({
      status: 403,
      body: {
        error_code: 'PERMISSION_DENIED',
        message: 'Provided access token does not have required scopes: clusters',
      },
    });
    // `jobs:read` allows reads of jobs.
    expect((await call(`${ws}/api/2.1/jobs/list`, { auth: bearer(scoped.value) })).status).toBe(200);
    // Every token may identify itself.
    expect((await call(`${ws}/api/2.0/preview/scim/v2/Me`, { auth: bearer(scoped.value) })).status).toBe(200);
  });

  test('a PAT without `authentication` cannot create or list tokens', async () => {
    const sqlOnly = await createPat(PATS.admin, { lifetime_seconds: 3600, scopes: ['sql'] });
    expect(sqlOnly.body.token_info.autoscope_state).toBe('AUTOSCOPE_STATE_USER_SELECTED');
    const res = await createPat(sqlOnly.body.token_value, { lifetime_seconds: 60 });
    expect(res.status).toBe(403);
    expect(res.body.message).toBe('Provided access token does not have required scopes: authentication');
  });

  test('an unscoped token reaches every area; an unknown scope is 400 INVALID_PARAMETER_VALUE', async () => {
    for (const path of [
      '/api/2.0/sql/warehouses',
      '/api/2.0/clusters/list',
      '/api/2.1/unity-catalog/catalogs',
    ])
      expect((await call(`${ws}${path}`, { auth: bearer(PATS.admin) })).status).toBe(200);
    const bad = await createPat(PATS.admin, { scopes: ['sql', 'everything'] });
    expect(bad).toEqual({
      status: 400,
      body: { error_code: 'INVALID_PARAMETER_VALUE', message: 'Invalid scope: everything' },
    });
    expect((await createPat(PATS.admin, { scopes: ['jobs:restricted-query'] })).status).toBe(400);
  });

  test('token management returns owner, creator, workspace, scopes and the day it was last used', async () => {
    const res = await call(`${ws}/api/2.0/token-management/tokens/${scoped.id}`, {
      auth: bearer(PATS.admin),
    });
    expect(res.status).toBe(200);
    const day = 86_400_000;
    expect(res.body.token_info).toMatchObject({
      token_id: scoped.id,
      owner_id: Number(principalIds[ADMIN]),
      created_by_id: Number(principalIds[ADMIN]),
      created_by_username: ADMIN,
      workspace_id: Number(workspaceId),
      scopes: ['sql', 'jobs:read', 'authentication'],
      autoscope_state: 'AUTOSCOPE_STATE_RUNNING',
      last_used_day: Math.floor(azure().clock.now() / day) * day,
    });
  });

  test('SP OAuth secrets carry scopes; their tokens get exactly those, and nothing wider', async () => {
    const created = await call(secretsUrl(memberSpId), {
      method: 'POST',
      auth: await admin(),
      json: { lifetime: '3600s', scopes: ['sql', 'unity-catalog:read'] },
    });
    expect(created.status).toBe(200);
    expect(created.body.scopes).toEqual(['sql', 'unity-catalog:read']);
    const listed = await call(secretsUrl(memberSpId), { auth: await admin() });
    expect(listed.body.secrets.find((s: Json) => s.id === created.body.id).scopes).toEqual([
      'sql',
      'unity-catalog:read',
    ]);

    const token = (scope: string) =>
      call(`${ws}/oidc/v1/token`, {
        method: 'POST',
        auth: basic(IDS.memberSp, created.body.secret),
        form: { grant_type: 'client_credentials', scope },
      });
    const all = await token('all-apis');
    expect(all.status).toBe(200);
    expect(all.body.scope).toBe('sql unity-catalog:read');
    const wider = await token('clusters');
    expect(wider).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });

    const oauth = bearer(all.body.access_token);
    expect((await call(`${ws}/api/2.0/sql/warehouses`, { auth: oauth })).status).toBe(200);
    expect((await call(`${ws}/api/2.0/clusters/list`, { auth: oauth })).body).toEqual({
      error_code: 'PERMISSION_DENIED',
      message: 'Provided OAuth token does not have required scopes: clusters',
    });
    await call(`${secretsUrl(memberSpId)}/${created.body.id}`, { method: 'DELETE', auth: await admin() });
  });
});

describe('limits', () => {
  test(`the per-user PAT quota: creating past it is 400 QUOTA_EXCEEDED (quota ${QUOTA})`, async () => {
    const held = () =>
      azure()
        .state.workspaces.get('provider-ws')!
        .tokens.filter(
          (t) =>
            t.ownerId === principalIds[USER] && (t.expiryTime === -1 || t.expiryTime > azure().clock.now()),
        ).length;
    while (held() < QUOTA) expect((await createPat(PATS.user, { lifetime_seconds: 60 })).status).toBe(200);
    const over = await createPat(PATS.user, { lifetime_seconds: 60 });
    expect(over.status).toBe(400);
    expect(over.body).toEqual({
      error_code: 'QUOTA_EXCEEDED',
      message: `User ${USER} already has ${QUOTA} tokens, the maximum of ${QUOTA} per user; revoke a token before creating another.`,
    });
    // Expired tokens do not count.
    azure().clock.advance(61_000);
    expect((await createPat(PATS.user, { lifetime_seconds: 60 })).status).toBe(200);
  });

  test('a service principal holds at most 5 OAuth secrets; expired ones count until deleted', async () => {
    const url = secretsUrl(outsiderSpId);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await call(url, { method: 'POST', auth: await admin(), json: { lifetime: '60s' } });
      expect(res.status).toBe(200);
      ids.push(res.body.id);
    }
    azure().clock.advance(120_000);
    const sixth = await call(url, { method: 'POST', auth: await admin(), json: {} });
    expect(sixth.status).toBe(400);
    expect(sixth.body).toEqual({
      error_code: 'QUOTA_EXCEEDED',
      message: `Service principal ${outsiderSpId} already has 5 secrets, the maximum of 5; delete one before creating another.`,
    });
    await call(`${url}/${ids[0]}`, { method: 'DELETE', auth: await admin() });
    expect((await call(url, { method: 'POST', auth: await admin(), json: {} })).status).toBe(200);
  });
});

describe('paging', () => {
  test('secrets are listed with page_size/page_token → next_page_token until the last page', async () => {
    const url = secretsUrl(outsiderSpId);
    const all = (await call(url, { auth: await admin() })).body.secrets.map((s: Json) => s.id);
    expect(all).toHaveLength(5);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await call(`${url}?page_size=2${token ? `&page_token=${token}` : ''}`, {
        auth: await admin(),
      });
      expect(page.status).toBe(200);
      seen.push(...page.body.secrets.map((s: Json) => s.id));
      token = page.body.next_page_token;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual(all);
    const bad = await call(`${url}?page_size=0`, { auth: await admin() });
    expect(bad).toMatchObject({ status: 400, body: { error_code: 'INVALID_PARAMETER_VALUE' } });
  });

  const scim = (query: string) =>
    `${accounts}/api/2.0/accounts/${IDS.account}/scim/v2/ServicePrincipals?${query}`;

  test('SCIM lists page by startIndex (1-based) and count, with totalResults and itemsPerPage', async () => {
    const first = await call(scim('startIndex=1&count=4'), { auth: await admin() });
    expect(first.body).toMatchObject({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'],
      totalResults: 6,
      startIndex: 1,
      itemsPerPage: 4,
    });
    const second = await call(scim('startIndex=5&count=4'), { auth: await admin() });
    expect(second.body).toMatchObject({ totalResults: 6, startIndex: 5, itemsPerPage: 2 });
    const ids = [...first.body.Resources, ...second.body.Resources].map((r: Json) => r.id);
    expect(new Set(ids).size).toBe(6);
    // Past the end: an empty page, so a pager stops.
    expect((await call(scim('startIndex=7'), { auth: await admin() })).body).toMatchObject({
      itemsPerPage: 0,
      Resources: [],
    });
    // count is capped at 100.
    expect((await call(scim('count=1000'), { auth: await admin() })).body.itemsPerPage).toBe(6);
    expect((await call(scim('count=abc'), { auth: await admin() })).body).toMatchObject({
      schemas: [SCIM_ERROR],
      status: '400',
      scimType: 'invalidValue',
    });
  });

  test.each([
    ['displayName co "etl"', ['etl-loader', 'etl-reader', 'etl-writer']],
    ['displayName sw "ETL-"', ['etl-loader', 'etl-reader', 'etl-writer']],
    ['displayName ew "er"', ['etl-loader', 'etl-reader', 'etl-writer']],
    [
      'displayName ne "reporting" and displayName co "r"',
      ['etl-loader', 'etl-reader', 'etl-writer', 'billing-export', 'ml-train'],
    ],
    ['displayName eq "reporting" or displayName eq "ml-train"', ['reporting', 'ml-train']],
    [
      'displayName sw "etl" and (displayName co "read" or displayName co "writ")',
      ['etl-reader', 'etl-writer'],
    ],
    ['not (displayName co "-")', ['reporting']],
  ])('SCIM filter %s', async (filter, names) => {
    const res = await call(scim(`filter=${encodeURIComponent(filter)}`), { auth: await admin() });
    expect(res.status).toBe(200);
    expect(res.body.Resources.map((r: Json) => r.displayName).sort()).toEqual([...names].sort());
    expect(res.body.totalResults).toBe(names.length);
  });
});

describe('SCIM error bodies', () => {
  test.each([
    ['displayName gt "a"', 'unsupported operator gt'],
    ['displayName eq etl', 'etl is not a quoted string'],
    ['(displayName eq "a"', 'unexpected end'],
  ])('an invalid filter %s is a SCIM 400 with scimType invalidFilter', async (filter, why) => {
    const res = await call(
      `${accounts}/api/2.0/accounts/${IDS.account}/scim/v2/ServicePrincipals?filter=${encodeURIComponent(filter)}`,
      { auth: await admin() },
    );
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      schemas: [SCIM_ERROR],
      detail: expect.stringContaining(why),
      status: '400',
      scimType: 'invalidFilter',
    });
  });

  test('an unknown workspace user is a SCIM 404 with the status as a string', async () => {
    const res = await call(`${ws}/api/2.0/preview/scim/v2/Users/999`, { auth: bearer(PATS.admin) });
    expect(res).toEqual({
      status: 404,
      body: { schemas: [SCIM_ERROR], detail: 'User 999 not found.', status: '404' },
    });
  });
});

describe('workspace membership', () => {
  const proxy = (spId: string) => `${ws}/api/2.0/accounts/servicePrincipals/${spId}/credentials/secrets`;

  test('the workspace-level secrets API serves principals in the workspace, to workspace admins', async () => {
    const created = await call(proxy(memberSpId), { method: 'POST', auth: bearer(PATS.admin), json: {} });
    expect(created.status).toBe(200);
    await call(`${proxy(memberSpId)}/${created.body.id}`, { method: 'DELETE', auth: bearer(PATS.admin) });
  });

  test('a principal of the account that is not in the workspace is refused, and nothing is created', async () => {
    const before = azure()
      .state.accounts.get(IDS.account)!
      .servicePrincipals.find((s) => s.id === outsiderSpId)!.secrets.length;
    for (const method of ['POST', 'GET'] as const) {
      const res = await call(proxy(outsiderSpId), {
        method,
        auth: bearer(PATS.admin),
        json: method === 'POST' ? {} : undefined,
      });
      expect(res).toEqual({
        status: 404,
        body: {
          error_code: 'RESOURCE_DOES_NOT_EXIST',
          message: `Service principal ${outsiderSpId} is not a member of workspace ${workspaceId}.`,
        },
      });
    }
    expect(
      azure()
        .state.accounts.get(IDS.account)!
        .servicePrincipals.find((s) => s.id === outsiderSpId)!.secrets,
    ).toHaveLength(before);
  });
});

describe('ids in real formats', () => {
  test('a token id is the SHA-256 (hex) of the token; secret ids are hex', async () => {
    const created = await createPat(PATS.admin, { lifetime_seconds: 60 });
    expect(created.body.token_info.token_id).toBe(sha256(created.body.token_value));
    const seeded = azure()
      .state.workspaces.get('provider-ws')!
      .tokens.find((t) => t.valueHash === sha256(PATS.user));
    expect(seeded?.tokenId).toBe(sha256(PATS.user));

    const secret = await call(secretsUrl(memberSpId), { method: 'POST', auth: await admin(), json: {} });
    expect(secret.body.id).toMatch(/^[0-9a-f]{32}$/);
    const seed = await azure().seed({
      accounts: [
        {
          accountId: IDS.account,
          servicePrincipals: [{ applicationId: randomUUID(), secrets: [{ value: 'dose-seeded' }] }],
        },
      ],
    });
    const ids = Object.values(seed.accounts[IDS.account]!.servicePrincipals).flatMap((sp) => sp.secretIds);
    expect(ids.length).toBeGreaterThan(0);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
  });
});
