import { z } from 'zod';
import type { Emulator } from '../server';
import {
  bearerToken,
  EmulatorRequest,
  EmulatorResponse,
  Handler,
  HttpError,
  json,
  readJson,
  Router,
} from '../http';
import { audienceMatches, decodeJwt, JwtClaims, JwtError } from '../jwt';
import { DeletedSecret, KeyVaultRole, newHexToken, SecretVersion, Vault } from '../state';
import { RESOURCES } from '../tokens';
import type { NameOrderedMap } from './keyvault-store';

/** api-versions this emulator serves (the SDK sends `api%2Dversion`; URLSearchParams decodes it). */
export const KEY_VAULT_API_VERSIONS = ['7.6', '2025-07-01', '2026-04-01'] as const;

const LIMITS = {
  valueBytes: 25_600,
  tags: 15,
  tagName: 512,
  tagValue: 256,
  pageSize: 25,
} as const;

/** Soft delete is always on in Azure; 90 days is the default retention. */
const RECOVERY = { recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 } as const;
const DAY_SECONDS = 24 * 3600;

/** Same ARM coordinates as the vaults' Event Grid topics (eventgrid.ts). */
const ARM = {
  subscription: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'local-rg',
  location: 'westeurope',
} as const;

const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;

/** RBAC data actions of the secrets API. */
const ACTIONS = {
  getSecret: 'Microsoft.KeyVault/vaults/secrets/getSecret/action',
  readMetadata: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
  setSecret: 'Microsoft.KeyVault/vaults/secrets/setSecret/action',
  update: 'Microsoft.KeyVault/vaults/secrets/update/action',
  delete: 'Microsoft.KeyVault/vaults/secrets/delete',
  recover: 'Microsoft.KeyVault/vaults/secrets/recover/action',
  purge: 'Microsoft.KeyVault/vaults/secrets/purge/action',
} as const;
type Action = keyof typeof ACTIONS;

const ROLE_ACTIONS: Record<KeyVaultRole, readonly Action[]> = {
  'Key Vault Secrets Officer': Object.keys(ACTIONS) as Action[],
  'Key Vault Secrets User': ['getSecret', 'readMetadata'],
  'Key Vault Reader': ['readMetadata'],
  'Key Vault credential rotator': ['getSecret', 'readMetadata', 'setSecret', 'update'],
};

/** The data actions a role grants (tests/infra compares the rotator's with the deployed role). */
export const roleDataActions = (role: KeyVaultRole): string[] => ROLE_ACTIONS[role].map((a) => ACTIONS[a]);

const MESSAGES = {
  missingToken: 'AKV10000: Request is missing a Bearer or PoP token.',
  malformedToken: "[BearerReadAccessTokenFailed] Error validating token: 'S2S12005'.",
  expiredToken: "[TokenExpired] Error validating token: 'S2S12086'.",
  badSignature: 'AKV10046: Unable to resolve the key used for signature validation.',
  // Key Vault answers every body validation failure with this terse message.
  invalidProperty: 'Property has invalid value\r\n',
  disabled: 'Operation get is not allowed on a disabled secret.',
} as const;

function kvError(status: number, code: string, message: string, innerCode?: string): HttpError {
  return new HttpError(status, {
    error: { code, message, ...(innerCode ? { innererror: { code: innerCode } } : {}) },
  });
}
const badParameter = (message: string) => kvError(400, 'BadParameter', message);

const tagsSchema = z
  .record(z.string().max(LIMITS.tagName), z.string().max(LIMITS.tagValue))
  .refine((tags) => Object.keys(tags).length <= LIMITS.tags);
const attributesSchema = z.object({
  enabled: z.boolean().nullish(),
  nbf: z.number().int().nullish(),
  exp: z.number().int().nullish(),
});
const updateSchema = z.object({
  contentType: z.string().nullish(),
  attributes: attributesSchema.nullish(),
  tags: tagsSchema.nullish(),
});
const setSchema = updateSchema.extend({
  value: z.string().refine((v) => Buffer.byteLength(v, 'utf8') <= LIMITS.valueBytes),
});

function parseBody<T>(req: EmulatorRequest, schema: z.ZodType<T>): T {
  const result = schema.safeParse(readJson(req, badParameter));
  if (!result.success) throw badParameter(MESSAGES.invalidProperty);
  return result.data;
}

/** Who is calling, as Key Vault sees it in the token. */
interface Caller {
  appId: string;
  objectId: string;
}

/** One request after api-version, authentication and RBAC checks. */
interface Call {
  req: EmulatorRequest;
  apiVersion: string;
  /** Secret name from the path ('' on vault-level routes). */
  name: string;
  version?: string;
}

const last = (versions: SecretVersion[]): SecretVersion => versions[versions.length - 1] as SecretVersion;

/** Page size and position for list routes: `maxresults` (≤ 25) and an opaque `$skiptoken`. */
function pageWindow(req: EmulatorRequest): { start: number; size: number } {
  const raw = req.query.get('maxresults');
  const size = raw === null ? LIMITS.pageSize : Number(raw);
  if (!Number.isInteger(size) || size < 1 || size > LIMITS.pageSize) {
    throw badParameter(
      `invalid maxresults value '${raw}': it must be an integer between 1 and ${LIMITS.pageSize}.`,
    );
  }
  const token = req.query.get('$skiptoken');
  if (token === null) return { start: 0, size };
  try {
    const marker = (JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { NextMarker?: unknown })
      .NextMarker;
    const start = Number(marker);
    if (!Number.isInteger(start) || start < 0) throw new Error('bad marker');
    return { start, size };
  } catch {
    throw badParameter('The $skiptoken is invalid.');
  }
}

const skipToken = (start: number) =>
  Buffer.from(JSON.stringify({ NextMarker: String(start), TargetLocation: 0 })).toString('base64url');

/** One vault's Key Vault secrets API (its own origin). */
export function keyVaultRouter(em: Emulator, vault: Vault): Router {
  const secretId = (name: string, version?: string) =>
    `${vault.url}/secrets/${name}${version ? `/${version}` : ''}`;

  const attributes = (v: SecretVersion) => ({
    enabled: v.enabled,
    nbf: v.nbf,
    exp: v.exp,
    created: v.created,
    updated: v.updated,
    ...RECOVERY,
  });

  /** A SecretItem (no version in the id) or, with the version, a SecretBundle without its value. */
  const properties = (name: string, v: SecretVersion, withVersion: boolean) => ({
    id: secretId(name, withVersion ? v.version : undefined),
    attributes: attributes(v),
    // Like Key Vault, leave tags and contentType out when there are none.
    ...(Object.keys(v.tags).length > 0 ? { tags: v.tags } : {}),
    ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
  });

  const bundle = (name: string, v: SecretVersion) => ({ value: v.value, ...properties(name, v, true) });

  const deletedBundle = (name: string, d: DeletedSecret, withVersion: boolean) => ({
    recoveryId: `${vault.url}/deletedsecrets/${name}`,
    deletedDate: d.deletedDate,
    scheduledPurgeDate: d.scheduledPurgeDate,
    ...properties(name, last(d.versions), withVersion),
  });

  /**
   * One page, `{value, nextLink}` with an absolute nextLink, as Key Vault pages every list. Only that
   * page is read and rendered, so listing a large vault costs the same per page however large it is.
   */
  const page = <T, R>(
    call: Call,
    total: number,
    read: (start: number, end: number) => readonly T[],
    render: (item: T) => R,
  ) => {
    const { start, size } = pageWindow(call.req);
    const end = start + size;
    const nextLink =
      end < total
        ? `${vault.url}${call.req.path}?api-version=${call.apiVersion}&$skiptoken=${skipToken(end)}&maxresults=${size}`
        : null;
    return json(200, { value: read(start, end).map(render), nextLink });
  };

  /** A NameOrderedMap's page, in Key Vault's case-insensitive ordinal order. */
  const listed = <T, R>(call: Call, map: NameOrderedMap<T>, render: (entry: [string, T]) => R) =>
    page(call, map.size, (start, end) => map.range(start, end), render);

  const notFound = (what: string) =>
    kvError(
      404,
      'SecretNotFound',
      `A secret with (name/id) ${what} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
    );
  const deletedNotFound = (name: string) =>
    kvError(404, 'SecretNotFound', `Deleted Secret not found: ${name}`);

  const active = (name: string): { key: string; versions: SecretVersion[] } => {
    const key = vault.secrets.keyOf(name);
    const versions = key === undefined ? undefined : vault.secrets.get(key);
    if (key === undefined || !versions?.length) throw notFound(name);
    return { key, versions };
  };

  /** The addressed version, or the latest when the path has none. */
  const addressed = (call: Call): { key: string; secret: SecretVersion } => {
    const { key, versions } = active(call.name);
    if (!call.version) return { key, secret: last(versions) };
    const wanted = call.version.toLowerCase();
    const secret = versions.find((v) => v.version === wanted);
    if (!secret) throw notFound(`${call.name}/${call.version}`);
    return { key, secret };
  };

  const deleted = (name: string): { key: string; secret: DeletedSecret } => {
    const key = vault.deleted.keyOf(name);
    const secret = key === undefined ? undefined : vault.deleted.get(key);
    if (key === undefined || !secret) throw deletedNotFound(name);
    return { key, secret };
  };

  /** Soft-deleted secrets disappear at their scheduled purge date (emulated clock). */
  const purgeDue = () => {
    const now = em.clock.nowSeconds();
    for (const [name, d] of vault.deleted) if (d.scheduledPurgeDate <= now) vault.deleted.delete(name);
  };

  // --- request checks -------------------------------------------------------------------------

  const checkApiVersion = (req: EmulatorRequest): string => {
    const version = req.query.get('api-version');
    if (version === null) throw badParameter('The api-version query parameter (?api-version=) is required.');
    if (!(KEY_VAULT_API_VERSIONS as readonly string[]).includes(version)) {
      const latest = KEY_VAULT_API_VERSIONS[KEY_VAULT_API_VERSIONS.length - 1];
      throw badParameter(
        `The specified version (${version}) is not recognized. Consider using the latest supported version (${latest}).`,
      );
    }
    return version;
  };

  /** 401 with the challenge the SDK reads the tenant and resource from. */
  const unauthorized = (message: string) =>
    new HttpError(
      401,
      { error: { code: 'Unauthorized', message } },
      {
        'www-authenticate': `Bearer authorization="https://login.windows.net/${em.state.tenantId}", resource="${RESOURCES.keyVault}"`,
      },
    );

  /** Why Key Vault refuses a token, in the order it checks; undefined if the token itself is sound. */
  const tokenProblem = (token: string): string | undefined => {
    let claims: JwtClaims;
    try {
      claims = decodeJwt(token);
    } catch {
      return MESSAGES.malformedToken;
    }
    if (claims.iss !== em.tokens.issuer) {
      return `AKV10032: Invalid issuer. Expected one of ${em.tokens.issuer}, found ${String(claims.iss)}.`;
    }
    if (!audienceMatches(claims, [RESOURCES.keyVault])) {
      const found = Array.isArray(claims.aud) ? claims.aud.join(', ') : String(claims.aud);
      return `AKV10022: Invalid audience. Expected ${RESOURCES.keyVault}, found: ${found}.`;
    }
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.exp !== 'number' || claims.exp <= now) return MESSAGES.expiredToken;
    try {
      em.tokens.key.verify(token, now);
    } catch {
      return MESSAGES.badSignature;
    }
    return undefined;
  };

  /**
   * Tokens already validated, until they expire: Key Vault caches validation too, and checking an RS256
   * signature on every request was most of this emulator's own cost per request. Bounded.
   */
  const validated = new Map<string, Caller & { exp: number }>();

  const authenticate = (req: EmulatorRequest): Caller => {
    const token = bearerToken(req);
    if (!token) throw unauthorized(MESSAGES.missingToken);
    const known = validated.get(token);
    if (known && known.exp > Date.now() / 1000) return known;
    let caller: Caller;
    try {
      const { principal } = em.tokens.verify(token, [RESOURCES.keyVault]);
      caller = { appId: principal.appId, objectId: principal.objectId };
    } catch (e) {
      if (!(e instanceof JwtError)) throw e;
      const problem = tokenProblem(token);
      if (problem) throw unauthorized(problem);
      // A sound token whose principal has since been deleted: Key Vault does not look principals
      // up, it just finds no role assignment for the token's oid (403 below).
      const claims = decodeJwt(token);
      caller = { appId: String(claims.appid), objectId: String(claims.oid) };
    }
    if (validated.size >= 64) validated.delete(validated.keys().next().value as string);
    validated.set(token, { ...caller, exp: Number(decodeJwt(token).exp) });
    return caller;
  };

  const authorize = (caller: Caller, action: Action, name: string) => {
    const roles = vault.roles.get(caller.objectId) ?? new Set<KeyVaultRole>();
    if ([...roles].some((role) => ROLE_ACTIONS[role].includes(action))) return;
    const resource = `/subscriptions/${ARM.subscription}/resourcegroups/${ARM.resourceGroup}/providers/microsoft.keyvault/vaults/${vault.name}${name ? `/secrets/${name}` : ''}`;
    const message = [
      'Caller is not authorized to perform action on resource.',
      'If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.',
      `Caller: appid=${caller.appId};oid=${caller.objectId};iss=${em.tokens.issuer}`,
      `Action: '${ACTIONS[action]}'`,
      `Resource: '${resource.toLowerCase()}'`,
      'Assignment: (not found)',
      'DenyAssignmentId: null',
      'DecisionReason: null ',
      `Vault: ${vault.name};location=${ARM.location}`,
      '',
    ].join('\r\n');
    throw kvError(403, 'Forbidden', message, 'ForbiddenByRbac');
  };

  /** Runs the checks every Key Vault request goes through, in Key Vault's order, then the operation. */
  const handle =
    (action: Action, operation: (call: Call) => EmulatorResponse): Handler =>
    (req) => {
      purgeDue();
      const apiVersion = checkApiVersion(req);
      // Before anything that reads the path or body: the SDK's first request is an empty probe.
      const caller = authenticate(req);
      // Authenticated transactions count against the vault's limits; a refused one counts nowhere.
      em.keyVaultThrottle.take(vault.name, action === 'setSecret');
      const name = req.params.name ?? '';
      if (name && !SECRET_NAME.test(name))
        throw badParameter(`The request URI contains an invalid name: ${name}`);
      authorize(caller, action, name);
      return operation({ req, apiVersion, name, version: req.params.version });
    };

  // --- operations -------------------------------------------------------------------------------

  const setSecret = (call: Call) => {
    const body = parseBody(call.req, setSchema);
    if (vault.deleted.keyOf(call.name) !== undefined) {
      throw kvError(
        409,
        'Conflict',
        `Secret ${call.name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
      );
    }
    const key = vault.secrets.keyOf(call.name) ?? call.name;
    const now = em.clock.nowSeconds();
    const secret: SecretVersion = {
      version: newHexToken(16),
      value: body.value,
      contentType: body.contentType ?? undefined,
      enabled: body.attributes?.enabled ?? true,
      nbf: body.attributes?.nbf ?? undefined,
      exp: body.attributes?.exp ?? undefined,
      created: now,
      updated: now,
      tags: body.tags ?? {},
      emitted: { nearExpiry: false, expired: false },
    };
    vault.secrets.set(key, [...(vault.secrets.get(key) ?? []), secret]);
    em.events.emit(vault, 'Microsoft.KeyVault.SecretNewVersionCreated', key, secret.version);
    return json(200, bundle(key, secret));
  };

  const getSecret = (call: Call) => {
    const { key, secret } = addressed(call);
    if (!secret.enabled) throw kvError(403, 'Forbidden', MESSAGES.disabled, 'SecretDisabled');
    return json(200, bundle(key, secret));
  };

  /** Attributes, tags and content type only; the value of a version never changes. */
  const updateSecret = (call: Call) => {
    const body = parseBody(call.req, updateSchema);
    const { key, secret } = addressed(call);
    const attrs = body.attributes;
    if (body.contentType !== undefined) secret.contentType = body.contentType ?? undefined;
    if (body.tags !== undefined) secret.tags = body.tags ?? {};
    if (typeof attrs?.enabled === 'boolean') secret.enabled = attrs.enabled;
    if (attrs?.nbf !== undefined) secret.nbf = attrs.nbf ?? undefined;
    if (attrs?.exp !== undefined && (attrs.exp ?? undefined) !== secret.exp) {
      secret.exp = attrs.exp ?? undefined;
      // A new expiry date gets its own near-expiry and expired events.
      secret.emitted = { nearExpiry: false, expired: false };
    }
    secret.updated = em.clock.nowSeconds();
    return json(200, properties(key, secret, true));
  };

  const deleteSecret = (call: Call) => {
    const { key, versions } = active(call.name);
    const now = em.clock.nowSeconds();
    const gone: DeletedSecret = {
      versions,
      deletedDate: now,
      scheduledPurgeDate: now + RECOVERY.recoverableDays * DAY_SECONDS,
    };
    vault.secrets.delete(key);
    vault.deleted.set(key, gone);
    return json(200, deletedBundle(key, gone, true));
  };

  const recoverSecret = (call: Call) => {
    const { key, secret } = deleted(call.name);
    vault.deleted.delete(key);
    vault.secrets.set(key, secret.versions);
    return json(200, properties(key, last(secret.versions), true));
  };

  const purgeSecret = (call: Call) => {
    vault.deleted.delete(deleted(call.name).key);
    return { status: 204 };
  };

  const listSecrets = (call: Call) =>
    listed(call, vault.secrets, ([name, versions]) => properties(name, last(versions), false));

  const listVersions = (call: Call) => {
    // Key Vault lists no versions (rather than 404) for a name it does not know.
    const key = vault.secrets.keyOf(call.name) ?? call.name;
    const versions = vault.secrets.get(key) ?? [];
    return page(
      call,
      versions.length,
      (start, end) => versions.slice(start, end),
      (v) => properties(key, v, true),
    );
  };

  const listDeleted = (call: Call) =>
    listed(call, vault.deleted, ([name, d]) => deletedBundle(name, d, false));

  const getDeleted = (call: Call) => {
    const { key, secret } = deleted(call.name);
    return json(200, deletedBundle(key, secret, true));
  };

  const router = new Router();
  router
    .add('GET', '/secrets', handle('readMetadata', listSecrets))
    .add('GET', '/secrets/:name/versions', handle('readMetadata', listVersions))
    .add('PUT', '/secrets/:name/?', handle('setSecret', setSecret))
    .add('GET', '/secrets/:name/?', handle('getSecret', getSecret))
    .add('GET', '/secrets/:name/:version', handle('getSecret', getSecret))
    .add('PATCH', '/secrets/:name/?', handle('update', updateSecret))
    .add('PATCH', '/secrets/:name/:version', handle('update', updateSecret))
    .add('DELETE', '/secrets/:name/?', handle('delete', deleteSecret))
    .add('GET', '/deletedsecrets', handle('readMetadata', listDeleted))
    .add('GET', '/deletedsecrets/:name', handle('readMetadata', getDeleted))
    .add('DELETE', '/deletedsecrets/:name', handle('purge', purgeSecret))
    .add('POST', '/deletedsecrets/:name/recover', handle('recover', recoverSecret));
  return router;
}
