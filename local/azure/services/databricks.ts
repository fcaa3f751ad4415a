import { randomUUID } from 'node:crypto';
import type { Emulator } from '../server';
import {
  basicCredentials,
  bearerToken,
  HttpError,
  json,
  readForm,
  readJson,
  Router,
  type EmulatorRequest,
  type EmulatorResponse,
} from '../http';
import { decodeJwt, JwtError } from '../jwt';
import { federatedServicePrincipal, federationPolicyRoutes } from './federation';
import {
  newHexToken,
  sha256,
  type Account,
  type AccountServicePrincipal,
  type SpSecret,
  type Workspace,
  type WorkspacePrincipal,
  type WorkspaceToken,
} from '../state';
import { RESOURCES } from '../tokens';

const DAY_SECONDS = 24 * 3600;

const LIMITS = {
  /** Default and maximum lifetime of an SP OAuth secret (730 days). */
  spSecretLifetimeSeconds: 730 * DAY_SECONDS,
  /** Databricks OAuth access tokens live one hour. */
  oauthTokenLifetimeSeconds: 3600,
} as const;

const GRANT = {
  clientCredentials: 'client_credentials',
  tokenExchange: 'urn:ietf:params:oauth:grant-type:token-exchange',
  jwtTokenType: 'urn:ietf:params:oauth:token-type:jwt',
} as const;

/**
 * A Databricks REST error `{error_code, message}`. Auth failures carry the HTTP status as a number
 * (`{"error_code":403,"message":"Invalid access token."}`, as captured from real workspaces), all
 * other errors a string code such as `RESOURCE_DOES_NOT_EXIST`.
 */
const dbError = (status: number, errorCode: string | number, message: string) =>
  new HttpError(status, { error_code: errorCode, message });

/** An OAuth 2.0 token endpoint error `{error, error_description}` (RFC 6749 §5.2). */
const oauthError = (status: number, error: string, description: string) =>
  new HttpError(status, { error, error_description: description });

const credentialNotSent = () =>
  dbError(401, 401, 'Credential was not sent or was of an unsupported type for this API.');
const invalidAccessToken = () => dbError(403, 403, 'Invalid access token.');
const badJson = (message: string) => dbError(400, 'MALFORMED_REQUEST', message);
const iso = (ms: number) => new Date(ms).toISOString();
/** JWT expiry is checked against real time (SDKs cache tokens by the wall clock). */
const realNowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * The application id behind a bearer JWT: a Databricks OAuth token issued by this workspace's
 * `/oidc/v1/token` (`sub` = SP application id) or an Entra token for Azure Databricks (`appid`).
 * Anything unverifiable is Databricks' "Invalid access token.".
 */
function jwtAppId(em: Emulator, token: string, oidcIssuer?: string): string {
  try {
    if (oidcIssuer !== undefined && decodeJwt(token).iss === oidcIssuer) {
      return String(em.tokens.key.verify(token, realNowSeconds()).sub);
    }
    return String(em.tokens.verify(token, [RESOURCES.databricks]).claims.appid);
  } catch (e) {
    if (e instanceof JwtError) throw invalidAccessToken();
    throw e;
  }
}

/** A PAT counts until it is deleted or its expiry passes on the emulated clock. */
const isLive = (em: Emulator, t: WorkspaceToken) => t.expiryTime === -1 || t.expiryTime > em.clock.now();

/**
 * The workspace caller, for every workspace API: a PAT's owner, or the workspace principal whose
 * application id is in an Entra or Databricks OAuth access token.
 */
function authenticate(em: Emulator, ws: Workspace, req: EmulatorRequest): WorkspacePrincipal {
  const token = bearerToken(req);
  if (!token) throw credentialNotSent();
  if (token.startsWith('dapi')) {
    const hash = sha256(token);
    const pat = ws.tokens.find((t) => t.valueHash === hash && isLive(em, t));
    const owner = pat && ws.principals.find((p) => p.id === pat.ownerId);
    // A deactivated user's tokens stop working with it.
    if (!owner || owner.active === false) throw invalidAccessToken();
    return owner;
  }
  const appId = jwtAppId(em, token, oidcIssuer(ws));
  const principal = ws.principals.find((p) => p.applicationId === appId);
  // A valid token for an identity that was never added to the workspace.
  if (!principal) throw dbError(403, 'PERMISSION_DENIED', `Unauthorized access to Org: ${ws.workspaceId}`);
  return principal;
}

const oidcIssuer = (ws: Workspace) => `${ws.url}/oidc`;
const userName = (p: WorkspacePrincipal) => p.userName ?? p.applicationId ?? p.id;

const tokenInfo = (t: WorkspaceToken) => ({
  token_id: t.tokenId,
  creation_time: t.creationTime,
  expiry_time: t.expiryTime,
  comment: t.comment,
});

/** One Databricks workspace's REST API (its own origin). */
export function workspaceRouter(em: Emulator, ws: Workspace): Router {
  const router = new Router();
  const liveTokens = () => ws.tokens.filter((t) => isLive(em, t));
  const removeToken = (t: WorkspaceToken) => ws.tokens.splice(ws.tokens.indexOf(t), 1);
  const tokenNotFound = (id: string) =>
    dbError(404, 'RESOURCE_DOES_NOT_EXIST', `No valid token with ID ${id} found.`);

  const requireAdmin = (req: EmulatorRequest): WorkspacePrincipal => {
    const caller = authenticate(em, ws, req);
    if (!caller.admin)
      throw dbError(403, 'PERMISSION_DENIED', 'Only Admins can access token management APIs.');
    return caller;
  };
  const managedToken = (id: string) => {
    const t = liveTokens().find((x) => x.tokenId === id);
    if (!t) throw tokenNotFound(id);
    const owner = ws.principals.find((p) => p.id === t.ownerId);
    return {
      token: t,
      info: {
        ...tokenInfo(t),
        created_by_id: Number(t.ownerId),
        created_by_username: owner ? userName(owner) : '',
        owner_id: Number(t.ownerId),
      },
    };
  };

  router
    .add('POST', '/api/2.0/token/create', (req) => {
      const caller = authenticate(em, ws, req);
      const body = readJson<{ lifetime_seconds?: unknown; comment?: unknown }>(req, badJson);
      const lifetime = body.lifetime_seconds ?? 0;
      if (typeof lifetime !== 'number' || !Number.isInteger(lifetime)) {
        throw dbError(400, 'INVALID_PARAMETER_VALUE', 'lifetime_seconds must be an integer.');
      }
      const max = ws.maxTokenLifetimeSeconds;
      if (max !== undefined && lifetime > max) {
        throw dbError(
          400,
          'INVALID_PARAMETER_VALUE',
          `Requested token lifetime of ${lifetime} seconds exceeds the maximum token lifetime of ${max} seconds (${max / DAY_SECONDS} days) set by the workspace admin.`,
        );
      }
      // No lifetime means no expiry, unless the workspace enforces a maximum.
      const seconds = lifetime > 0 ? lifetime : (max ?? 0);
      const now = em.clock.now();
      const value = `dapi${newHexToken(16)}`;
      const token: WorkspaceToken = {
        tokenId: newHexToken(32),
        valueHash: sha256(value),
        ownerId: caller.id,
        creationTime: now,
        expiryTime: seconds > 0 ? now + seconds * 1000 : -1,
        comment: typeof body.comment === 'string' ? body.comment : '',
      };
      ws.tokens.push(token);
      return json(200, { token_value: value, token_info: tokenInfo(token) });
    })
    .add('GET', '/api/2.0/token/list', (req) => {
      const caller = authenticate(em, ws, req);
      return json(200, {
        token_infos: liveTokens()
          .filter((t) => t.ownerId === caller.id)
          .map(tokenInfo),
      });
    })
    .add('POST', '/api/2.0/token/delete', (req) => {
      const caller = authenticate(em, ws, req);
      const id = String(readJson<{ token_id?: unknown }>(req, badJson).token_id ?? '');
      const t = liveTokens().find((x) => x.tokenId === id && x.ownerId === caller.id);
      if (!t) throw tokenNotFound(id);
      removeToken(t);
      return json(200, {});
    })
    .add('GET', '/api/2.0/token-management/tokens', (req) => {
      requireAdmin(req);
      const byId = req.query.get('created_by_id');
      const byName = req.query.get('created_by_username');
      const infos = liveTokens()
        .map((t) => managedToken(t.tokenId).info)
        .filter(
          (i) =>
            (byId === null || String(i.created_by_id) === byId) &&
            (byName === null || i.created_by_username === byName),
        );
      return json(200, { token_infos: infos });
    })
    .add('GET', '/api/2.0/token-management/tokens/:tokenId', (req) => {
      requireAdmin(req);
      return json(200, { token_info: managedToken(req.params.tokenId ?? '').info });
    })
    .add('DELETE', '/api/2.0/token-management/tokens/:tokenId', (req) => {
      requireAdmin(req);
      removeToken(managedToken(req.params.tokenId ?? '').token);
      return json(200, {});
    })
    .add('GET', '/api/2.0/preview/scim/v2/Me', (req) => {
      const p = authenticate(em, ws, req);
      return json(200, {
        schemas: [
          'urn:ietf:params:scim:schemas:core:2.0:User',
          'urn:ietf:params:scim:schemas:extension:workspace:2.0:User',
        ],
        id: p.id,
        userName: userName(p),
        displayName: p.displayName,
        active: true,
        emails: p.userName ? [{ type: 'work', value: p.userName, primary: true }] : [],
        groups: p.admin ? [{ display: 'admins', type: 'direct' }] : [],
        ...(p.applicationId ? { applicationId: p.applicationId } : {}),
      });
    })
    .add('GET', '/api/2.0/preview/scim/v2/Users/:id', (req) => {
      requireAdmin(req);
      const p = ws.principals.find((x) => x.id === req.params.id && x.userName);
      if (!p)
        throw new HttpError(404, {
          schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
          detail: `User ${req.params.id ?? ''} not found.`,
          status: '404',
        });
      return json(200, {
        id: p.id,
        userName: p.userName,
        displayName: p.displayName,
        active: p.active !== false,
      });
    })
    .add('GET', '/oidc/.well-known/oauth-authorization-server', () =>
      authorizationServerMetadata(workspaceOAuth(em, ws)),
    )
    .add('GET', '/oidc/v1/keys', () => jwks(em))
    .add('POST', '/oidc/v1/token', (req) => oauthToken(em, workspaceOAuth(em, ws), req));

  // The workspace-level proxy of the account API: workspace admins manage the account's SP secrets.
  spSecretRoutes(em, router, '/api/2.0/accounts/servicePrincipals/:spId/credentials/secrets', (req) => {
    const caller = authenticate(em, ws, req);
    if (!caller.admin)
      throw dbError(403, 'PERMISSION_DENIED', 'Only workspace admins can manage service principal secrets.');
    const account = ws.accountId === undefined ? undefined : em.state.accounts.get(ws.accountId);
    if (!account)
      throw dbError(404, 'RESOURCE_DOES_NOT_EXIST', 'This workspace is not assigned to an account.');
    return account;
  });
  return endpointNotFound(router);
}

/**
 * A Databricks OAuth authorization server: a workspace's `/oidc` or an account's
 * `/oidc/accounts/{account_id}`. Both serve the same grants to the account's service principals.
 */
interface OAuthServer {
  /** `iss` of the tokens it issues; its endpoints live under this URL. */
  issuer: string;
  /** The account service principal that may get tokens here, by application id. */
  findSp: (applicationId: string | null | undefined) => AccountServicePrincipal | undefined;
  /** The default audience of federation policies. */
  accountId: string;
  /** Where a service principal must be, for error messages. */
  kind: 'workspace' | 'account';
}

/** RFC 8414 metadata at `{issuer}/.well-known/oauth-authorization-server`. */
const authorizationServerMetadata = (server: OAuthServer) =>
  json(200, {
    issuer: server.issuer,
    authorization_endpoint: `${server.issuer}/v1/authorize`,
    token_endpoint: `${server.issuer}/v1/token`,
    jwks_uri: `${server.issuer}/v1/keys`,
    grant_types_supported: [GRANT.clientCredentials, GRANT.tokenExchange],
    scopes_supported: ['all-apis', 'offline_access'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
  });

/** `{issuer}/v1/keys`: the key that signs the issued tokens. */
const jwks = (em: Emulator) => json(200, { keys: [em.tokens.key.jwk()] });

/**
 * `{issuer}/v1/token`: OAuth M2M (client_credentials with an SP OAuth secret) and token federation
 * (RFC 8693 exchange of a JWT matching the SP's federation policy) → a one-hour Databricks token.
 */
async function oauthToken(
  em: Emulator,
  server: OAuthServer,
  req: EmulatorRequest,
): Promise<EmulatorResponse> {
  const form = readForm(req);
  const scope = form.get('scope') ?? 'all-apis';

  let sp: AccountServicePrincipal;
  const grantType = form.get('grant_type');
  if (grantType === GRANT.clientCredentials) {
    const basic = basicCredentials(req);
    const candidate = server.findSp(basic?.user ?? form.get('client_id'));
    const hash = sha256(basic?.password ?? form.get('client_secret') ?? '');
    const secret = candidate?.secrets.find((s) => s.secretHash === hash);
    if (!candidate || !secret || secretStatus(em, secret) !== 'ACTIVE') {
      throw oauthError(401, 'invalid_client', 'Client authentication failed');
    }
    sp = candidate;
  } else if (grantType === GRANT.tokenExchange) {
    sp = await federatedServicePrincipal(form, server, realNowSeconds());
  } else {
    throw oauthError(400, 'unsupported_grant_type', `Grant type '${grantType ?? ''}' is not supported.`);
  }

  const now = realNowSeconds();
  const accessToken = em.tokens.key.sign({
    iss: server.issuer,
    sub: sp.applicationId,
    aud: sp.applicationId,
    client_id: sp.applicationId,
    scope,
    iat: now,
    nbf: now,
    exp: now + LIMITS.oauthTokenLifetimeSeconds,
    jti: randomUUID(),
  });
  return json(200, {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: LIMITS.oauthTokenLifetimeSeconds,
    scope,
  });
}

/** A workspace's authorization server: the SP must be in the account and added to the workspace. */
const workspaceOAuth = (em: Emulator, ws: Workspace): OAuthServer => ({
  issuer: oidcIssuer(ws),
  findSp: (applicationId) =>
    ws.principals.some((p) => p.applicationId === applicationId)
      ? em.state.accounts
          .get(ws.accountId ?? '')
          ?.servicePrincipals.find((s) => s.applicationId === applicationId)
      : undefined,
  accountId: ws.accountId ?? '',
  kind: 'workspace',
});

/** An account's authorization server (`origin` is the account host): any SP of that account. */
const accountOAuth = (em: Emulator, origin: string, accountId: string): OAuthServer => ({
  issuer: `${origin}/oidc/accounts/${accountId}`,
  findSp: (applicationId) =>
    em.state.accounts.get(accountId)?.servicePrincipals.find((s) => s.applicationId === applicationId),
  accountId,
  kind: 'account',
});

const spNotFound = (id: string | undefined) =>
  dbError(404, 'RESOURCE_DOES_NOT_EXIST', `Service principal ${id ?? ''} does not exist.`);

/** Stored secrets are ACTIVE until their expire time passes on the emulated clock. */
const secretStatus = (em: Emulator, s: SpSecret): SpSecret['status'] =>
  s.status === 'ACTIVE' && Date.parse(s.expireTime) > em.clock.now() ? 'ACTIVE' : 'EXPIRED';

/** `"31536000s"` (protobuf Duration JSON) → seconds. */
function parseLifetime(value: unknown): number {
  if (value === undefined) return LIMITS.spSecretLifetimeSeconds;
  const m = typeof value === 'string' ? /^(\d+)(\.\d+)?s$/.exec(value) : null;
  if (!m)
    throw dbError(
      400,
      'INVALID_PARAMETER_VALUE',
      `Invalid lifetime '${String(value)}': expected a duration such as "31536000s".`,
    );
  const seconds = Number(m[1]);
  if (seconds <= 0 || seconds > LIMITS.spSecretLifetimeSeconds) {
    throw dbError(
      400,
      'INVALID_PARAMETER_VALUE',
      `Secret lifetime must be between 1 second and 730 days (${LIMITS.spSecretLifetimeSeconds}s).`,
    );
  }
  return seconds;
}

/**
 * Service-principal OAuth secrets under `base` (account host or workspace proxy). `authorize`
 * authenticates the caller and returns the account whose service principals it may manage.
 */
function spSecretRoutes(
  em: Emulator,
  router: Router,
  base: string,
  authorize: (req: EmulatorRequest) => Account,
): void {
  const targetSp = (req: EmulatorRequest) => {
    const sp = authorize(req).servicePrincipals.find((s) => s.id === req.params.spId);
    if (!sp) throw spNotFound(req.params.spId);
    return sp;
  };
  const view = (s: SpSecret) => ({
    id: s.id,
    secret_hash: s.secretHash,
    create_time: s.createTime,
    update_time: s.updateTime,
    expire_time: s.expireTime,
    status: secretStatus(em, s),
  });

  router
    .add('POST', base, (req) => {
      const sp = targetSp(req);
      const seconds = parseLifetime(readJson<{ lifetime?: unknown }>(req, badJson).lifetime);
      const now = em.clock.now();
      const value = `dose${newHexToken(16)}`;
      const secret: SpSecret = {
        id: newHexToken(32),
        secretHash: sha256(value),
        createTime: iso(now),
        updateTime: iso(now),
        expireTime: iso(now + seconds * 1000),
        status: 'ACTIVE',
      };
      sp.secrets.push(secret);
      // The only response that carries the secret value.
      const { id, ...rest } = view(secret);
      return json(200, { id, secret: value, ...rest });
    })
    .add('GET', base, (req) => json(200, { secrets: targetSp(req).secrets.map(view) }))
    .add('DELETE', `${base}/:secretId`, (req) => {
      const sp = targetSp(req);
      const index = sp.secrets.findIndex((s) => s.id === req.params.secretId);
      if (index < 0) {
        throw dbError(404, 'RESOURCE_DOES_NOT_EXIST', `Secret ${req.params.secretId ?? ''} does not exist.`);
      }
      sp.secrets.splice(index, 1);
      return json(200, {});
    });
}

/**
 * The caller of an account API must be an admin of the account in the path, authenticated by an
 * Entra token for Azure Databricks or by an OAuth token from that account's own token endpoint.
 */
function accountAdmin(em: Emulator, req: EmulatorRequest): Account {
  const token = bearerToken(req);
  if (!token) throw credentialNotSent();
  const accountId = req.params.accountId ?? '';
  const appId = jwtAppId(em, token, accountOAuth(em, req.origin, accountId).issuer);
  const account = em.state.accounts.get(accountId);
  if (!account) throw dbError(404, 'RESOURCE_DOES_NOT_EXIST', `Account ${accountId} does not exist.`);
  if (!account.admins.has(appId)) {
    throw dbError(403, 'PERMISSION_DENIED', 'This API is only accessible by account admins.');
  }
  return account;
}

const SCIM = {
  servicePrincipal: 'urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal',
  listResponse: 'urn:ietf:params:scim:api:messages:2.0:ListResponse',
} as const;

const scimServicePrincipal = (sp: AccountServicePrincipal) => ({
  schemas: [SCIM.servicePrincipal],
  id: sp.id,
  applicationId: sp.applicationId,
  displayName: sp.displayName,
  active: true,
});

/**
 * The SCIM list filter, limited to one equality (`applicationId eq "…"`, also `id` or
 * `displayName`); SCIM attribute names and operators are case-insensitive (RFC 7644 §3.4.2.2).
 */
function scimFilter(filter: string | null): (sp: AccountServicePrincipal) => boolean {
  if (filter === null) return () => true;
  const m = /^\s*(id|applicationId|displayName)\s+eq\s+"([^"]*)"\s*$/i.exec(filter);
  if (!m) {
    throw dbError(
      400,
      'INVALID_PARAMETER_VALUE',
      `Unsupported filter '${filter}': expected id, applicationId or displayName eq "value".`,
    );
  }
  const attribute = (m[1] as string).toLowerCase();
  const field = attribute === 'id' ? 'id' : attribute === 'applicationid' ? 'applicationId' : 'displayName';
  return (sp) => sp[field] === m[2];
}

/**
 * The Databricks account host: SCIM service principals, their OAuth secrets, and the account's
 * OAuth authorization server.
 */
export function accountsRouter(em: Emulator): Router {
  const router = new Router();
  const scimBase = '/api/2.0/accounts/:accountId/scim/v2/ServicePrincipals';
  const oauth = (req: EmulatorRequest) => accountOAuth(em, req.origin, req.params.accountId ?? '');

  spSecretRoutes(
    em,
    router,
    '/api/2.0/accounts/:accountId/servicePrincipals/:spId/credentials/secrets',
    (req) => accountAdmin(em, req),
  );
  federationPolicyRoutes(
    router,
    () => em.clock.now(),
    (req) => accountAdmin(em, req),
  );
  router
    .add('GET', scimBase, (req) => {
      const matches = accountAdmin(em, req).servicePrincipals.filter(scimFilter(req.query.get('filter')));
      return json(200, {
        schemas: [SCIM.listResponse],
        Resources: matches.map(scimServicePrincipal),
        totalResults: matches.length,
        startIndex: 1,
        itemsPerPage: matches.length,
      });
    })
    .add('GET', `${scimBase}/:spId`, (req) => {
      const sp = accountAdmin(em, req).servicePrincipals.find((s) => s.id === req.params.spId);
      if (!sp) throw spNotFound(req.params.spId);
      return json(200, scimServicePrincipal(sp));
    })
    .add('GET', '/oidc/accounts/:accountId/.well-known/oauth-authorization-server', (req) =>
      authorizationServerMetadata(oauth(req)),
    )
    .add('GET', '/oidc/accounts/:accountId/v1/keys', () => jwks(em))
    .add('POST', '/oidc/accounts/:accountId/v1/token', (req) => oauthToken(em, oauth(req), req));
  return endpointNotFound(router);
}

/** Unknown paths get Databricks' own 404 instead of the server's generic one. */
function endpointNotFound(router: Router): Router {
  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
    router.add(method, '/:path*', (req) => {
      throw dbError(404, 'ENDPOINT_NOT_FOUND', `No API found for '${req.method} ${req.path}'`);
    });
  }
  return router;
}
