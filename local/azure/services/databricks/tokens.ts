import type { Emulator } from '../../server';
import { json, readJson, type EmulatorRequest, type Router } from '../../http';
import {
  newHexToken,
  sha256,
  type Workspace,
  type WorkspacePrincipal,
  type WorkspaceToken,
} from '../../state';
import {
  authorize,
  badJson,
  dbError,
  DAY_SECONDS,
  invalidParameter,
  isLive,
  parseScopes,
  userName,
} from './common';

/** Databricks' per-user quota of live PATs in a workspace, unless the seed sets another. */
export const DEFAULT_MAX_TOKENS_PER_USER = 600;

const DAY_MS = DAY_SECONDS * 1000;

/** `AUTOSCOPE_STATE_*` of a token: collecting while autoscope is on, else chosen or off. */
const autoscopeState = (t: WorkspaceToken) =>
  t.autoscopeEnabled
    ? 'AUTOSCOPE_STATE_RUNNING'
    : t.scopes
      ? 'AUTOSCOPE_STATE_USER_SELECTED'
      : 'AUTOSCOPE_STATE_DISABLED';

/** `PublicTokenInfo`, as `token/create` and `token/list` return it. */
const tokenInfo = (t: WorkspaceToken) => ({
  token_id: t.tokenId,
  creation_time: t.creationTime,
  expiry_time: t.expiryTime,
  comment: t.comment,
  ...(t.scopes ? { scopes: t.scopes } : {}),
  autoscope_state: autoscopeState(t),
  ...(t.autoscopeEnabled ? { inferred_scopes: [...t.inferredScopes] } : {}),
  ...(t.lastUsedTime !== undefined ? { last_accessed_time: t.lastUsedTime } : {}),
});

/** The caller's PATs (`/token/*`) and the admin view of everyone's (`/token-management/*`). */
export function tokenRoutes(em: Emulator, ws: Workspace, router: Router): void {
  const liveTokens = () => ws.tokens.filter((t) => isLive(em, t));
  const removeToken = (t: WorkspaceToken) => ws.tokens.splice(ws.tokens.indexOf(t), 1);
  const tokenNotFound = (id: string) =>
    dbError(404, 'RESOURCE_DOES_NOT_EXIST', `No valid token with ID ${id} found.`);
  const caller = (req: EmulatorRequest): WorkspacePrincipal =>
    authorize(em, ws, req, 'authentication').principal;

  const requireAdmin = (req: EmulatorRequest): WorkspacePrincipal => {
    const p = caller(req);
    if (!p.admin) throw dbError(403, 'PERMISSION_DENIED', 'Only Admins can access token management APIs.');
    return p;
  };
  /** `TokenInfo` of token management: who owns it, where, and the day it was last used. */
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
        workspace_id: Number(ws.workspaceId),
        ...(t.lastUsedTime !== undefined
          ? { last_used_day: Math.floor(t.lastUsedTime / DAY_MS) * DAY_MS }
          : {}),
      },
    };
  };

  router
    .add('POST', '/api/2.0/token/create', (req) => {
      const owner = caller(req);
      const body = readJson<{
        lifetime_seconds?: unknown;
        comment?: unknown;
        scopes?: unknown;
        autoscope_enabled?: unknown;
      }>(req, badJson);
      const lifetime = body.lifetime_seconds ?? 0;
      if (typeof lifetime !== 'number' || !Number.isInteger(lifetime)) {
        throw invalidParameter('lifetime_seconds must be an integer.');
      }
      const max = ws.maxTokenLifetimeSeconds;
      if (max !== undefined && lifetime > max) {
        throw invalidParameter(
          `Requested token lifetime of ${lifetime} seconds exceeds the maximum token lifetime of ${max} seconds (${max / DAY_SECONDS} days) set by the workspace admin.`,
        );
      }
      const scopes = parseScopes(body.scopes);
      if (body.autoscope_enabled !== undefined && typeof body.autoscope_enabled !== 'boolean') {
        throw invalidParameter('autoscope_enabled must be a boolean.');
      }
      const quota = ws.maxTokensPerUser ?? DEFAULT_MAX_TOKENS_PER_USER;
      const held = liveTokens().filter((t) => t.ownerId === owner.id).length;
      if (held >= quota) {
        throw dbError(
          400,
          'QUOTA_EXCEEDED',
          `User ${userName(owner)} already has ${held} tokens, the maximum of ${quota} per user; revoke a token before creating another.`,
        );
      }
      // No lifetime means no expiry, unless the workspace enforces a maximum.
      const seconds = lifetime > 0 ? lifetime : (max ?? 0);
      const now = em.clock.now();
      const value = `dapi${newHexToken(16)}`;
      const token: WorkspaceToken = {
        tokenId: sha256(value),
        valueHash: sha256(value),
        ownerId: owner.id,
        creationTime: now,
        expiryTime: seconds > 0 ? now + seconds * 1000 : -1,
        comment: typeof body.comment === 'string' ? body.comment : '',
        scopes,
        autoscopeEnabled: body.autoscope_enabled === true,
        inferredScopes: [],
      };
      ws.tokens.push(token);
      return json(200, { token_value: value, token_info: tokenInfo(token) });
    })
    .add('GET', '/api/2.0/token/list', (req) => {
      const owner = caller(req);
      return json(200, {
        token_infos: liveTokens()
          .filter((t) => t.ownerId === owner.id)
          .map(tokenInfo),
      });
    })
    .add('POST', '/api/2.0/token/delete', (req) => {
      const owner = caller(req);
      const id = String(readJson<{ token_id?: unknown }>(req, badJson).token_id ?? '');
      const t = liveTokens().find((x) => x.tokenId === id && x.ownerId === owner.id);
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
    });
}

/**
 * One read-only list per API area, so a scoped token can be shown to reach (or not reach) the
 * areas it was given: SQL warehouses, jobs, clusters, Unity Catalog catalogs.
 */
export function areaRoutes(em: Emulator, ws: Workspace, router: Router): void {
  router
    .add('GET', '/api/2.0/sql/warehouses', (req) => {
      authorize(em, ws, req, 'sql');
      return json(200, { warehouses: [] });
    })
    .add('GET', '/api/2.1/jobs/list', (req) => {
      authorize(em, ws, req, 'jobs');
      return json(200, { jobs: [], has_more: false });
    })
    .add('GET', '/api/2.0/clusters/list', (req) => {
      authorize(em, ws, req, 'clusters');
      return json(200, { clusters: [] });
    })
    .add('GET', '/api/2.1/unity-catalog/catalogs', (req) => {
      authorize(em, ws, req, 'unity-catalog');
      return json(200, { catalogs: [] });
    });
}
