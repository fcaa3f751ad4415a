import type { Emulator } from '../server';
import { Router, type EmulatorRequest } from '../http';
import { authorize, dbError } from './databricks/common';
import {
  accountAdmin,
  accountOAuth,
  authorizationServerMetadata,
  jwks,
  oauthToken,
  workspaceOAuth,
} from './databricks/oidc';
import { accountScimRoutes, workspaceScimRoutes } from './databricks/scim';
import { spSecretRoutes } from './databricks/sp-secrets';
import { federationPolicyRoutes } from './federation';
import { areaRoutes, tokenRoutes } from './databricks/tokens';
import type { Workspace } from '../state';

const spNotFound = (id: string | undefined) =>
  dbError(404, 'RESOURCE_DOES_NOT_EXIST', `Service principal ${id ?? ''} does not exist.`);

/** One Databricks workspace's REST API (its own origin). */
export function workspaceRouter(em: Emulator, ws: Workspace): Router {
  const router = new Router();
  tokenRoutes(em, ws, router);
  areaRoutes(em, ws, router);
  workspaceScimRoutes(em, ws, router);
  router
    .add('GET', '/oidc/.well-known/oauth-authorization-server', () =>
      authorizationServerMetadata(workspaceOAuth(em, ws)),
    )
    .add('GET', '/oidc/v1/keys', () => jwks(em))
    .add('POST', '/oidc/v1/token', (req) => oauthToken(em, workspaceOAuth(em, ws), req));

  // The workspace-level proxy of the account API: workspace admins manage the secrets of the
  // account's service principals that are in this workspace.
  spSecretRoutes(em, router, '/api/2.0/accounts/servicePrincipals/:spId/credentials/secrets', (req) => {
    const caller = authorize(em, ws, req, 'access-management').principal;
    if (!caller.admin)
      throw dbError(403, 'PERMISSION_DENIED', 'Only workspace admins can manage service principal secrets.');
    const account = ws.accountId === undefined ? undefined : em.state.accounts.get(ws.accountId);
    if (!account)
      throw dbError(404, 'RESOURCE_DOES_NOT_EXIST', 'This workspace is not assigned to an account.');
    const sp = account.servicePrincipals.find((s) => s.id === req.params.spId);
    if (!sp) throw spNotFound(req.params.spId);
    if (!ws.principals.some((p) => p.applicationId === sp.applicationId)) {
      throw dbError(
        404,
        'RESOURCE_DOES_NOT_EXIST',
        `Service principal ${sp.id} is not a member of workspace ${ws.workspaceId}.`,
      );
    }
    return sp;
  });
  return endpointNotFound(router);
}

/**
 * The Databricks account host: SCIM service principals, their OAuth secrets, and the account's
 * OAuth authorization server.
 */
export function accountsRouter(em: Emulator): Router {
  const router = new Router();
  const oauth = (req: EmulatorRequest) => accountOAuth(em, req.origin, req.params.accountId ?? '');

  spSecretRoutes(
    em,
    router,
    '/api/2.0/accounts/:accountId/servicePrincipals/:spId/credentials/secrets',
    (req) => {
      const sp = accountAdmin(em, req).servicePrincipals.find((s) => s.id === req.params.spId);
      if (!sp) throw spNotFound(req.params.spId);
      return sp;
    },
  );
  federationPolicyRoutes(
    router,
    () => em.clock.now(),
    (req) => accountAdmin(em, req),
  );
  accountScimRoutes(em, router);
  router
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
