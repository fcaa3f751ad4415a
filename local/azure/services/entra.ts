import { randomUUID } from 'node:crypto';
import type { Emulator } from '../server';
import { basicCredentials, HttpError, json, readForm, Router, type EmulatorRequest } from '../http';
import { audienceMatches, decodeJwt, JwtError } from '../jwt';
import { AppRegistration, ManagedIdentity, sha256 } from '../state';
import { TokenService } from '../tokens';

/** The managed-identity endpoint's shared secret (`IDENTITY_HEADER` in App Service). */
export const IDENTITY_HEADER = 'local-azure-identity-header';

const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** An Entra error response: `{error, error_description: "AADSTS…", error_codes, …}`. */
function aadError(status: number, error: string, code: number, description: string): HttpError {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  return new HttpError(status, {
    error,
    error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${new Date().toISOString()}`,
    error_codes: [code],
    timestamp: new Date().toISOString(),
    trace_id: traceId,
    correlation_id: correlationId,
  });
}

/**
 * Entra ID: OIDC discovery, JWKS, the v2.0 token endpoint (client secret and client assertion), and
 * an App Service style managed-identity endpoint.
 */
export function entraRoutes(em: Emulator, router: Router): void {
  const checkTenant = (req: EmulatorRequest) => {
    const tenant = req.params.tenant;
    if (tenant !== em.state.tenantId && tenant !== 'organizations') {
      throw aadError(
        400,
        'invalid_tenant',
        90002,
        `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
      );
    }
  };

  router
    .add('GET', '/:tenant/v2.0/.well-known/openid-configuration', (req) => {
      checkTenant(req);
      const base = `${em.url}/${em.state.tenantId}`;
      return json(200, {
        issuer: em.tokens.issuer,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        token_endpoint: `${base}/oauth2/v2.0/token`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        jwks_uri: `${em.url}/${em.state.tenantId}/discovery/v2.0/keys`,
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        subject_types_supported: ['pairwise'],
        id_token_signing_alg_values_supported: ['RS256'],
        token_endpoint_auth_methods_supported: [
          'client_secret_post',
          'private_key_jwt',
          'client_secret_basic',
        ],
        scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        tenant_region_scope: 'EU',
        cloud_instance_name: 'microsoftonline.com',
      });
    })
    .add('GET', '/:tenant/discovery/v2.0/keys', () => json(200, { keys: [em.tokens.key.jwk()] }))
    .add('POST', '/:tenant/oauth2/v2.0/token', (req) => {
      checkTenant(req);
      const form = readForm(req);
      if (form.get('grant_type') !== 'client_credentials') {
        throw aadError(
          400,
          'unsupported_grant_type',
          70003,
          `The app requested an unsupported grant type '${form.get('grant_type')}'.`,
        );
      }
      const scope = form.get('scope') ?? '';
      const resource = scope.split(' ').find((s) => s.endsWith('/.default'));
      if (!resource) {
        throw aadError(
          400,
          'invalid_scope',
          1002012,
          `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
        );
      }
      const app = authenticateClient(em, clientCredentials(req, form));
      const audience = TokenService.audienceFor(resource);
      const { token } = em.tokens.issue(app.servicePrincipal, audience);
      return json(200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
    })
    .add('GET', '/msi/token', (req) => {
      if (req.headers['x-identity-header'] !== IDENTITY_HEADER) {
        throw new HttpError(401, { statusCode: 401, message: 'Missing or invalid X-IDENTITY-HEADER.' });
      }
      const resource = req.query.get('resource');
      if (!resource)
        throw new HttpError(400, { statusCode: 400, message: 'The resource parameter is required.' });
      const identity = pickManagedIdentity(em.state.managedIdentities, req.query);
      const { token, expiresOn } = em.tokens.issue(identity, TokenService.audienceFor(resource));
      return json(200, {
        access_token: token,
        expires_on: String(expiresOn),
        resource,
        token_type: 'Bearer',
        client_id: identity.appId,
      });
    });

  // Anything else under a tenant's Entra paths gets Entra's error shape, not the server's.
  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
    for (const area of ['oauth2', 'v2.0', 'discovery']) {
      router.add(method, `/:tenant/${area}/:rest*`, (req) => {
        if (req.path.endsWith('/oauth2/v2.0/token')) {
          throw aadError(
            400,
            'invalid_request',
            900561,
            `The endpoint only accepts POST, OPTIONS requests. Received a ${req.method} request.`,
          );
        }
        throw aadError(404, 'invalid_request', 90100, `The request path '${req.path}' is not valid.`);
      });
    }
  }
}

/**
 * The client's id and secret, from the form (`client_secret_post`) or an `Authorization: Basic`
 * header (`client_secret_basic`, RFC 6749 §2.3.1: both parts form-urlencoded). Using both, or
 * naming two different clients, is an invalid request.
 */
function clientCredentials(req: EmulatorRequest, form: URLSearchParams): URLSearchParams {
  const basic = basicCredentials(req);
  if (!basic) return form;
  if (form.get('client_secret') !== null || form.get('client_assertion') !== null) {
    throw aadError(
      400,
      'invalid_request',
      90014,
      'Only one client authentication method may be used: a Basic Authorization header, client_secret or client_assertion.',
    );
  }
  const formId = form.get('client_id');
  if (formId !== null && formId !== basic.user) {
    throw aadError(
      400,
      'invalid_request',
      900144,
      'The client_id in the body does not match the Basic Authorization header.',
    );
  }
  const merged = new URLSearchParams(form);
  merged.set('client_id', basic.user);
  merged.set('client_secret', basic.password);
  return merged;
}

function pickManagedIdentity(identities: ManagedIdentity[], query: URLSearchParams): ManagedIdentity {
  const clientId = query.get('client_id');
  const principalId = query.get('principal_id') ?? query.get('object_id');
  const found = clientId
    ? identities.find((m) => m.appId === clientId)
    : principalId
      ? identities.find((m) => m.objectId === principalId)
      : identities[0];
  if (!found) {
    throw new HttpError(400, {
      statusCode: 400,
      message:
        'No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.',
      correlationId: randomUUID(),
    });
  }
  return found;
}

/** Authenticates a confidential client by secret or by a federated client assertion. */
function authenticateClient(em: Emulator, form: URLSearchParams): AppRegistration {
  const clientId = form.get('client_id') ?? '';
  const app = em.state.apps.find((a) => a.appId === clientId);
  if (!app) {
    throw aadError(
      400,
      'unauthorized_client',
      700016,
      `Application with identifier '${clientId}' was not found in the directory '${em.state.tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`,
    );
  }
  const secret = form.get('client_secret');
  if (secret !== null) {
    const hash = sha256(secret);
    const credential = app.passwordCredentials.find((p) => p.secretHash === hash);
    if (!credential) {
      throw aadError(
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.appId}'.`,
      );
    }
    if (Date.parse(credential.endDateTime) <= em.clock.now()) {
      throw aadError(
        401,
        'invalid_client',
        7000222,
        `The provided client secret keys for app '${app.appId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.`,
      );
    }
    return app;
  }
  const assertion = form.get('client_assertion');
  if (assertion !== null) {
    if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) {
      throw aadError(400, 'invalid_request', 50027, 'Invalid client_assertion_type.');
    }
    checkFederatedAssertion(em, app, assertion);
    return app;
  }
  throw aadError(
    401,
    'invalid_client',
    7000218,
    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
  );
}

/**
 * Workload identity federation: the assertion must be a token this tenant issued (for example a
 * managed identity's token for `api://AzureADTokenExchange`) whose issuer, subject and audience
 * match one of the app's federated identity credentials.
 */
function checkFederatedAssertion(em: Emulator, app: AppRegistration, assertion: string): void {
  let claims;
  try {
    claims = decodeJwt(assertion);
    em.tokens.key.verify(assertion, Math.floor(Date.now() / 1000));
  } catch (e) {
    const reason = e instanceof JwtError ? e.message : 'unreadable';
    if (reason === 'token is expired') {
      throw aadError(400, 'invalid_client', 700024, 'Client assertion is not within its valid time range.');
    }
    throw aadError(
      401,
      'invalid_client',
      50013,
      `Assertion failed signature validation. [Reason - ${reason}.]`,
    );
  }
  const match = app.federatedCredentials.find(
    (f) => f.issuer === claims.iss && f.subject === claims.sub && audienceMatches(claims, f.audiences),
  );
  if (!match) {
    throw aadError(
      400,
      'invalid_request',
      70021,
      `No matching federated identity record found for presented assertion. Assertion Issuer: '${String(claims.iss)}'. Assertion Subject: '${String(claims.sub)}'. Assertion Audience: '${String(claims.aud)}'.`,
    );
  }
}
