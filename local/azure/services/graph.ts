import { randomInt, randomUUID } from 'node:crypto';
import type { Emulator } from '../server';
import {
  bearerToken,
  HttpError,
  json,
  readJson,
  Router,
  type EmulatorRequest,
  type EmulatorResponse,
} from '../http';
import { JwtError } from '../jwt';
import { AppRegistration, newId, sha256, type PasswordCredential, type Principal } from '../state';
import { RESOURCES } from '../tokens';

const BASE = '/graph/v1.0';
/** Microsoft Graph's own app id: tokens may name it as the audience instead of the URI. */
const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';

/** Application permissions (the token's `roles`) each operation accepts. */
const PERMISSIONS = {
  readApps: [
    'Application.Read.All',
    'Application.ReadWrite.OwnedBy',
    'Application.ReadWrite.All',
    'Directory.Read.All',
    'Directory.ReadWrite.All',
  ],
  writeAnyApp: ['Application.ReadWrite.All', 'Directory.ReadWrite.All'],
  writeOwnedApp: ['Application.ReadWrite.OwnedBy'],
  sendMail: ['Mail.Send'],
} as const;

/** The content type Graph answers entities and collections with. */
const ODATA_JSON =
  'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8';

const LIMITS = {
  defaultPageSize: 100,
  maxPageSize: 999,
  secretLifetimeYears: 2,
  /** Apps that allow personal Microsoft accounts hold at most two client secrets. */
  personalAccountPasswords: 2,
  /** Otherwise: Entra's global limit of about 1000 items across an app object's collections. */
  appObjectItems: 1000,
} as const;

const PERSONAL_AUDIENCES: readonly string[] = [
  'AzureADandPersonalMicrosoftAccount',
  'PersonalMicrosoftAccount',
];
const passwordLimit = (app: AppRegistration) =>
  PERSONAL_AUDIENCES.includes(app.signInAudience) ? LIMITS.personalAccountPasswords : LIMITS.appObjectItems;

/** The properties an application object has here; `$select` may name only these. */
const APP_PROPERTIES = ['id', 'appId', 'displayName', 'passwordCredentials', 'tags'] as const;
type AppProperty = (typeof APP_PROPERTIES)[number];

/** Characters of an Entra client secret (`[A-Za-z0-9_.~-]`). */
const SECRET_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-';

const MESSAGES = {
  insufficientPrivileges: 'Insufficient privileges to complete the operation.',
  notFound: (id: string) =>
    `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
  badJson:
    'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.',
} as const;

interface Call {
  req: EmulatorRequest;
  caller: Principal;
  roles: Set<string>;
  /** A Graph error `{error:{code, message, innerError:{date, request-id, client-request-id}}}`. */
  fail(status: number, code: string, message: string): HttpError;
}

/** Microsoft Graph under `/graph/v1.0`: applications, addPassword, removePassword, sendMail. */
export function graphRoutes(em: Emulator, router: Router): void {
  /** Wraps a handler with Graph's request ids, bearer authentication and error shape. */
  const graph =
    (handler: (call: Call) => EmulatorResponse) =>
    (req: EmulatorRequest): EmulatorResponse => {
      const requestId = randomUUID();
      const clientHeader = req.headers['client-request-id'];
      const clientRequestId = typeof clientHeader === 'string' ? clientHeader : requestId;
      const headers = { 'request-id': requestId, 'client-request-id': clientRequestId };
      const fail = (status: number, code: string, message: string, extra: Record<string, string> = {}) =>
        new HttpError(
          status,
          {
            error: {
              code,
              message,
              innerError: {
                // Graph's innerError date has no fraction and no zone.
                date: new Date(em.clock.now()).toISOString().slice(0, 19),
                'request-id': requestId,
                'client-request-id': clientRequestId,
              },
            },
          },
          { ...headers, ...extra },
        );
      const token = bearerToken(req);
      const challenge = {
        'www-authenticate': `Bearer realm="", authorization_uri="${em.url}/common/oauth2/authorize", client_id="${GRAPH_APP_ID}"`,
      };
      if (!token) throw fail(401, 'InvalidAuthenticationToken', 'Access token is empty.', challenge);
      let verified;
      try {
        verified = em.tokens.verify(token, [RESOURCES.graph, GRAPH_APP_ID]);
      } catch (e) {
        if (!(e instanceof JwtError)) throw e;
        throw fail(401, 'InvalidAuthenticationToken', tokenFailure(e), challenge);
      }
      const claimed = verified.claims.roles;
      const roles = new Set(Array.isArray(claimed) ? claimed.filter((r) => typeof r === 'string') : []);
      const response = handler({ req, caller: verified.principal, roles, fail });
      const type: Record<string, string> = response.body === undefined ? {} : { 'content-type': ODATA_JSON };
      return { ...response, headers: { ...headers, ...type, ...response.headers } };
    };

  const context = (fragment: string) => `${em.url}${BASE}/$metadata#${fragment}`;

  /** `/applications/{id}` or `/applications(appId='{appId}')`, as the route captured it. */
  const findApp = (call: Call): AppRegistration | undefined => {
    const { id, appIdKey } = call.req.params;
    if (id !== undefined) {
      if (!isGuid(id)) throw call.fail(400, 'Request_BadRequest', `Invalid object identifier '${id}'.`);
      return em.state.apps.find((a) => sameId(a.objectId, id));
    }
    const m = /^applications\(appId='([^']*)'\)$/.exec(appIdKey ?? '');
    if (!m) throw call.fail(400, 'BadRequest', `Resource not found for the segment '${appIdKey}'.`);
    return em.state.apps.find((a) => sameId(a.appId, m[1] as string));
  };
  const appRef = (call: Call) => {
    const { id, appIdKey } = call.req.params;
    return id ?? /appId='([^']*)'/.exec(appIdKey ?? '')?.[1] ?? '';
  };
  const hasAny = (call: Call, roles: readonly string[]) => roles.some((r) => call.roles.has(r));

  /** Reads: any application permission; an app may always read its own application object. */
  const readableApp = (call: Call): AppRegistration => {
    const app = findApp(call);
    const own = app?.servicePrincipal.objectId === call.caller.objectId;
    if (!own && !hasAny(call, PERMISSIONS.readApps))
      throw call.fail(403, 'Authorization_RequestDenied', MESSAGES.insufficientPrivileges);
    if (!app) throw call.fail(404, 'Request_ResourceNotFound', MESSAGES.notFound(appRef(call)));
    return app;
  };

  /**
   * Writes: Application.ReadWrite.All on any app; Application.ReadWrite.OwnedBy only on apps the caller
   * owns. Graph lets OwnedBy read every app, so a write to one it does not own is a 403, not a 404.
   */
  const writableApp = (call: Call): AppRegistration => {
    const all = hasAny(call, PERMISSIONS.writeAnyApp);
    const owned = hasAny(call, PERMISSIONS.writeOwnedApp);
    if (!all && !owned) throw call.fail(403, 'Authorization_RequestDenied', MESSAGES.insufficientPrivileges);
    const app = findApp(call);
    if (!app) throw call.fail(404, 'Request_ResourceNotFound', MESSAGES.notFound(appRef(call)));
    if (!all && !app.owners.has(call.caller.objectId))
      throw call.fail(403, 'Authorization_RequestDenied', MESSAGES.insufficientPrivileges);
    return app;
  };

  const listApps = (call: Call): EmulatorResponse => {
    if (!hasAny(call, PERMISSIONS.readApps))
      throw call.fail(403, 'Authorization_RequestDenied', MESSAGES.insufficientPrivileges);
    const q = call.req.query;
    const select = parseSelect(call, q.get('$select'));
    const filter = parseFilter(call, q.get('$filter'));
    const top = parseTop(call, q.get('$top'));
    const skip = parseSkipToken(call, q.get('$skiptoken') ?? q.get('$skipToken'));
    const matching = em.state.apps.filter(filter);
    const page = matching.slice(skip, skip + top);
    const body: Record<string, unknown> = {
      '@odata.context': context(select ? `applications(${select.join(',')})` : 'applications'),
    };
    if (skip + top < matching.length) {
      // Graph's nextLink is absolute and repeats the query options, with an opaque $skiptoken.
      const options: [string, string | null][] = [
        ['$select', q.get('$select')],
        ['$filter', q.get('$filter')],
        ['$top', q.get('$top')],
        ['$skiptoken', Buffer.from(JSON.stringify({ offset: skip + top })).toString('base64url')],
      ];
      const query = options
        .filter((o): o is [string, string] => o[1] !== null)
        .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
        .join('&');
      body['@odata.nextLink'] = `${em.url}${BASE}/applications?${query}`;
    }
    body.value = page.map((a) => applicationJson(a, select));
    return json(200, body);
  };

  const getApp = (call: Call): EmulatorResponse => {
    const app = readableApp(call);
    const select = parseSelect(call, call.req.query.get('$select'));
    return json(200, {
      '@odata.context': context(
        select ? `applications(${select.join(',')})/$entity` : 'applications/$entity',
      ),
      ...applicationJson(app, select),
    });
  };

  const addPassword = (call: Call): EmulatorResponse => {
    const app = writableApp(call);
    const body = readJson<{ passwordCredential?: Record<string, unknown> }>(call.req, () =>
      call.fail(400, 'BadRequest', MESSAGES.badJson),
    );
    const input = body.passwordCredential ?? {};
    const start =
      input.startDateTime === undefined || input.startDateTime === null
        ? em.clock.now()
        : parseDateTime(call, input.startDateTime);
    const end =
      input.endDateTime === undefined || input.endDateTime === null
        ? addYears(start, LIMITS.secretLifetimeYears)
        : parseDateTime(call, input.endDateTime);
    if (end <= start) {
      throw call.fail(
        400,
        'Request_BadRequest',
        "Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'.",
      );
    }
    // Expired credentials count too: they stay on the app object until removed.
    if (app.passwordCredentials.length >= passwordLimit(app)) {
      throw call.fail(
        400,
        'Request_BadRequest',
        "Invalid value specified for property 'passwordCredentials' of resource 'Application'.",
      );
    }
    const displayName = typeof input.displayName === 'string' ? input.displayName : null;
    const secretText = newClientSecret();
    const credential: PasswordCredential = {
      keyId: newId(),
      displayName,
      hint: secretText.slice(0, 3),
      // Like Entra, only a hash is kept: the secret text is returned once, here.
      secretHash: sha256(secretText),
      startDateTime: new Date(start).toISOString(),
      endDateTime: new Date(end).toISOString(),
    };
    app.passwordCredentials.push(credential);
    return json(200, {
      '@odata.context': context('microsoft.graph.passwordCredential'),
      customKeyIdentifier: null,
      displayName: credential.displayName,
      endDateTime: credential.endDateTime,
      hint: credential.hint,
      keyId: credential.keyId,
      secretText,
      startDateTime: credential.startDateTime,
    });
  };

  const removePassword = (call: Call): EmulatorResponse => {
    const app = writableApp(call);
    const body = readJson<{ keyId?: unknown }>(call.req, () =>
      call.fail(400, 'BadRequest', MESSAGES.badJson),
    );
    const keyId = body.keyId;
    if (typeof keyId !== 'string' || !isGuid(keyId)) {
      throw call.fail(
        400,
        'BadRequest',
        `Cannot convert the literal '${String(keyId)}' to the expected type 'Edm.Guid'.`,
      );
    }
    const index = app.passwordCredentials.findIndex((p) => sameId(p.keyId, keyId));
    if (index < 0)
      throw call.fail(400, 'Request_BadRequest', `No password credential found with keyId '${keyId}'.`);
    app.passwordCredentials.splice(index, 1);
    return { status: 204 };
  };

  const sendMail = (call: Call): EmulatorResponse => {
    // sendMail is served by Exchange Online, whose errors differ from the directory's.
    if (!hasAny(call, PERMISSIONS.sendMail))
      throw call.fail(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
    const ref = call.req.params.user ?? '';
    const user = em.state.users.find(
      (u) => sameId(u.id, ref) || u.userPrincipalName.toLowerCase() === ref.toLowerCase(),
    );
    if (!user) throw call.fail(404, 'ErrorInvalidUser', `The requested user '${ref}' is invalid.`);
    const body = readJson<{ message?: MailInput }>(call.req, () =>
      call.fail(400, 'BadRequest', MESSAGES.badJson),
    );
    const message = body.message;
    if (!message || typeof message !== 'object')
      throw call.fail(400, 'ErrorInvalidRequest', 'Empty Payload. JSON content expected.');
    const addresses = (list: unknown) =>
      (Array.isArray(list) ? (list as MailRecipient[]) : []).map((r) => r?.emailAddress?.address ?? '');
    const to = addresses(message.toRecipients);
    const all = [...to, ...addresses(message.ccRecipients), ...addresses(message.bccRecipients)];
    if (all.length === 0) {
      throw call.fail(
        400,
        'ErrorInvalidRecipients',
        "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
      );
    }
    const unresolved = all.find((a) => !/^[^@\s]+@[^@\s]+$/.test(a));
    if (unresolved !== undefined) {
      throw call.fail(
        400,
        'ErrorInvalidRecipients',
        `At least one recipient isn't valid., Recipient '${unresolved}' isn't resolved. All recipients must be resolved before a message can be submitted.`,
      );
    }
    em.state.outbox.push({
      from: user.userPrincipalName,
      subject: typeof message.subject === 'string' ? message.subject : '',
      contentType: typeof message.body?.contentType === 'string' ? message.body.contentType : 'text',
      content: typeof message.body?.content === 'string' ? message.body.content : '',
      to,
      at: new Date(em.clock.now()).toISOString(),
    });
    return { status: 202 };
  };

  router
    .add('GET', `${BASE}/applications`, graph(listApps))
    .add('GET', `${BASE}/applications/:id`, graph(getApp))
    .add('POST', `${BASE}/applications/:id/addPassword`, graph(addPassword))
    .add('POST', `${BASE}/applications/:id/removePassword`, graph(removePassword))
    // `/applications(appId='…')` is one path segment, so it gets its own templates.
    .add('GET', `${BASE}/:appIdKey`, graph(getApp))
    .add('POST', `${BASE}/:appIdKey/addPassword`, graph(addPassword))
    .add('POST', `${BASE}/:appIdKey/removePassword`, graph(removePassword))
    .add('POST', `${BASE}/users/:user/sendMail`, graph(sendMail));

  // Reads the operator CLI makes (inventory, doctor): an app's federated credentials, and the
  // applications a service principal (by `servicePrincipals(appId='…')`) owns.
  router
    .add(
      'GET',
      `${BASE}/applications/:id/federatedIdentityCredentials`,
      graph((call) => {
        const app = readableApp(call);
        return json(200, {
          value: app.federatedCredentials.map((f, i) => ({
            id: `${app.objectId}-${i}`,
            name: `fic-${i}`,
            ...f,
          })),
        });
      }),
    )
    .add(
      'GET',
      `${BASE}/:spKey/ownedObjects`,
      graph((call) => {
        const appId = /^servicePrincipals\(appId='([^']*)'\)$/.exec(call.req.params.spKey ?? '')?.[1];
        if (!hasAny(call, PERMISSIONS.readApps) && !sameId(call.caller.appId, appId ?? ''))
          throw call.fail(403, 'Authorization_RequestDenied', MESSAGES.insufficientPrivileges);
        const owner = [...em.state.managedIdentities, ...em.state.apps.map((a) => a.servicePrincipal)].find(
          (p) => appId !== undefined && sameId(p.appId, appId),
        );
        if (!owner)
          throw call.fail(404, 'Request_ResourceNotFound', MESSAGES.notFound(call.req.params.spKey ?? ''));
        const owned = em.state.apps.filter((a) => a.owners.has(owner.objectId));
        return json(200, {
          value: owned.map((a) => ({
            '@odata.type': '#microsoft.graph.application',
            ...applicationJson(a, ['id', 'appId', 'displayName']),
          })),
        });
      }),
    );
}

interface MailRecipient {
  emailAddress?: { address?: string };
}

interface MailInput {
  subject?: unknown;
  body?: { contentType?: unknown; content?: unknown };
  toRecipients?: unknown;
  ccRecipients?: unknown;
  bccRecipients?: unknown;
}

function tokenFailure(e: JwtError): string {
  if (e.message === 'token is expired') return 'Lifetime validation failed, the token is expired.';
  if (e.message.startsWith('audience')) return 'Access token validation failure. Invalid audience.';
  return 'Access token validation failure.';
}

function applicationJson(app: AppRegistration, select?: AppProperty[]): Record<string, unknown> {
  const full: Record<AppProperty, unknown> = {
    id: app.objectId,
    appId: app.appId,
    displayName: app.displayName,
    passwordCredentials: app.passwordCredentials.map((p) => ({
      customKeyIdentifier: null,
      displayName: p.displayName,
      endDateTime: p.endDateTime,
      hint: p.hint,
      keyId: p.keyId,
      secretText: null,
      startDateTime: p.startDateTime,
    })),
    tags: [...app.tags],
  };
  if (!select) return full;
  return Object.fromEntries(select.map((p) => [p, full[p]]));
}

function parseSelect(call: Call, value: string | null): AppProperty[] | undefined {
  if (value === null) return undefined;
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!(APP_PROPERTIES as readonly string[]).includes(n)) {
      throw call.fail(
        400,
        'Request_BadRequest',
        `Could not find a property named '${n}' on type 'microsoft.graph.application'.`,
      );
    }
  }
  return names as AppProperty[];
}

/** Supports `{id|appId|displayName} eq '{value}'`, which is what a rotator needs. */
function parseFilter(call: Call, value: string | null): (app: AppRegistration) => boolean {
  if (value === null) return () => true;
  const m = /^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$/.exec(value);
  if (!m) throw call.fail(400, 'BadRequest', `Invalid filter clause: '${value}'.`);
  const property = m[1] as string;
  const wanted = (m[2] as string).replace(/''/g, "'").toLowerCase();
  const read: Record<string, (a: AppRegistration) => string> = {
    id: (a) => a.objectId,
    appId: (a) => a.appId,
    displayName: (a) => a.displayName,
  };
  const get = read[property];
  if (!get) {
    throw call.fail(
      400,
      'Request_UnsupportedQuery',
      `Unsupported or invalid query filter clause specified for property '${property}' of resource 'Application'.`,
    );
  }
  return (a) => get(a).toLowerCase() === wanted;
}

function parseTop(call: Call, value: string | null): number {
  if (value === null) return LIMITS.defaultPageSize;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > LIMITS.maxPageSize) {
    throw call.fail(
      400,
      'Request_BadRequest',
      `Invalid page size specified: '${value}'. Must be between 1 and ${LIMITS.maxPageSize} inclusive.`,
    );
  }
  return n;
}

function parseSkipToken(call: Call, value: string | null): number {
  if (value === null) return 0;
  try {
    const { offset } = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as { offset?: unknown };
    if (typeof offset === 'number' && Number.isInteger(offset) && offset >= 0) return offset;
  } catch {
    // falls through to Graph's answer for a token it cannot use
  }
  throw call.fail(
    400,
    'Directory_ExpiredPageToken',
    'The specified page token value has expired and can no longer be included in your request.',
  );
}

/** An Edm.DateTimeOffset: ISO 8601 with a zone. */
function parseDateTime(call: Call, value: unknown): number {
  const ms =
    typeof value === 'string' &&
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value)
      ? Date.parse(value)
      : NaN;
  if (Number.isNaN(ms)) {
    throw call.fail(
      400,
      'BadRequest',
      `Cannot convert the literal '${String(value)}' to the expected type 'Edm.DateTimeOffset'.`,
    );
  }
  return ms;
}

function addYears(ms: number, years: number): number {
  const d = new Date(ms);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d.getTime();
}

/**
 * A secret shaped like Entra's: 40 characters, three random ones, then the `8Q~` marker that secret
 * scanners look for, then 34 more.
 */
function newClientSecret(): string {
  const pick = (n: number) =>
    Array.from({ length: n }, () => SECRET_CHARS[randomInt(SECRET_CHARS.length)] as string).join('');
  return `${pick(3)}8Q~${pick(34)}`;
}

const isGuid = (s: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);
const sameId = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
