import { createPublicKey, randomUUID, verify, type JsonWebKey } from 'node:crypto';
import {
  AuthenticationRequiredError,
  ClientAssertionCredential,
  ClientSecretCredential,
  CredentialUnavailableError,
  ManagedIdentityCredential,
} from '@azure/identity';
import { Client } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials';
import type { SeedResult } from '../../local/azure';
import { useLocalAzure, useManagedIdentityEnv } from '../support/localAzure';

const azure = useLocalAzure();

const SCOPES = { vault: 'https://vault.azure.net/.default', graph: 'https://graph.microsoft.com/.default' };
const TOKEN_EXCHANGE = 'api://AzureADTokenExchange';
const DAY_MS = 24 * 3600 * 1000;

// Secrets are test fixtures for the emulator, not real credentials.
const SECRETS = {
  app: 'app~secret-0123456789abcdefghijklmnop',
  expiring: 'exp~secret-0123456789abcdefghijklmnop',
  removable: 'rem~secret-0123456789abcdefghijklmnop',
  admin: 'adm~secret-0123456789abcdefghijklmnop',
};

const ids = {
  systemMi: { clientId: randomUUID(), principalId: randomUUID() },
  userMi: { clientId: randomUUID(), principalId: randomUUID() },
  app: randomUUID(),
  expiring: randomUUID(),
  removable: randomUUID(),
  admin: randomUUID(),
  federated: randomUUID(),
  federatedOther: randomUUID(),
};

let seed: SeedResult;

beforeAll(async () => {
  const issuer = azure().tokens.issuer;
  seed = await azure().seed({
    // The first managed identity is the system-assigned one.
    managedIdentities: [
      { name: 'func-system', ...ids.systemMi },
      { name: 'func-user', ...ids.userMi },
    ],
    apps: [
      { displayName: 'app', appId: ids.app, secrets: [{ value: SECRETS.app }] },
      {
        displayName: 'expiring',
        appId: ids.expiring,
        secrets: [
          { value: SECRETS.expiring, endDateTime: new Date(azure().clock.now() + DAY_MS).toISOString() },
        ],
      },
      { displayName: 'removable', appId: ids.removable, secrets: [{ value: SECRETS.removable }] },
      {
        displayName: 'admin',
        appId: ids.admin,
        graphRoles: ['Application.ReadWrite.All'],
        secrets: [{ value: SECRETS.admin }],
      },
      {
        displayName: 'federated',
        appId: ids.federated,
        federatedCredentials: [{ issuer, subject: ids.systemMi.principalId, audiences: [TOKEN_EXCHANGE] }],
      },
      {
        displayName: 'federated-other',
        appId: ids.federatedOther,
        // Trusts some other workload, not the managed identities seeded here.
        federatedCredentials: [{ issuer, subject: randomUUID(), audiences: [TOKEN_EXCHANGE] }],
      },
    ],
  });
});

const secretCredential = (clientId: string, secret: string, tenantId = azure().state.tenantId) =>
  new ClientSecretCredential(tenantId, clientId, secret, {
    authorityHost: azure().authorityHost,
    disableInstanceDiscovery: true,
  });

/** Decodes a JWT payload the way a resource server would before checking it. */
const claimsOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;

/**
 * What a credential throws when Entra refuses it: @azure/identity wraps MSAL's ServerError in an
 * AuthenticationRequiredError whose message is `{error}: Error(s): {codes} - Timestamp: … - Description: AADSTS…`.
 */
async function entraRefusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthenticationRequiredError);
  return (error as Error).message;
}

const refusal = (error: string, code: number) =>
  `^${error}: Error\\(s\\): ${code} - Timestamp: \\S+ - Description: AADSTS${code}: `;

describe('ClientSecretCredential', () => {
  test('a valid secret gets a token for the requested resource', async () => {
    const token = await secretCredential(ids.app, SECRETS.app).getToken(SCOPES.vault);
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now());
    const claims = claimsOf(token.token);
    expect(claims).toMatchObject({
      aud: 'https://vault.azure.net',
      iss: azure().tokens.issuer,
      tid: azure().state.tenantId,
      appid: ids.app,
      oid: seed.apps.find((a) => a.appId === ids.app)?.servicePrincipalId,
    });
  });

  test('a wrong secret is AADSTS7000215 invalid_client', async () => {
    const message = await entraRefusal(secretCredential(ids.app, 'not-the-secret').getToken(SCOPES.vault));
    expect(message).toMatch(
      new RegExp(`${refusal('invalid_client', 7000215)}Invalid client secret provided\\.`),
    );
    expect(message).not.toContain('not-the-secret');
  });

  test('a secret past its endDateTime on the emulated clock is AADSTS7000222', async () => {
    await expect(
      secretCredential(ids.expiring, SECRETS.expiring).getToken(SCOPES.vault),
    ).resolves.toBeTruthy();
    azure().clock.advance(2 * DAY_MS);
    try {
      // A new instance: the first one would answer from its token cache.
      const message = await entraRefusal(
        secretCredential(ids.expiring, SECRETS.expiring).getToken(SCOPES.vault),
      );
      expect(message).toMatch(
        new RegExp(
          `${refusal('invalid_client', 7000222)}The provided client secret keys for app '${ids.expiring}' are expired\\.`,
        ),
      );
    } finally {
      azure().clock.reset();
    }
  });

  test('a secret removed through Graph removePassword stops working (AADSTS7000215)', async () => {
    await expect(
      secretCredential(ids.removable, SECRETS.removable).getToken(SCOPES.vault),
    ).resolves.toBeTruthy();
    const graph = Client.initWithMiddleware({
      authProvider: new TokenCredentialAuthenticationProvider(secretCredential(ids.admin, SECRETS.admin), {
        scopes: [SCOPES.graph],
      }),
      baseUrl: azure().graphUrl,
      customHosts: new Set(['localhost']),
    });
    const app = (await graph.api(`/applications(appId='${ids.removable}')`).get()) as {
      passwordCredentials: { keyId: string }[];
    };
    expect(app.passwordCredentials).toHaveLength(1);
    await graph
      .api(`/applications(appId='${ids.removable}')/removePassword`)
      .post({ keyId: app.passwordCredentials[0]?.keyId });

    const message = await entraRefusal(
      secretCredential(ids.removable, SECRETS.removable).getToken(SCOPES.vault),
    );
    expect(message).toMatch(new RegExp(refusal('invalid_client', 7000215)));
  });

  test('an unknown client id is AADSTS700016 unauthorized_client', async () => {
    const unknown = randomUUID();
    const message = await entraRefusal(secretCredential(unknown, SECRETS.app).getToken(SCOPES.vault));
    expect(message).toMatch(
      new RegExp(
        `${refusal('unauthorized_client', 700016)}Application with identifier '${unknown}' was not found in the directory '${azure().state.tenantId}'\\.`,
      ),
    );
  });

  test('a wrong tenant: the OIDC document answers AADSTS90002 and MSAL cannot resolve the authority', async () => {
    const wrongTenant = randomUUID();
    // What the credential fetches first, as Entra answers it for a tenant that does not exist.
    const res = await fetch(`${azure().authorityHost}/${wrongTenant}/v2.0/.well-known/openid-configuration`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; error_description: string; error_codes: number[] };
    expect(body.error).toBe('invalid_tenant');
    expect(body.error_codes).toEqual([90002]);
    expect(body.error_description).toMatch(new RegExp(`^AADSTS90002: Tenant '${wrongTenant}' not found\\.`));

    // MSAL only reports that discovery failed, as it does against login.microsoftonline.com.
    const error = await secretCredential(ids.app, SECRETS.app, wrongTenant)
      .getToken(SCOPES.vault)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(CredentialUnavailableError);
    expect((error as Error).message).toMatch(/^endpoints_resolution_error: /);
  });
});

describe('managed identity (App Service IDENTITY_ENDPOINT)', () => {
  let restore: () => void;
  beforeAll(() => (restore = useManagedIdentityEnv(azure())));
  afterAll(() => restore());

  test('system-assigned: the first seeded identity', async () => {
    const token = await new ManagedIdentityCredential().getToken(SCOPES.vault);
    expect(claimsOf(token.token)).toMatchObject({
      aud: 'https://vault.azure.net',
      oid: ids.systemMi.principalId,
      appid: ids.systemMi.clientId,
    });
  });

  test('user-assigned by client id (same resource, its own identity)', async () => {
    const token = await new ManagedIdentityCredential({ clientId: ids.userMi.clientId }).getToken(
      SCOPES.vault,
    );
    expect(claimsOf(token.token)).toMatchObject({
      aud: 'https://vault.azure.net',
      oid: ids.userMi.principalId,
      appid: ids.userMi.clientId,
    });
  });

  test('an unknown client id fails with the App Service error', async () => {
    const error = await new ManagedIdentityCredential({ clientId: randomUUID() }).getToken(SCOPES.vault).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CredentialUnavailableError);
    expect((error as Error).message).toContain(
      'No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.',
    );
  });

  const assertionFrom = (credential: ManagedIdentityCredential) => async () =>
    (await credential.getToken(`${TOKEN_EXCHANGE}/.default`)).token;

  test('ClientAssertionCredential: a managed identity token federates into the app', async () => {
    const credential = new ClientAssertionCredential(
      azure().state.tenantId,
      ids.federated,
      assertionFrom(new ManagedIdentityCredential()),
      { authorityHost: azure().authorityHost, disableInstanceDiscovery: true },
    );
    const token = await credential.getToken(SCOPES.graph);
    expect(claimsOf(token.token)).toMatchObject({
      aud: 'https://graph.microsoft.com',
      appid: ids.federated,
      oid: seed.apps.find((a) => a.appId === ids.federated)?.servicePrincipalId,
    });
  });

  test('ClientAssertionCredential: a subject the app does not trust is AADSTS70021', async () => {
    const credential = new ClientAssertionCredential(
      azure().state.tenantId,
      ids.federatedOther,
      assertionFrom(new ManagedIdentityCredential()),
      { authorityHost: azure().authorityHost, disableInstanceDiscovery: true },
    );
    const message = await entraRefusal(credential.getToken(SCOPES.graph));
    expect(message).toMatch(
      new RegExp(
        `${refusal('invalid_request', 70021)}No matching federated identity record found for presented assertion\\. Assertion Issuer: '${azure().tokens.issuer}'\\. Assertion Subject: '${ids.systemMi.principalId}'\\.`,
      ),
    );
  });
});

test('tokens verify against the JWKS published through the OIDC document', async () => {
  const tenant = azure().state.tenantId;
  const config = (await (
    await fetch(`${azure().authorityHost}/${tenant}/v2.0/.well-known/openid-configuration`)
  ).json()) as { issuer: string; jwks_uri: string; token_endpoint: string };
  expect(config.issuer).toBe(`${azure().authorityHost}/${tenant}/v2.0`);
  expect(config.token_endpoint).toBe(`${azure().authorityHost}/${tenant}/oauth2/v2.0/token`);
  const { keys } = (await (await fetch(config.jwks_uri)).json()) as {
    keys: (JsonWebKey & { kid: string })[];
  };

  const { token } = await secretCredential(ids.app, SECRETS.app).getToken(SCOPES.graph);
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const { kid, alg } = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as {
    kid: string;
    alg: string;
  };
  expect(alg).toBe('RS256');
  const jwk = keys.find((k) => k.kid === kid);
  expect(jwk).toBeDefined();
  const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  const signed = Buffer.from(`${header}.${payload}`);
  expect(verify('RSA-SHA256', signed, key, Buffer.from(signature, 'base64url'))).toBe(true);
  expect(claimsOf(token).iss).toBe(config.issuer);

  // A token with a changed payload does not verify.
  const forged = Buffer.from(JSON.stringify({ ...claimsOf(token), oid: randomUUID() })).toString('base64url');
  expect(
    verify('RSA-SHA256', Buffer.from(`${header}.${forged}`), key, Buffer.from(signature, 'base64url')),
  ).toBe(false);
});

describe('token endpoint wire details', () => {
  const tokenUrl = () => `${azure().authorityHost}/${azure().state.tenantId}/oauth2/v2.0/token`;
  const post = async (form: Record<string, string>, authorization?: string, method = 'POST') => {
    const res = await fetch(tokenUrl(), {
      method,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(authorization ? { authorization } : {}),
      },
      body: method === 'GET' ? undefined : new URLSearchParams(form).toString(),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const basic = (id: string, secret: string) =>
    `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  const form = { grant_type: 'client_credentials', scope: SCOPES.vault };

  test('client_secret_basic: the secret in an Authorization: Basic header gets a token', async () => {
    const res = await post(form, basic(ids.app, SECRETS.app));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: 'Bearer', access_token: expect.any(String) });
  });

  test('client_secret_basic with a wrong secret is AADSTS7000215 invalid_client', async () => {
    const res = await post(form, basic(ids.app, 'wrong~secret'));
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ error: 'invalid_client', error_codes: [7000215] });
  });

  test('a Basic header and a body secret together, or two different client ids, are invalid requests', async () => {
    const both = await post({ ...form, client_secret: SECRETS.app }, basic(ids.app, SECRETS.app));
    expect(both).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    const mismatch = await post({ ...form, client_id: ids.admin }, basic(ids.app, SECRETS.app));
    expect(mismatch).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
  });

  test('unknown Entra routes and wrong methods answer with Entra’s error shape', async () => {
    const get = await post({}, undefined, 'GET');
    expect(get.status).toBe(400);
    expect(get.body).toMatchObject({
      error: 'invalid_request',
      error_codes: [900561],
      error_description: expect.stringMatching(/^AADSTS900561: The endpoint only accepts POST/),
      correlation_id: expect.any(String),
      trace_id: expect.any(String),
    });
    const unknown = await fetch(
      `${azure().authorityHost}/${azure().state.tenantId}/oauth2/v2.0/nothing-here`,
    );
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringMatching(/^AADSTS\d+: /),
      error_codes: [expect.any(Number)],
    });
  });
});
