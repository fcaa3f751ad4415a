import type { Emulator } from '../../server';
import { bearerToken, HttpError, type EmulatorRequest } from '../../http';
import { decodeJwt, JwtError } from '../../jwt';
import { sha256, type Workspace, type WorkspacePrincipal, type WorkspaceToken } from '../../state';
import { RESOURCES } from '../../tokens';

export const DAY_SECONDS = 24 * 3600;

/**
 * A Databricks REST error `{error_code, message}`. Auth failures carry the HTTP status as a number
 * (`{"error_code":403,"message":"Invalid access token."}`, as captured from real workspaces), all
 * other errors a string code such as `RESOURCE_DOES_NOT_EXIST`.
 */
export const dbError = (status: number, errorCode: string | number, message: string) =>
  new HttpError(status, { error_code: errorCode, message });

/** An OAuth 2.0 token endpoint error `{error, error_description}` (RFC 6749 §5.2). */
export const oauthError = (status: number, error: string, description: string) =>
  new HttpError(status, { error, error_description: description });

export const credentialNotSent = () =>
  dbError(401, 401, 'Credential was not sent or was of an unsupported type for this API.');
export const invalidAccessToken = () => dbError(403, 403, 'Invalid access token.');
export const badJson = (message: string) => dbError(400, 'MALFORMED_REQUEST', message);
export const invalidParameter = (message: string) => dbError(400, 'INVALID_PARAMETER_VALUE', message);
export const iso = (ms: number) => new Date(ms).toISOString();
/** JWT expiry is checked against real time (SDKs cache tokens by the wall clock). */
export const realNowSeconds = () => Math.floor(Date.now() / 1000);

export const oidcIssuer = (ws: Workspace) => `${ws.url}/oidc`;
export const userName = (p: WorkspacePrincipal) => p.userName ?? p.applicationId ?? p.id;

/**
 * The API areas a PAT or OAuth token can be scoped to. `:read` limits an area to reads; `sql` also
 * has `:restricted-query`. A token without scopes can call every API its owner can.
 */
export const SCOPE_AREAS = [
  'access-management',
  'authentication',
  'clusters',
  'dashboards',
  'files',
  'genie',
  'jobs',
  'ml',
  'model-serving',
  'pipelines',
  'secrets',
  'sql',
  'unity-catalog',
  'vector-search',
  'workspace',
] as const;
export type ScopeArea = (typeof SCOPE_AREAS)[number];

/** Validates requested scopes; an unknown one is Databricks' 400 INVALID_PARAMETER_VALUE. */
export function parseScopes(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((s) => typeof s !== 'string')) {
    throw invalidParameter('scopes must be a list of strings.');
  }
  for (const scope of value as string[]) {
    const [area, modifier, extra] = scope.split(':');
    const known = (SCOPE_AREAS as readonly string[]).includes(area ?? '');
    const modifierOk =
      modifier === undefined || modifier === 'read' || (area === 'sql' && modifier === 'restricted-query');
    if (!known || !modifierOk || extra !== undefined) throw invalidParameter(`Invalid scope: ${scope}`);
  }
  return [...new Set(value as string[])];
}

/**
 * Whether scopes allow a call: the area itself, or `{area}:read` for reads; `sql:restricted-query`
 * allows SQL reads and running statements.
 */
export function scopesAllow(scopes: readonly string[], area: ScopeArea, req: EmulatorRequest): boolean {
  const read = req.method === 'GET';
  return scopes.some(
    (s) =>
      s === area ||
      (read && s === `${area}:read`) ||
      (area === 'sql' &&
        s === 'sql:restricted-query' &&
        (read || req.path.startsWith('/api/2.0/sql/statements'))),
  );
}

/** The caller of a workspace API and what its token may do. */
export interface Caller {
  principal: WorkspacePrincipal;
  /** undefined: every API the principal can call. */
  scopes?: string[];
  /** The PAT it authenticated with, if any. */
  pat?: WorkspaceToken;
}

/**
 * The application id and scopes behind a bearer JWT: a Databricks OAuth token issued by this
 * workspace's `/oidc/v1/token` (`sub` = SP application id, `scope`) or an Entra token for Azure
 * Databricks (`appid`, never scoped). Anything unverifiable is Databricks' "Invalid access token.".
 */
export function jwtIdentity(
  em: Emulator,
  token: string,
  oidcIssuerUrl?: string,
): { appId: string; scopes?: string[] } {
  try {
    if (oidcIssuerUrl !== undefined && decodeJwt(token).iss === oidcIssuerUrl) {
      const claims = em.tokens.key.verify(token, realNowSeconds());
      const granted = String(claims.scope ?? 'all-apis')
        .split(' ')
        .filter((s) => s && s !== 'offline_access');
      return { appId: String(claims.sub), scopes: granted.includes('all-apis') ? undefined : granted };
    }
    return { appId: String(em.tokens.verify(token, [RESOURCES.databricks]).claims.appid) };
  } catch (e) {
    if (e instanceof JwtError) throw invalidAccessToken();
    throw e;
  }
}

/** A PAT counts until it is deleted or its expiry passes on the emulated clock. */
export const isLive = (em: Emulator, t: WorkspaceToken) =>
  t.expiryTime === -1 || t.expiryTime > em.clock.now();

/**
 * The workspace caller, for every workspace API: a PAT's owner, or the workspace principal whose
 * application id is in an Entra or Databricks OAuth access token.
 */
function authenticate(em: Emulator, ws: Workspace, req: EmulatorRequest): Caller {
  const token = bearerToken(req);
  if (!token) throw credentialNotSent();
  if (token.startsWith('dapi')) {
    const hash = sha256(token);
    const pat = ws.tokens.find((t) => t.valueHash === hash && isLive(em, t));
    const owner = pat && ws.principals.find((p) => p.id === pat.ownerId);
    // A deactivated user's tokens stop working with it.
    if (!pat || !owner || owner.active === false) throw invalidAccessToken();
    pat.lastUsedTime = em.clock.now();
    return { principal: owner, scopes: pat.scopes, pat };
  }
  const { appId, scopes } = jwtIdentity(em, token, oidcIssuer(ws));
  const principal = ws.principals.find((p) => p.applicationId === appId);
  // A valid token for an identity that was never added to the workspace.
  if (!principal) throw dbError(403, 'PERMISSION_DENIED', `Unauthorized access to Org: ${ws.workspaceId}`);
  return { principal, scopes };
}

/**
 * Authenticates and checks the token's scopes for an API `area` (undefined: an API every token may
 * call, such as SCIM Me). With autoscope on, a PAT records the scopes it is used for.
 */
export function authorize(
  em: Emulator,
  ws: Workspace,
  req: EmulatorRequest,
  area: ScopeArea | undefined,
): Caller {
  const caller = authenticate(em, ws, req);
  if (area === undefined) return caller;
  if (caller.scopes && !scopesAllow(caller.scopes, area, req)) {
    throw dbError(
      403,
      'PERMISSION_DENIED',
      `Provided ${caller.pat ? 'access' : 'OAuth'} token does not have required scopes: ${area}`,
    );
  }
  const pat = caller.pat;
  if (pat?.autoscopeEnabled) {
    const inferred = req.method === 'GET' ? `${area}:read` : area;
    if (!pat.inferredScopes.includes(inferred) && !pat.inferredScopes.includes(area))
      pat.inferredScopes.push(inferred);
  }
  return caller;
}
