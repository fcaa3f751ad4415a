import { randomUUID } from 'node:crypto';
import {
  AuthenticationRequiredError,
  ClientSecretCredential,
  ManagedIdentityCredential,
  type TokenCredential,
} from '@azure/identity';
import { Client, GraphError, PageIterator, type PageCollection } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials';
import type { SeedResult } from '../../local/azure';
import { useLocalAzure, useManagedIdentityEnv } from '../support/localAzure';

const azure = useLocalAzure();

const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
const VAULT_SCOPE = 'https://vault.azure.net/.default';
const SENDER = 'rotation-alerts@contoso.example';
/** Entra's client secret shape: three characters, the `8Q~` marker, 34 more. */
const SECRET_SHAPE = /^[A-Za-z0-9_.~-]{3}8Q~[A-Za-z0-9_.~-]{34}$/;

// Secrets are test fixtures for the emulator, not real credentials.
const SECRETS = {
  rotator: 'rot~secret-0123456789abcdefghijklmnop',
  admin: 'adm~secret-0123456789abcdefghijklmnop',
  noRoles: 'nor~secret-0123456789abcdefghijklmnop',
  owned: 'own~secret-0123456789abcdefghijklmnop',
};

const ids = {
  rotator: randomUUID(),
  admin: randomUUID(),
  noRoles: randomUUID(),
  owned: [randomUUID(), randomUUID(), randomUUID()],
  notOwned: randomUUID(),
  mi: { clientId: randomUUID(), principalId: randomUUID() },
};

let seed: SeedResult;

beforeAll(async () => {
  seed = await azure().seed({
    managedIdentities: [{ name: 'func-mi', ...ids.mi, graphRoles: ['Mail.Send'] }],
    users: [{ userPrincipalName: SENDER }],
    apps: [
      {
        displayName: 'rotator',
        appId: ids.rotator,
        graphRoles: ['Application.ReadWrite.OwnedBy', 'Mail.Send'],
        secrets: [{ value: SECRETS.rotator }],
      },
      {
        displayName: 'admin',
        appId: ids.admin,
        graphRoles: ['Application.ReadWrite.All'],
        secrets: [{ value: SECRETS.admin }],
      },
      { displayName: 'no-roles', appId: ids.noRoles, secrets: [{ value: SECRETS.noRoles }] },
      ...ids.owned.map((appId, i) => ({
        displayName: `owned-${i}`,
        appId,
        owners: [ids.rotator],
        secrets: [{ value: SECRETS.owned, displayName: 'seeded' }],
        tags: ['rotation:enabled'],
      })),
      { displayName: 'not-owned', appId: ids.notOwned },
    ],
  });
});

const secretCredential = (clientId: string, secret: string) =>
  new ClientSecretCredential(azure().state.tenantId, clientId, secret, {
    authorityHost: azure().authorityHost,
    disableInstanceDiscovery: true,
  });

/** The Graph SDK client as the rotator builds it, pointed at the local Graph. */
const graphClient = (credential: TokenCredential) =>
  Client.initWithMiddleware({
    authProvider: new TokenCredentialAuthenticationProvider(credential, { scopes: [GRAPH_SCOPE] }),
    // The client appends the version: requests go to {graphUrl}/v1.0/...
    baseUrl: azure().graphUrl,
    // Without this the client sends no token to a host that is not graph.microsoft.com.
    customHosts: new Set(['localhost']),
  });

const clients = {
  rotator: () => graphClient(secretCredential(ids.rotator, SECRETS.rotator)),
  admin: () => graphClient(secretCredential(ids.admin, SECRETS.admin)),
  noRoles: () => graphClient(secretCredential(ids.noRoles, SECRETS.noRoles)),
};

const objectIdOf = (appId: string) => seed.apps.find((a) => a.appId === appId)?.objectId as string;

/** The GraphError the SDK throws for a failed request. */
async function graphError(promise: Promise<unknown>): Promise<GraphError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GraphError);
  return error as GraphError;
}

function expectGraphError(e: GraphError, statusCode: number, code: string, message: string | RegExp) {
  expect(e.statusCode).toBe(statusCode);
  expect(e.code).toBe(code);
  if (typeof message === 'string') expect(e.message).toBe(message);
  else expect(e.message).toMatch(message);
  // innerError carries the request ids; the SDK lifts request-id onto the error.
  expect(e.requestId).toMatch(/^[0-9a-f-]{36}$/);
}

interface PasswordCredentialJson {
  customKeyIdentifier: null;
  displayName: string | null;
  endDateTime: string;
  hint: string;
  keyId: string;
  secretText: string | null;
  startDateTime: string;
}

interface ApplicationJson {
  id: string;
  appId: string;
  displayName: string;
  passwordCredentials: PasswordCredentialJson[];
  tags: string[];
}

describe('GET /applications', () => {
  test('$select and $top page through every application with an absolute @odata.nextLink', async () => {
    const client = clients.rotator();
    const first = (await client
      .api('/applications')
      .select('id,appId,displayName,passwordCredentials')
      .top(2)
      .get()) as PageCollection;
    expect(first['@odata.context']).toBe(
      `${azure().graphUrl}/v1.0/$metadata#applications(id,appId,displayName,passwordCredentials)`,
    );
    expect(first.value).toHaveLength(2);
    expect(first['@odata.nextLink']).toMatch(
      new RegExp(`^${azure().graphUrl}/v1\\.0/applications\\?.*\\$skiptoken=`),
    );

    const seen: ApplicationJson[] = [];
    const pages = new PageIterator(client, first, (app: ApplicationJson) => {
      seen.push(app);
      return true;
    });
    await pages.iterate();
    expect(seen.map((a) => a.appId).sort()).toEqual(seed.apps.map((a) => a.appId).sort());
    for (const app of seen)
      expect(Object.keys(app).sort()).toEqual(['appId', 'displayName', 'id', 'passwordCredentials']);

    const owned = seen.find((a) => a.appId === ids.owned[0]);
    expect(owned?.passwordCredentials).toEqual([
      {
        customKeyIdentifier: null,
        displayName: 'seeded',
        endDateTime: expect.any(String),
        hint: SECRETS.owned.slice(0, 3),
        keyId: seed.apps.find((a) => a.appId === ids.owned[0])?.keyIds[0],
        secretText: null,
        startDateTime: expect.any(String),
      },
    ]);
  });

  test("$filter=appId eq '…' finds one application", async () => {
    const page = (await clients
      .rotator()
      .api('/applications')
      .filter(`appId eq '${ids.owned[1]}'`)
      .get()) as PageCollection;
    expect(page['@odata.nextLink']).toBeUndefined();
    expect(page.value).toEqual([
      {
        id: objectIdOf(ids.owned[1] as string),
        appId: ids.owned[1],
        displayName: 'owned-1',
        passwordCredentials: [expect.objectContaining({ hint: SECRETS.owned.slice(0, 3), secretText: null })],
        tags: ['rotation:enabled'],
      },
    ]);
  });

  test('$select of an unknown property is 400 Request_BadRequest', async () => {
    const e = await graphError(clients.rotator().api('/applications').select('secretValue').get());
    expectGraphError(
      e,
      400,
      'Request_BadRequest',
      "Could not find a property named 'secretValue' on type 'microsoft.graph.application'.",
    );
  });

  test('$top above 999 is 400', async () => {
    const e = await graphError(clients.rotator().api('/applications').top(1000).get());
    expectGraphError(
      e,
      400,
      'Request_BadRequest',
      "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.",
    );
  });
});

describe('GET one application', () => {
  test('by object id and by appId', async () => {
    const client = clients.rotator();
    const objectId = objectIdOf(ids.owned[0] as string);
    const byId = (await client.api(`/applications/${objectId}`).get()) as ApplicationJson &
      Record<string, unknown>;
    expect(byId['@odata.context']).toBe(`${azure().graphUrl}/v1.0/$metadata#applications/$entity`);
    expect(byId).toMatchObject({ id: objectId, appId: ids.owned[0], displayName: 'owned-0' });
    const byAppId = (await client.api(`/applications(appId='${ids.owned[0]}')`).get()) as ApplicationJson;
    expect(byAppId.id).toBe(objectId);
    const selected = (await client.api(`/applications/${objectId}`).select('id,appId').get()) as Record<
      string,
      unknown
    >;
    expect(Object.keys(selected).sort()).toEqual(['@odata.context', 'appId', 'id']);
  });

  test('Application.ReadWrite.OwnedBy reads applications it does not own (as Graph allows)', async () => {
    const app = (await clients
      .rotator()
      .api(`/applications(appId='${ids.notOwned}')`)
      .get()) as ApplicationJson;
    expect(app.displayName).toBe('not-owned');
  });

  test('an unknown object id or appId is 404 Request_ResourceNotFound', async () => {
    const client = clients.rotator();
    const missing = randomUUID();
    expectGraphError(
      await graphError(client.api(`/applications/${missing}`).get()),
      404,
      'Request_ResourceNotFound',
      `Resource '${missing}' does not exist or one of its queried reference-property objects are not present.`,
    );
    expectGraphError(
      await graphError(client.api(`/applications(appId='${missing}')`).get()),
      404,
      'Request_ResourceNotFound',
      `Resource '${missing}' does not exist or one of its queried reference-property objects are not present.`,
    );
  });

  test('an object id that is not a GUID is 400', async () => {
    expectGraphError(
      await graphError(clients.rotator().api('/applications/not-a-guid').get()),
      400,
      'Request_BadRequest',
      "Invalid object identifier 'not-a-guid'.",
    );
  });
});

describe('addPassword / removePassword', () => {
  test('a new secret works with ClientSecretCredential until removePassword', async () => {
    const client = clients.rotator();
    const appId = ids.owned[2] as string;
    const endDateTime = new Date(azure().clock.now() + 90 * 24 * 3600 * 1000).toISOString();
    const created = (await client
      .api(`/applications(appId='${appId}')/addPassword`)
      .post({ passwordCredential: { displayName: 'rotated', endDateTime } })) as PasswordCredentialJson &
      Record<string, unknown>;
    expect(created).toEqual({
      '@odata.context': `${azure().graphUrl}/v1.0/$metadata#microsoft.graph.passwordCredential`,
      customKeyIdentifier: null,
      displayName: 'rotated',
      endDateTime,
      hint: created.secretText?.slice(0, 3),
      keyId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      secretText: expect.stringMatching(SECRET_SHAPE),
      startDateTime: expect.any(String),
    });
    const secret = created.secretText as string;

    const token = await secretCredential(appId, secret).getToken(VAULT_SCOPE);
    expect(token.token.split('.')).toHaveLength(3);

    // The secret text is only ever returned by addPassword.
    const app = (await client.api(`/applications/${objectIdOf(appId)}`).get()) as ApplicationJson;
    expect(app.passwordCredentials.find((p) => p.keyId === created.keyId)).toEqual({
      customKeyIdentifier: null,
      displayName: 'rotated',
      endDateTime,
      hint: secret.slice(0, 3),
      keyId: created.keyId,
      secretText: null,
      startDateTime: created.startDateTime,
    });
    expect(JSON.stringify(app)).not.toContain(secret);

    const removed: unknown = await client
      .api(`/applications/${objectIdOf(appId)}/removePassword`)
      .post({ keyId: created.keyId });
    expect(removed).toBeFalsy(); // 204 No Content

    // A new credential instance: the previous one would answer from its token cache.
    const refused = await secretCredential(appId, secret)
      .getToken(VAULT_SCOPE)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(refused).toBeInstanceOf(AuthenticationRequiredError);
    expect((refused as Error).message).toMatch(
      /Description: AADSTS7000215: Invalid client secret provided\./,
    );
    // The other secret is untouched.
    await expect(secretCredential(appId, SECRETS.owned).getToken(VAULT_SCOPE)).resolves.toBeTruthy();
  });

  test('endDateTime defaults to two years after startDateTime', async () => {
    const created = (await clients
      .rotator()
      .api(`/applications/${objectIdOf(ids.owned[1] as string)}/addPassword`)
      .post({ passwordCredential: { displayName: 'default-lifetime' } })) as PasswordCredentialJson;
    const start = new Date(created.startDateTime);
    const end = new Date(created.endDateTime);
    expect(end.getUTCFullYear() - start.getUTCFullYear()).toBe(2);
    expect(end.getUTCMonth()).toBe(start.getUTCMonth());
    expect(Math.abs(start.getTime() - azure().clock.now())).toBeLessThan(60_000);
  });

  test('an invalid endDateTime is 400', async () => {
    const e = await graphError(
      clients
        .rotator()
        .api(`/applications/${objectIdOf(ids.owned[1] as string)}/addPassword`)
        .post({ passwordCredential: { displayName: 'bad', endDateTime: 'next tuesday' } }),
    );
    expectGraphError(
      e,
      400,
      'BadRequest',
      "Cannot convert the literal 'next tuesday' to the expected type 'Edm.DateTimeOffset'.",
    );
  });

  test('removePassword with an unknown keyId is 400', async () => {
    const keyId = randomUUID();
    const e = await graphError(
      clients.rotator().api(`/applications(appId='${ids.owned[1]}')/removePassword`).post({ keyId }),
    );
    expectGraphError(e, 400, 'Request_BadRequest', `No password credential found with keyId '${keyId}'.`);
  });

  test('addPassword on an unknown application is 404', async () => {
    const missing = randomUUID();
    const e = await graphError(
      clients.rotator().api(`/applications/${missing}/addPassword`).post({ passwordCredential: {} }),
    );
    expectGraphError(
      e,
      404,
      'Request_ResourceNotFound',
      `Resource '${missing}' does not exist or one of its queried reference-property objects are not present.`,
    );
  });

  test('Application.ReadWrite.OwnedBy may not change an application it does not own (403)', async () => {
    const client = clients.rotator();
    const insufficient = 'Insufficient privileges to complete the operation.';
    expectGraphError(
      await graphError(
        client.api(`/applications(appId='${ids.notOwned}')/addPassword`).post({ passwordCredential: {} }),
      ),
      403,
      'Authorization_RequestDenied',
      insufficient,
    );
    expectGraphError(
      await graphError(
        client.api(`/applications(appId='${ids.notOwned}')/removePassword`).post({ keyId: randomUUID() }),
      ),
      403,
      'Authorization_RequestDenied',
      insufficient,
    );
  });

  test('Application.ReadWrite.All may change any application', async () => {
    const client = clients.admin();
    const created = (await client
      .api(`/applications(appId='${ids.notOwned}')/addPassword`)
      .post({ passwordCredential: { displayName: 'by-admin' } })) as PasswordCredentialJson;
    expect(created.secretText).toMatch(SECRET_SHAPE);
    await client.api(`/applications(appId='${ids.notOwned}')/removePassword`).post({ keyId: created.keyId });
    const app = (await client.api(`/applications(appId='${ids.notOwned}')`).get()) as ApplicationJson;
    expect(app.passwordCredentials).toEqual([]);
  });
});

describe('no Graph permission', () => {
  test('listing applications is 403 Authorization_RequestDenied', async () => {
    expectGraphError(
      await graphError(clients.noRoles().api('/applications').get()),
      403,
      'Authorization_RequestDenied',
      'Insufficient privileges to complete the operation.',
    );
  });

  test('reading another application is 403, its own application is allowed', async () => {
    const client = clients.noRoles();
    expectGraphError(
      await graphError(client.api(`/applications(appId='${ids.notOwned}')`).get()),
      403,
      'Authorization_RequestDenied',
      'Insufficient privileges to complete the operation.',
    );
    const own = (await client.api(`/applications(appId='${ids.noRoles}')`).get()) as ApplicationJson;
    expect(own.displayName).toBe('no-roles');
  });

  test('addPassword is 403', async () => {
    expectGraphError(
      await graphError(
        clients
          .noRoles()
          .api(`/applications(appId='${ids.noRoles}')/addPassword`)
          .post({ passwordCredential: {} }),
      ),
      403,
      'Authorization_RequestDenied',
      'Insufficient privileges to complete the operation.',
    );
  });

  test('sendMail without Mail.Send is 403 ErrorAccessDenied (Exchange answers mail calls)', async () => {
    expectGraphError(
      await graphError(
        clients
          .noRoles()
          .api(`/users/${SENDER}/sendMail`)
          .post({
            message: { subject: 's', body: { contentType: 'Text', content: 'c' }, toRecipients: [] },
          }),
      ),
      403,
      'ErrorAccessDenied',
      'Access is denied. Check credentials and try again.',
    );
  });
});

describe('POST /users/{id|upn}/sendMail', () => {
  const message = (to: string[]) => ({
    message: {
      subject: 'Secret rotated',
      body: { contentType: 'Text', content: 'db-token was rotated.' },
      toRecipients: to.map((address) => ({ emailAddress: { address } })),
    },
    saveToSentItems: false,
  });

  test('202 and the message lands in the outbox (by UPN, app credential)', async () => {
    const before = azure().state.outbox.length;
    await clients
      .rotator()
      .api(`/users/${SENDER}/sendMail`)
      .post(message(['ops@contoso.example']));
    expect(azure().state.outbox.slice(before)).toEqual([
      {
        from: SENDER,
        subject: 'Secret rotated',
        contentType: 'Text',
        content: 'db-token was rotated.',
        to: ['ops@contoso.example'],
        at: expect.any(String),
      },
    ]);
  });

  test('by user id, as a managed identity granted Mail.Send', async () => {
    const restore = useManagedIdentityEnv(azure());
    try {
      const userId = azure().state.users.find((u) => u.userPrincipalName === SENDER)?.id as string;
      const before = azure().state.outbox.length;
      await graphClient(new ManagedIdentityCredential())
        .api(`/users/${userId}/sendMail`)
        .post(message(['a@contoso.example', 'b@contoso.example']));
      expect(
        azure()
          .state.outbox.slice(before)
          .map((m) => m.to),
      ).toEqual([['a@contoso.example', 'b@contoso.example']]);
    } finally {
      restore();
    }
  });

  test('an unknown user is 404 ErrorInvalidUser', async () => {
    const e = await graphError(
      clients
        .rotator()
        .api('/users/nobody@contoso.example/sendMail')
        .post(message(['ops@contoso.example'])),
    );
    expectGraphError(e, 404, 'ErrorInvalidUser', "The requested user 'nobody@contoso.example' is invalid.");
  });

  test('no recipients is 400 ErrorInvalidRecipients', async () => {
    const before = azure().state.outbox.length;
    const e = await graphError(clients.rotator().api(`/users/${SENDER}/sendMail`).post(message([])));
    expectGraphError(
      e,
      400,
      'ErrorInvalidRecipients',
      "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
    );
    expect(azure().state.outbox).toHaveLength(before);
  });
});

describe('authentication', () => {
  test('no bearer token is 401 InvalidAuthenticationToken "Access token is empty."', async () => {
    const res = await fetch(`${azure().graphUrl}/v1.0/applications`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
    const body = (await res.json()) as { error: { code: string; message: string; innerError: object } };
    expect(body.error).toEqual({
      code: 'InvalidAuthenticationToken',
      message: 'Access token is empty.',
      innerError: {
        date: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/),
        'request-id': res.headers.get('request-id'),
        'client-request-id': expect.any(String),
      },
    });
  });

  test('a token for another resource is 401 (invalid audience)', async () => {
    const { token } = await secretCredential(ids.admin, SECRETS.admin).getToken(VAULT_SCOPE);
    const res = await fetch(`${azure().graphUrl}/v1.0/applications`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('InvalidAuthenticationToken');
    expect(body.error.message).toBe('Access token validation failure. Invalid audience.');
  });
});

describe('throttling (429 + Retry-After from the fault injector)', () => {
  const throttled = {
    error: {
      code: 'TooManyRequests',
      message: 'Please retry again later.',
      innerError: { code: '429', 'request-id': randomUUID(), date: '2026-01-01T00:00:00' },
    },
  };
  const listCount = () => azure().servers.counts.total('graph GET /graph/v1.0/applications');

  afterEach(() => azure().servers.faults.clear());

  test("the SDK's RetryHandler waits Retry-After and retries once", async () => {
    const client = clients.admin();
    await client.api('/applications').top(1).get(); // token fetched and cached outside the timing
    azure().servers.faults.add({
      service: 'graph',
      method: 'GET',
      pathPattern: '^/graph/v1\\.0/applications$',
      status: 429,
      retryAfterSeconds: 1,
      body: throttled,
      times: 1,
    });
    const before = listCount();
    const started = Date.now();
    const page = (await client.api('/applications').top(1).get()) as PageCollection;
    expect(page.value).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(listCount() - before).toBe(2);
  });

  test('when throttling outlasts the retries, the SDK surfaces the 429', async () => {
    azure().servers.faults.add({
      service: 'graph',
      method: 'GET',
      pathPattern: '^/graph/v1\\.0/applications$',
      status: 429,
      retryAfterSeconds: 0,
      body: throttled,
    });
    const before = listCount();
    const e = await graphError(clients.admin().api('/applications').get());
    expect(e.statusCode).toBe(429);
    expect(e.code).toBe('TooManyRequests');
    // One request and the RetryHandler's default three retries.
    expect(listCount() - before).toBe(4);
  });
});

describe("Entra's per-app password credential limit", () => {
  test('an app that allows personal accounts holds two client secrets; expired ones count; removing one makes room', async () => {
    const appId = randomUUID();
    await azure().seed({
      apps: [
        {
          displayName: 'consumer-app',
          appId,
          owners: [ids.rotator],
          signInAudience: 'AzureADandPersonalMicrosoftAccount',
          secrets: [
            { value: SECRETS.owned, endDateTime: new Date(azure().clock.now() - 1000).toISOString() },
          ],
        },
      ],
    });
    const client = clients.rotator();
    const add = () =>
      client.api(`/applications(appId='${appId}')/addPassword`).post({ passwordCredential: {} });
    const second = (await add()) as PasswordCredentialJson;
    expect(second.keyId).toMatch(/^[0-9a-f-]{36}$/);

    const e = await graphError(add());
    expectGraphError(
      e,
      400,
      'Request_BadRequest',
      "Invalid value specified for property 'passwordCredentials' of resource 'Application'.",
    );
    const app = (await client.api(`/applications(appId='${appId}')`).get()) as ApplicationJson;
    expect(app.passwordCredentials).toHaveLength(2);

    await client.api(`/applications(appId='${appId}')/removePassword`).post({ keyId: second.keyId });
    await expect(add()).resolves.toMatchObject({ keyId: expect.any(String) });
  });
});
