import type { Emulator } from '../../server';
import { json, readJson, type EmulatorRequest, type Router } from '../../http';
import { newHexToken, sha256, type AccountServicePrincipal, type SpSecret } from '../../state';
import { badJson, dbError, DAY_SECONDS, invalidParameter, iso, parseScopes } from './common';

export const SP_SECRET_LIMITS = {
  /** Default and maximum lifetime of an SP OAuth secret (730 days). */
  lifetimeSeconds: 730 * DAY_SECONDS,
  /** A service principal holds at most this many OAuth secrets, expired ones included. */
  secretsPerSp: 5,
  /** Default and largest `page_size` of a secrets list. */
  pageSize: 100,
} as const;

/** A new secret id: hex, like every Databricks secret id. */
export const newSpSecretId = () => newHexToken(16);

/** Stored secrets are ACTIVE until their expire time passes on the emulated clock. */
export const secretStatus = (em: Emulator, s: SpSecret): SpSecret['status'] =>
  s.status === 'ACTIVE' && Date.parse(s.expireTime) > em.clock.now() ? 'ACTIVE' : 'EXPIRED';

/** `"31536000s"` (protobuf Duration JSON) → seconds. */
function parseLifetime(value: unknown): number {
  if (value === undefined) return SP_SECRET_LIMITS.lifetimeSeconds;
  const m = typeof value === 'string' ? /^(\d+)(\.\d+)?s$/.exec(value) : null;
  if (!m)
    throw invalidParameter(`Invalid lifetime '${String(value)}': expected a duration such as "31536000s".`);
  const seconds = Number(m[1]);
  if (seconds <= 0 || seconds > SP_SECRET_LIMITS.lifetimeSeconds) {
    throw invalidParameter(
      `Secret lifetime must be between 1 second and 730 days (${SP_SECRET_LIMITS.lifetimeSeconds}s).`,
    );
  }
  return seconds;
}

/** `page_size` and the opaque `page_token` (an offset) of a secrets list. */
function parsePage(req: EmulatorRequest): { offset: number; size: number } {
  const rawSize = req.query.get('page_size');
  const size = rawSize === null ? SP_SECRET_LIMITS.pageSize : Number(rawSize);
  if (!Number.isInteger(size) || size < 1 || size > SP_SECRET_LIMITS.pageSize) {
    throw invalidParameter(`page_size must be between 1 and ${SP_SECRET_LIMITS.pageSize}, not '${rawSize}'.`);
  }
  const token = req.query.get('page_token');
  if (token === null || token === '') return { offset: 0, size };
  const offset = Number(
    Buffer.from(token, 'base64url')
      .toString('utf8')
      .replace(/^offset:/, ''),
  );
  if (!Number.isInteger(offset) || offset < 0) throw invalidParameter(`Invalid page_token '${token}'.`);
  return { offset, size };
}

/**
 * Service-principal OAuth secrets under `base` (account host or workspace proxy). `authorize`
 * authenticates the caller and returns the service principal it may manage, or throws.
 */
export function spSecretRoutes(
  em: Emulator,
  router: Router,
  base: string,
  authorize: (req: EmulatorRequest) => AccountServicePrincipal,
): void {
  const view = (s: SpSecret) => ({
    id: s.id,
    secret_hash: s.secretHash,
    create_time: s.createTime,
    update_time: s.updateTime,
    expire_time: s.expireTime,
    status: secretStatus(em, s),
    ...(s.scopes ? { scopes: s.scopes } : {}),
  });

  router
    .add('POST', base, (req) => {
      const sp = authorize(req);
      const body = readJson<{ lifetime?: unknown; scopes?: unknown }>(req, badJson);
      const seconds = parseLifetime(body.lifetime);
      const scopes = parseScopes(body.scopes);
      if (sp.secrets.length >= SP_SECRET_LIMITS.secretsPerSp) {
        throw dbError(
          400,
          'QUOTA_EXCEEDED',
          `Service principal ${sp.id} already has ${sp.secrets.length} secrets, the maximum of ${SP_SECRET_LIMITS.secretsPerSp}; delete one before creating another.`,
        );
      }
      const now = em.clock.now();
      const value = `dose${newHexToken(16)}`;
      const secret: SpSecret = {
        id: newSpSecretId(),
        secretHash: sha256(value),
        createTime: iso(now),
        updateTime: iso(now),
        expireTime: iso(now + seconds * 1000),
        status: 'ACTIVE',
        scopes,
      };
      sp.secrets.push(secret);
      // The only response that carries the secret value.
      const { id, ...rest } = view(secret);
      return json(200, { id, secret: value, ...rest });
    })
    .add('GET', base, (req) => {
      const sp = authorize(req);
      const { offset, size } = parsePage(req);
      const page = sp.secrets.slice(offset, offset + size);
      const more = offset + size < sp.secrets.length;
      return json(200, {
        secrets: page.map(view),
        ...(more ? { next_page_token: Buffer.from(`offset:${offset + size}`).toString('base64url') } : {}),
      });
    })
    .add('DELETE', `${base}/:secretId`, (req) => {
      const sp = authorize(req);
      const index = sp.secrets.findIndex((s) => s.id === req.params.secretId);
      if (index < 0) {
        throw dbError(404, 'RESOURCE_DOES_NOT_EXIST', `Secret ${req.params.secretId ?? ''} does not exist.`);
      }
      sp.secrets.splice(index, 1);
      return json(200, {});
    });
}
