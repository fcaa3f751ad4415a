import { randomUUID } from 'node:crypto';
import type { Emulator } from '../../server';
import {
  basicCredentials,
  bearerToken,
  json,
  readForm,
  type EmulatorRequest,
  type EmulatorResponse,
} from '../../http';
import {
  sha256,
  type Account,
  type AccountServicePrincipal,
  type SpSecret,
  type Workspace,
} from '../../state';
import { credentialNotSent, dbError, jwtIdentity, oauthError, oidcIssuer, realNowSeconds } from './common';
import { secretStatus } from './sp-secrets';
import { federatedServicePrincipal } from '../federation';

/** Databricks OAuth access tokens live one hour. */
const OAUTH_TOKEN_LIFETIME_SECONDS = 3600;

const GRANT = {
  clientCredentials: 'client_credentials',
  tokenExchange: 'urn:ietf:params:oauth:grant-type:token-exchange',
  jwtTokenType: 'urn:ietf:params:oauth:token-type:jwt',
} as const;

/**
 * A Databricks OAuth authorization server: a workspace's `/oidc` or an account's
 * `/oidc/accounts/{account_id}`. Both serve the same grants to the account's service principals.
 */
export interface OAuthServer {
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
export const authorizationServerMetadata = (server: OAuthServer) =>
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
export const jwks = (em: Emulator) => json(200, { keys: [em.tokens.key.jwk()] });

/**
 * The scope a token gets: what was asked for (`all-apis` by default), within a scoped secret's
 * scopes. `all-apis` with a scoped secret yields exactly the secret's scopes; asking for more is
 * `invalid_scope`.
 */
function grantedScope(requested: string, secret: SpSecret | undefined): string {
  const allowed = secret?.scopes;
  if (!allowed) return requested;
  const asked = requested.split(' ').filter((s) => s && s !== 'offline_access');
  if (asked.length === 0 || asked.includes('all-apis')) return allowed.join(' ');
  const outside = asked.filter((s) => !allowed.includes(s) && !allowed.includes(s.replace(/:read$/, '')));
  if (outside.length > 0) {
    throw oauthError(
      400,
      'invalid_scope',
      `The secret does not allow the requested scopes: ${outside.join(' ')}`,
    );
  }
  return asked.join(' ');
}

/**
 * `{issuer}/v1/token`: OAuth M2M (client_credentials with an SP OAuth secret) and token federation
 * (RFC 8693 exchange of a JWT matching the SP's federation policy) → a one-hour Databricks token.
 */
export async function oauthToken(
  em: Emulator,
  server: OAuthServer,
  req: EmulatorRequest,
): Promise<EmulatorResponse> {
  const form = readForm(req);
  let sp: AccountServicePrincipal;
  let secret: SpSecret | undefined;
  const grantType = form.get('grant_type');
  if (grantType === GRANT.clientCredentials) {
    const basic = basicCredentials(req);
    const candidate = server.findSp(basic?.user ?? form.get('client_id'));
    const hash = sha256(basic?.password ?? form.get('client_secret') ?? '');
    secret = candidate?.secrets.find((s) => s.secretHash === hash);
    if (!candidate || !secret || secretStatus(em, secret) !== 'ACTIVE') {
      throw oauthError(401, 'invalid_client', 'Client authentication failed');
    }
    sp = candidate;
  } else if (grantType === GRANT.tokenExchange) {
    sp = await federatedServicePrincipal(form, server, realNowSeconds());
  } else {
    throw oauthError(400, 'unsupported_grant_type', `Grant type '${grantType ?? ''}' is not supported.`);
  }
  const scope = grantedScope(form.get('scope') ?? 'all-apis', secret);

  const now = realNowSeconds();
  const accessToken = em.tokens.key.sign({
    iss: server.issuer,
    sub: sp.applicationId,
    aud: sp.applicationId,
    client_id: sp.applicationId,
    scope,
    iat: now,
    nbf: now,
    exp: now + OAUTH_TOKEN_LIFETIME_SECONDS,
    jti: randomUUID(),
  });
  return json(200, {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: OAUTH_TOKEN_LIFETIME_SECONDS,
    scope,
  });
}

/** A workspace's authorization server: the SP must be in the account and added to the workspace. */
export const workspaceOAuth = (em: Emulator, ws: Workspace): OAuthServer => ({
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
export const accountOAuth = (em: Emulator, origin: string, accountId: string): OAuthServer => ({
  issuer: `${origin}/oidc/accounts/${accountId}`,
  findSp: (applicationId) =>
    em.state.accounts.get(accountId)?.servicePrincipals.find((s) => s.applicationId === applicationId),
  accountId,
  kind: 'account',
});

/**
 * The caller of an account API must be an admin of the account in the path, authenticated by an
 * Entra token for Azure Databricks or by an OAuth token from that account's own token endpoint.
 */
export function accountAdmin(em: Emulator, req: EmulatorRequest): Account {
  const token = bearerToken(req);
  if (!token) throw credentialNotSent();
  const accountId = req.params.accountId ?? '';
  const { appId } = jwtIdentity(em, token, accountOAuth(em, req.origin, accountId).issuer);
  const account = em.state.accounts.get(accountId);
  if (!account) throw dbError(404, 'RESOURCE_DOES_NOT_EXIST', `Account ${accountId} does not exist.`);
  if (!account.admins.has(appId)) {
    throw dbError(403, 'PERMISSION_DENIED', 'This API is only accessible by account admins.');
  }
  return account;
}
