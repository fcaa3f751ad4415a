import { createHash, createPublicKey, randomBytes, randomUUID, verify, type JsonWebKey } from 'node:crypto';
import { request } from 'undici';
import { appCredential, useLocalAzure } from '../support/localAzure';

/**
 * Fidelity of the local Databricks workspace and account APIs, driven by undici (the client the
 * rotator uses) over HTTPS.
 */
const azure = useLocalAzure();

const DATABRICKS_SCOPE = '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default';
const pat = () => `dapi${randomBytes(16).toString('hex')}`;

const IDS = {
  account: randomUUID(),
  /** An Entra app that is also a Databricks SP of the account, added to the workspace. */
  spApp: randomUUID(),
  /** An Entra app listed as account admin. */
  adminApp: randomUUID(),
  /** An Entra app that was never added to the workspace. */
  outsiderApp: randomUUID(),
  /** Managed identities: one trusted by the SP's federation policy, one not. */
  trustedMi: randomUUID(),
  otherMi: randomUUID(),
} as const;

const SECRETS = {
  spApp: 'sp-app-entra-secret-0123456789',
  adminApp: 'admin-app-entra-secret-0123456789',
  outsiderApp: 'outsider-entra-secret-0123456789',
  spOAuth: `dose${randomBytes(16).toString('hex')}`,
  userPat: pat(),
  adminPat: pat(),
} as const;

const USER = 'user@contoso.com';
const ADMIN = 'admin@contoso.com';
const MAX_LIFETIME_DAYS = 90;

/**
 * The response fields these tests read (Databricks REST, SCIM and OAuth shapes). A lens for the
 * compiler only: which fields are really present is what the assertions check.
 */
interface TokenInfo {
  token_id: string;
  creation_time: number;
  expiry_time: number;
  comment: string;
  created_by_username: string;
}
interface SecretInfo {
  id: string;
  secret: string;
  create_time: string;
  expire_time: string;
  status: string;
}
interface Body extends SecretInfo {
  error_code: string | number;
  message: string;
  error: string;
  error_description: string;
  token_value: string;
  token_info: TokenInfo;
  token_infos: TokenInfo[];
  secrets: SecretInfo[];
  access_token: string;
  token_type: string;
  userName: string;
  applicationId: string;
  scope: string;
  Resources: unknown[];
  totalResults: number;
  issuer: string;
  token_endpoint: string;
  keys: JsonWebKey[];
}

interface Call {
  method?: 'GET' | 'POST' | 'DELETE';
  /** Full Authorization header value. */
  auth?: string;
  json?: unknown;
  form?: Record<string, string>;
}

/** One undici request; the JSON body is parsed for assertions. */
async function call(url: string, { method = 'GET', auth, json, form }: Call = {}) {
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
  const res = await request(url, { method, headers, body });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    body: (text ? JSON.parse(text) : {}) as Body,
  };
}

const bearer = (token: string) => `Bearer ${token}`;
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

let ws: string;
let accountSecrets: string;
let spId: string;
let principalIds: Record<string, string>;
let workspaceId: string;

const entraToken = async (appId: string, secret: string, scope = DATABRICKS_SCOPE) =>
  (await appCredential(azure(), appId, secret).getToken(scope))!.token;

/** A managed identity's token for `audience`, as the subject of a token exchange. */
const miToken = (principalId: string, audience: string) => {
  const mi = azure().state.managedIdentities.find((m) => m.objectId === principalId)!;
  return azure().tokens.issue(mi, audience).token;
};

const me = (auth: string) => call(`${ws}/api/2.0/preview/scim/v2/Me`, { auth });

const createPat = (auth: string, json: unknown) =>
  call(`${ws}/api/2.0/token/create`, { method: 'POST', auth, json });

const oidcToken = (form: Record<string, string>, auth?: string) =>
  call(`${ws}/oidc/v1/token`, { method: 'POST', form, auth });

const clientCredentials = (clientId: string, secret: string) =>
  oidcToken({ grant_type: 'client_credentials', scope: 'all-apis' }, basic(clientId, secret));

const tokenExchange = (subjectToken: string, clientId = IDS.spApp) =>
  oidcToken({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: subjectToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    scope: 'all-apis',
    client_id: clientId,
  });

beforeAll(async () => {
  const seed = await azure().seed({
    managedIdentities: [
      { name: 'mi-trusted', principalId: IDS.trustedMi },
      { name: 'mi-other', principalId: IDS.otherMi },
    ],
    apps: [
      { displayName: 'dbx-sp', appId: IDS.spApp, secrets: [{ value: SECRETS.spApp }] },
      { displayName: 'account-admin', appId: IDS.adminApp, secrets: [{ value: SECRETS.adminApp }] },
      { displayName: 'outsider', appId: IDS.outsiderApp, secrets: [{ value: SECRETS.outsiderApp }] },
    ],
    accounts: [
      {
        accountId: IDS.account,
        admins: [IDS.adminApp],
        servicePrincipals: [
          {
            applicationId: IDS.spApp,
            displayName: 'dbx-sp',
            secrets: [{ value: SECRETS.spOAuth }],
            // No audiences: the default audience is the account id.
            federationPolicies: [{ issuer: azure().tokens.issuer, subject: IDS.trustedMi }],
          },
        ],
      },
    ],
    workspaces: [
      {
        name: 'ws1',
        accountId: IDS.account,
        maxTokenLifetimeDays: MAX_LIFETIME_DAYS,
        principals: [{ userName: USER }, { userName: ADMIN, admin: true }, { applicationId: IDS.spApp }],
        tokens: [
          { owner: USER, value: SECRETS.userPat, comment: 'seeded user token' },
          { owner: ADMIN, value: SECRETS.adminPat },
        ],
      },
    ],
  });
  const workspace = seed.workspaces.ws1!;
  ws = workspace.url;
  principalIds = workspace.principals;
  workspaceId = workspace.workspaceId;
  spId = seed.accounts[IDS.account]!.servicePrincipals[IDS.spApp]!.id;
  accountSecrets = `${seed.accountsUrl}/api/2.0/accounts/${IDS.account}/servicePrincipals/${spId}/credentials/secrets`;
});

describe('workspace authentication', () => {
  test('a seeded PAT identifies its owner on SCIM Me', async () => {
    const res = await me(bearer(SECRETS.userPat));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id: principalIds[USER],
      userName: USER,
      active: true,
      emails: [{ value: USER, primary: true }],
    });
  });

  test.each([
    ['no Authorization header', undefined],
    ['HTTP Basic credentials', basic('user', 'password')],
  ])('401 with %s', async (_case, auth) => {
    const res = await me(auth as string);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({
      error_code: 401,
      message: 'Credential was not sent or was of an unsupported type for this API.',
    });
  });

  test.each([
    ['an unknown PAT', () => Promise.resolve(pat())],
    ['a malformed bearer token', () => Promise.resolve('not-a-token')],
    [
      'an Entra token for another resource',
      () => entraToken(IDS.spApp, SECRETS.spApp, 'https://vault.azure.net/.default'),
    ],
  ])('403 Invalid access token for %s', async (_case, token) => {
    const res = await me(bearer(await token()));
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ error_code: 403, message: 'Invalid access token.' });
  });

  test('an Entra token (ClientSecretCredential) of a workspace service principal is accepted', async () => {
    const res = await me(bearer(await entraToken(IDS.spApp, SECRETS.spApp)));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ userName: IDS.spApp, applicationId: IDS.spApp, active: true });
  });

  test('an Entra token of an app that is not in the workspace gets 403 PERMISSION_DENIED', async () => {
    const res = await me(bearer(await entraToken(IDS.outsiderApp, SECRETS.outsiderApp)));
    expect(res.status).toBe(403);
    expect(res.body.error_code).toBe('PERMISSION_DENIED');
    expect(res.body.message).toMatch(/^Unauthorized access to Org: \d+$/);
  });

  test('429 with Retry-After from fault injection reaches undici', async () => {
    azure().servers.faults.add({ service: 'databricks', status: 429, retryAfterSeconds: 1, times: 1 });
    const throttled = await me(bearer(SECRETS.userPat));
    expect(throttled.status).toBe(429);
    expect(throttled.headers['retry-after']).toBe('1');
    expect((await me(bearer(SECRETS.userPat))).status).toBe(200);
  });

  test('an unknown endpoint gets ENDPOINT_NOT_FOUND', async () => {
    const res = await call(`${ws}/api/2.0/nope`, { auth: bearer(SECRETS.userPat) });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({
      error_code: 'ENDPOINT_NOT_FOUND',
      message: "No API found for 'GET /api/2.0/nope'",
    });
  });
});

describe('personal access tokens', () => {
  const user = bearer(SECRETS.userPat);

  test('create, list, use and delete a PAT', async () => {
    const created = await createPat(user, { lifetime_seconds: 3600, comment: 'rotation' });
    expect(created.status).toBe(200);
    expect(created.body.token_value).toMatch(/^dapi[0-9a-f]{32}$/);
    const info = created.body.token_info;
    expect(info).toEqual({
      token_id: expect.stringMatching(/^[0-9a-f]{64}$/),
      creation_time: expect.any(Number),
      expiry_time: info.creation_time + 3600 * 1000,
      comment: 'rotation',
      autoscope_state: 'AUTOSCOPE_STATE_DISABLED',
    });
    // Like Databricks, the id is the SHA-256 of the token value.
    expect(info.token_id).toBe(createHash('sha256').update(created.body.token_value).digest('hex'));

    const list = await call(`${ws}/api/2.0/token/list`, { auth: user });
    expect(list.status).toBe(200);
    expect(list.body.token_infos).toContainEqual(info);
    expect(JSON.stringify(list.body)).not.toContain(created.body.token_value);

    const newPat = bearer(created.body.token_value);
    expect((await me(newPat)).body.userName).toBe(USER);

    const deleted = await call(`${ws}/api/2.0/token/delete`, {
      method: 'POST',
      auth: user,
      json: { token_id: info.token_id },
    });
    expect(deleted).toMatchObject({ status: 200, body: {} });
    expect(await me(newPat)).toMatchObject({
      status: 403,
      body: { error_code: 403, message: 'Invalid access token.' },
    });

    const again = await call(`${ws}/api/2.0/token/delete`, {
      method: 'POST',
      auth: user,
      json: { token_id: info.token_id },
    });
    expect(again.status).toBe(404);
    expect(again.body).toEqual({
      error_code: 'RESOURCE_DOES_NOT_EXIST',
      message: `No valid token with ID ${info.token_id} found.`,
    });
  });

  test('a PAT stops working once it expires on the emulated clock', async () => {
    const created = await createPat(user, { lifetime_seconds: 60 });
    const newPat = bearer(created.body.token_value);
    expect((await me(newPat)).status).toBe(200);
    azure().clock.advance(61_000);
    expect(await me(newPat)).toMatchObject({ status: 403, body: { message: 'Invalid access token.' } });
    const list = await call(`${ws}/api/2.0/token/list`, { auth: user });
    expect(list.body.token_infos.map((t) => t.token_id)).not.toContain(created.body.token_info.token_id);
  });

  test('without a lifetime the workspace maximum applies', async () => {
    const created = await createPat(user, {});
    const { creation_time, expiry_time } = created.body.token_info;
    expect(expiry_time - creation_time).toBe(MAX_LIFETIME_DAYS * 86400 * 1000);
  });

  test('a lifetime above the workspace maximum is 400 INVALID_PARAMETER_VALUE', async () => {
    const res = await createPat(user, { lifetime_seconds: (MAX_LIFETIME_DAYS + 1) * 86400 });
    expect(res.status).toBe(400);
    expect(res.body.error_code).toBe('INVALID_PARAMETER_VALUE');
    expect(res.body.message).toContain('maximum token lifetime');
  });

  test('a service principal gets a PAT by authenticating with its Entra token', async () => {
    const sp = bearer(await entraToken(IDS.spApp, SECRETS.spApp));
    const created = await createPat(sp, { lifetime_seconds: 3600 });
    expect(created.status).toBe(200);
    expect((await me(bearer(created.body.token_value))).body.applicationId).toBe(IDS.spApp);
  });
});

describe('token management', () => {
  const admin = bearer(SECRETS.adminPat);
  const tokens = () => `${ws}/api/2.0/token-management/tokens`;

  test('an admin lists, gets and deletes other users’ tokens', async () => {
    const created = await createPat(bearer(SECRETS.userPat), { lifetime_seconds: 3600, comment: 'managed' });
    const id: string = created.body.token_info.token_id;
    const expected = {
      ...created.body.token_info,
      created_by_id: Number(principalIds[USER]),
      created_by_username: USER,
      owner_id: Number(principalIds[USER]),
      workspace_id: Number(workspaceId),
    };

    const all = await call(tokens(), { auth: admin });
    expect(all.status).toBe(200);
    expect(all.body.token_infos).toContainEqual(expected);

    const byUser = await call(`${tokens()}?created_by_id=${principalIds[USER]}`, { auth: admin });
    expect(byUser.body.token_infos.length).toBeGreaterThan(0);
    expect(byUser.body.token_infos.every((t) => t.created_by_username === USER)).toBe(true);
    const byName = await call(`${tokens()}?created_by_username=${encodeURIComponent(ADMIN)}`, {
      auth: admin,
    });
    expect(byName.body.token_infos.map((t) => t.token_id)).not.toContain(id);

    expect(await call(`${tokens()}/${id}`, { auth: admin })).toMatchObject({
      status: 200,
      body: { token_info: expected },
    });

    expect(await call(`${tokens()}/${id}`, { method: 'DELETE', auth: admin })).toMatchObject({
      status: 200,
      body: {},
    });
    expect((await me(bearer(created.body.token_value))).status).toBe(403);
    const gone = await call(`${tokens()}/${id}`, { auth: admin });
    expect(gone.status).toBe(404);
    expect(gone.body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
  });

  test.each([
    ['list', '', 'GET'],
    ['get', '/x', 'GET'],
    ['delete', '/x', 'DELETE'],
  ] as const)('a non-admin gets 403 PERMISSION_DENIED on %s', async (_op, suffix, method) => {
    const res = await call(`${tokens()}${suffix}`, { method, auth: bearer(SECRETS.userPat) });
    expect(res.status).toBe(403);
    expect(res.body).toEqual({
      error_code: 'PERMISSION_DENIED',
      message: 'Only Admins can access token management APIs.',
    });
  });
});

describe('workspace OAuth (/oidc/v1/token)', () => {
  test('the authorization server metadata names the issuer and token endpoint', async () => {
    const res = await call(`${ws}/oidc/.well-known/oauth-authorization-server`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ issuer: `${ws}/oidc`, token_endpoint: `${ws}/oidc/v1/token` });
  });

  test('client_credentials with an SP OAuth secret issues a token that works on SCIM Me', async () => {
    const res = await clientCredentials(IDS.spApp, SECRETS.spOAuth);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'all-apis' });
    const who = await me(bearer(res.body.access_token));
    expect(who.status).toBe(200);
    expect(who.body).toMatchObject({ userName: IDS.spApp, applicationId: IDS.spApp });
  });

  test.each([
    ['a wrong secret', IDS.spApp, 'dose-wrong'],
    ['an unknown client', randomUUID(), SECRETS.spOAuth],
  ])('client_credentials with %s is 401 invalid_client', async (_case, clientId, secret) => {
    const res = await clientCredentials(clientId, secret);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'invalid_client', error_description: 'Client authentication failed' });
  });

  test('an unsupported grant type is 400 unsupported_grant_type', async () => {
    const res = await oidcToken({ grant_type: 'password', scope: 'all-apis' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('unsupported_grant_type');
  });

  test('token exchange with a matching SP federation policy issues a token for the SP', async () => {
    const res = await tokenExchange(miToken(IDS.trustedMi, IDS.account));
    expect(res.status).toBe(200);
    expect(res.body.token_type).toBe('Bearer');
    expect((await me(bearer(res.body.access_token))).body.applicationId).toBe(IDS.spApp);
  });

  test.each([
    ['subject', () => miToken(IDS.otherMi, IDS.account)],
    ['audience', () => miToken(IDS.trustedMi, 'api://AzureADTokenExchange')],
  ])('token exchange with a mismatched %s is 400 invalid_grant', async (_case, subject) => {
    const res = await tokenExchange(subject());
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
    expect(res.body.error_description).toContain('does not match any federation policy');
  });
});

describe('account service-principal OAuth secrets', () => {
  const admin = async () => bearer(await entraToken(IDS.adminApp, SECRETS.adminApp));

  test('create, list and delete; a deleted secret stops working at /oidc/v1/token', async () => {
    const created = await call(accountSecrets, {
      method: 'POST',
      auth: await admin(),
      json: { lifetime: '31536000s' },
    });
    expect(created.status).toBe(200);
    const { id, secret, create_time, expire_time } = created.body;
    expect(created.body).toMatchObject({ status: 'ACTIVE', secret_hash: expect.any(String) });
    expect(Date.parse(expire_time) - Date.parse(create_time)).toBe(31536000 * 1000);
    expect((await clientCredentials(IDS.spApp, secret)).status).toBe(200);

    const list = await call(accountSecrets, { auth: await admin() });
    expect(list.status).toBe(200);
    const listed = list.body.secrets.find((s) => s.id === id);
    expect(listed).toMatchObject({ id, status: 'ACTIVE', expire_time });
    expect(listed).not.toHaveProperty('secret');

    const deleted = await call(`${accountSecrets}/${id}`, { method: 'DELETE', auth: await admin() });
    expect(deleted).toMatchObject({ status: 200, body: {} });
    expect((await clientCredentials(IDS.spApp, secret)).body.error).toBe('invalid_client');
  });

  test('the default lifetime is 730 days and an expired secret stops working', async () => {
    const created = await call(accountSecrets, { method: 'POST', auth: await admin(), json: {} });
    const { create_time, expire_time } = created.body;
    expect(Date.parse(expire_time) - Date.parse(create_time)).toBe(730 * 86400 * 1000);

    const short = await call(accountSecrets, {
      method: 'POST',
      auth: await admin(),
      json: { lifetime: '60s' },
    });
    expect((await clientCredentials(IDS.spApp, short.body.secret)).status).toBe(200);
    azure().clock.advance(120_000);
    expect((await clientCredentials(IDS.spApp, short.body.secret)).status).toBe(401);
    const listed = (await call(accountSecrets, { auth: await admin() })).body.secrets;
    expect(listed.find((s) => s.id === short.body.id)?.status).toBe('EXPIRED');
  });

  test('a lifetime above 730 days is 400 INVALID_PARAMETER_VALUE', async () => {
    const res = await call(accountSecrets, {
      method: 'POST',
      auth: await admin(),
      json: { lifetime: `${731 * 86400}s` },
    });
    expect(res.status).toBe(400);
    expect(res.body.error_code).toBe('INVALID_PARAMETER_VALUE');
  });

  test('401 without credentials, 403 PERMISSION_DENIED for a non-admin', async () => {
    const anonymous = await call(accountSecrets);
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error_code).toBe(401);

    const nonAdmin = await call(accountSecrets, { auth: bearer(await entraToken(IDS.spApp, SECRETS.spApp)) });
    expect(nonAdmin.status).toBe(403);
    expect(nonAdmin.body.error_code).toBe('PERMISSION_DENIED');
  });

  test.each([
    ['account', () => accountSecrets.replace(IDS.account, randomUUID()), 'GET'],
    ['service principal', () => accountSecrets.replace(`/${spId}/`, '/999/'), 'GET'],
    ['secret', () => `${accountSecrets}/${'0'.repeat(64)}`, 'DELETE'],
  ] as const)('an unknown %s is 404 RESOURCE_DOES_NOT_EXIST', async (_case, url, method) => {
    const res = await call(url(), { method, auth: await admin() });
    expect(res.status).toBe(404);
    expect(res.body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
  });

  test('the workspace-level proxy serves workspace admins only', async () => {
    const proxy = `${ws}/api/2.0/accounts/servicePrincipals/${spId}/credentials/secrets`;
    const created = await call(proxy, { method: 'POST', auth: bearer(SECRETS.adminPat), json: {} });
    expect(created.status).toBe(200);
    const list = await call(proxy, { auth: bearer(SECRETS.adminPat) });
    expect(list.body.secrets.map((s) => s.id)).toContain(created.body.id);
    const denied = await call(proxy, { auth: bearer(SECRETS.userPat) });
    expect(denied.status).toBe(403);
    expect(denied.body.error_code).toBe('PERMISSION_DENIED');
  });
});

describe('account SCIM service principals and account-level OAuth', () => {
  /** A second account whose service principal is also its admin. */
  const OTHER = {
    account: randomUUID(),
    spApp: randomUUID(),
    spOAuth: `dose${randomBytes(16).toString('hex')}`,
  } as const;
  let accounts: string;
  let otherSpId: string;

  const scim = (accountId: string = IDS.account) =>
    `${accounts}/api/2.0/accounts/${accountId}/scim/v2/ServicePrincipals`;
  const issuer = (accountId: string = IDS.account) => `${accounts}/oidc/accounts/${accountId}`;
  const admin = async () => bearer(await entraToken(IDS.adminApp, SECRETS.adminApp));
  const accountToken = (clientId: string, secret: string, accountId: string = IDS.account) =>
    call(`${issuer(accountId)}/v1/token`, {
      method: 'POST',
      auth: basic(clientId, secret),
      form: { grant_type: 'client_credentials', scope: 'all-apis' },
    });
  const newSecret = async (json: unknown) =>
    (await call(accountSecrets, { method: 'POST', auth: await admin(), json })).body;
  const invalidClient = { error: 'invalid_client', error_description: 'Client authentication failed' };

  /** The claims of a token issued by the account, after checking its signature against the account JWKS. */
  async function verifiedClaims(token: string, accountId = IDS.account): Promise<Record<string, unknown>> {
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const { keys } = (await call(`${issuer(accountId)}/v1/keys`)).body;
    const key = createPublicKey({ key: keys[0]!, format: 'jwk' });
    expect(
      verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url')),
    ).toBe(true);
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  }

  beforeAll(async () => {
    accounts = azure().accountsUrl;
    const seed = await azure().seed({
      accounts: [
        {
          accountId: OTHER.account,
          admins: [OTHER.spApp],
          servicePrincipals: [{ applicationId: OTHER.spApp, secrets: [{ value: OTHER.spOAuth }] }],
        },
      ],
    });
    otherSpId = seed.accounts[OTHER.account]!.servicePrincipals[OTHER.spApp]!.id;
  });

  describe('SCIM', () => {
    test('an account admin gets a service principal by id', async () => {
      const res = await call(`${scim()}/${spId}`, { auth: await admin() });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal'],
        id: spId,
        applicationId: IDS.spApp,
        displayName: 'dbx-sp',
        active: true,
      });
    });

    test('an account admin finds a service principal by applicationId filter', async () => {
      const filter = (value: string) =>
        `${scim()}?filter=${encodeURIComponent(`applicationId eq "${value}"`)}`;
      const found = await call(filter(IDS.spApp), { auth: await admin() });
      expect(found.status).toBe(200);
      expect(found.body).toMatchObject({
        Resources: [{ id: spId, applicationId: IDS.spApp, active: true }],
        totalResults: 1,
        startIndex: 1,
        itemsPerPage: 1,
      });
      const none = await call(filter(randomUUID()), { auth: await admin() });
      expect(none.body).toMatchObject({ Resources: [], totalResults: 0 });
    });

    test('an unsupported filter is a SCIM 400 invalidFilter', async () => {
      const res = await call(`${scim()}?filter=${encodeURIComponent('displayName gt "dbx"')}`, {
        auth: await admin(),
      });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({
        schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
        status: '400',
        scimType: 'invalidFilter',
      });
    });

    test('401 without a token', async () => {
      const res = await call(`${scim()}/${spId}`);
      expect(res.status).toBe(401);
      expect(res.body).toEqual({
        error_code: 401,
        message: 'Credential was not sent or was of an unsupported type for this API.',
      });
    });

    test('a non-admin gets 403 PERMISSION_DENIED', async () => {
      const res = await call(`${scim()}/${spId}`, {
        auth: bearer(await entraToken(IDS.spApp, SECRETS.spApp)),
      });
      expect(res.status).toBe(403);
      expect(res.body).toEqual({
        error_code: 'PERMISSION_DENIED',
        message: 'This API is only accessible by account admins.',
      });
    });

    test.each([
      ['service principal id', () => '999'],
      ['service principal of another account', () => otherSpId],
    ])('an unknown %s is a SCIM 404', async (_case, id) => {
      const res = await call(`${scim()}/${id()}`, { auth: await admin() });
      expect(res.status).toBe(404);
      expect(res.body).toEqual({
        schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
        detail: `Service principal ${id()} not found.`,
        status: '404',
      });
    });

    test('an unknown account is 404 RESOURCE_DOES_NOT_EXIST', async () => {
      const accountId = randomUUID();
      const res = await call(`${scim(accountId)}/${spId}`, { auth: await admin() });
      expect(res.status).toBe(404);
      expect(res.body).toEqual({
        error_code: 'RESOURCE_DOES_NOT_EXIST',
        message: `Account ${accountId} does not exist.`,
      });
    });
  });

  describe('/oidc/accounts/{account_id}/v1/token', () => {
    test('the authorization server metadata names the account issuer and token endpoint', async () => {
      const res = await call(`${issuer()}/.well-known/oauth-authorization-server`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ issuer: issuer(), token_endpoint: `${issuer()}/v1/token` });
    });

    test('client_credentials with a new SP secret issues an account token; deleting the secret stops it', async () => {
      const { id, secret } = await newSecret({ lifetime: '3600s' });
      const res = await accountToken(IDS.spApp, secret);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'all-apis' });
      expect(await verifiedClaims(res.body.access_token)).toMatchObject({ iss: issuer(), sub: IDS.spApp });

      const deleted = await call(`${accountSecrets}/${id}`, { method: 'DELETE', auth: await admin() });
      expect(deleted.status).toBe(200);
      expect(await accountToken(IDS.spApp, secret)).toEqual(
        expect.objectContaining({ status: 401, body: invalidClient }),
      );
    });

    test('a secret stops working once the emulated clock passes its expiry', async () => {
      const { secret } = await newSecret({ lifetime: '60s' });
      expect((await accountToken(IDS.spApp, secret)).status).toBe(200);
      azure().clock.advance(61_000);
      expect(await accountToken(IDS.spApp, secret)).toEqual(
        expect.objectContaining({ status: 401, body: invalidClient }),
      );
    });

    test.each([
      ['a wrong secret', () => accountToken(IDS.spApp, 'dose-wrong')],
      ['an unknown client', () => accountToken(randomUUID(), SECRETS.spOAuth)],
      ['a service principal of another account', () => accountToken(OTHER.spApp, OTHER.spOAuth)],
      ['an unknown account', () => accountToken(IDS.spApp, SECRETS.spOAuth, randomUUID())],
    ])('client_credentials with %s is 401 invalid_client', async (_case, attempt) => {
      const res = await attempt();
      expect(res.status).toBe(401);
      expect(res.body).toEqual(invalidClient);
    });

    test('an unsupported grant type is 400 unsupported_grant_type', async () => {
      const res = await call(`${issuer()}/v1/token`, { method: 'POST', form: { grant_type: 'password' } });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        error: 'unsupported_grant_type',
        error_description: "Grant type 'password' is not supported.",
      });
    });

    test('token exchange with a matching SP federation policy issues an account token', async () => {
      const res = await call(`${issuer()}/v1/token`, {
        method: 'POST',
        form: {
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: miToken(IDS.trustedMi, IDS.account),
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
          scope: 'all-apis',
          client_id: IDS.spApp,
        },
      });
      expect(res.status).toBe(200);
      expect(await verifiedClaims(res.body.access_token)).toMatchObject({ iss: issuer(), sub: IDS.spApp });
    });

    test("an account token authenticates an admin on its own account's API only", async () => {
      const res = await accountToken(OTHER.spApp, OTHER.spOAuth, OTHER.account);
      expect(res.status).toBe(200);
      const token = bearer(res.body.access_token);
      const own = await call(`${scim(OTHER.account)}/${otherSpId}`, { auth: token });
      expect(own.status).toBe(200);
      expect(own.body.applicationId).toBe(OTHER.spApp);

      const elsewhere = await call(`${scim()}/${spId}`, { auth: token });
      expect(elsewhere.status).toBe(403);
      expect(elsewhere.body).toEqual({ error_code: 403, message: 'Invalid access token.' });
    });
  });
});
