import type { Emulator } from '../../server';
import { HttpError, json, type EmulatorRequest, type Router } from '../../http';
import type { AccountServicePrincipal, Workspace, WorkspacePrincipal } from '../../state';
import { authorize, userName } from './common';
import { accountAdmin } from './oidc';

export const SCIM = {
  user: 'urn:ietf:params:scim:schemas:core:2.0:User',
  workspaceUser: 'urn:ietf:params:scim:schemas:extension:workspace:2.0:User',
  servicePrincipal: 'urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal',
  listResponse: 'urn:ietf:params:scim:api:messages:2.0:ListResponse',
  error: 'urn:ietf:params:scim:api:messages:2.0:Error',
} as const;

/** SCIM pages hold at most this many resources; a larger `count` is lowered to it. */
const MAX_COUNT = 100;

/**
 * A SCIM error (RFC 7644 §3.12): `{schemas:[…:Error], detail, status:"404"}`, the status as a
 * string, and `scimType` on 400s (`invalidFilter`, `invalidValue`).
 */
export function scimError(status: number, detail: string, scimType?: string): HttpError {
  return new HttpError(status, {
    schemas: [SCIM.error],
    detail,
    status: String(status),
    ...(scimType ? { scimType } : {}),
  });
}

type Attributes = Record<string, string | boolean | undefined>;
type Predicate = (resource: Attributes) => boolean;

/**
 * A SCIM filter (RFC 7644 §3.4.2.2): `eq`, `ne`, `co`, `sw`, `ew`, `pr`, combined with `and`, `or`,
 * `not (…)` and parentheses (`and` binds tighter). Attribute names and operators are
 * case-insensitive, and so are string values except `id`.
 */
export function parseScimFilter(filter: string): Predicate {
  const invalid = (why: string) => scimError(400, `Invalid filter '${filter}': ${why}.`, 'invalidFilter');
  const tokens = filter.match(/\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+/g) ?? [];
  let pos = 0;
  const peek = () => tokens[pos]?.toLowerCase();
  const next = () => {
    const t = tokens[pos++];
    if (t === undefined) throw invalid('unexpected end');
    return t;
  };

  const literal = (raw: string): string | boolean | null => {
    if (raw.startsWith('"')) return JSON.parse(raw) as string;
    if (/^(true|false)$/i.test(raw)) return raw.toLowerCase() === 'true';
    if (/^null$/i.test(raw)) return null;
    throw invalid(`${raw} is not a quoted string, true, false or null`);
  };

  const comparison = (): Predicate => {
    const attribute = next();
    if (!/^[A-Za-z][\w.]*$/.test(attribute)) throw invalid(`${attribute} is not an attribute name`);
    const op = next().toLowerCase();
    const read = (r: Attributes) => {
      const key = Object.keys(r).find((k) => k.toLowerCase() === attribute.toLowerCase());
      return key === undefined ? undefined : r[key];
    };
    if (op === 'pr') return (r) => read(r) !== undefined;
    const value = literal(next());
    const norm = (v: string) => (attribute.toLowerCase() === 'id' ? v : v.toLowerCase());
    const strings =
      (fn: (have: string, want: string) => boolean): Predicate =>
      (r) => {
        const have = read(r);
        return typeof have === 'string' && typeof value === 'string' && fn(norm(have), norm(value));
      };
    switch (op) {
      case 'eq':
        return (r) =>
          typeof value === 'string' ? strings((a, b) => a === b)(r) : (read(r) ?? null) === value;
      case 'ne':
        return (r) =>
          typeof value === 'string' ? !strings((a, b) => a === b)(r) : (read(r) ?? null) !== value;
      case 'co':
        return strings((a, b) => a.includes(b));
      case 'sw':
        return strings((a, b) => a.startsWith(b));
      case 'ew':
        return strings((a, b) => a.endsWith(b));
      default:
        throw invalid(`unsupported operator ${op}`);
    }
  };

  const atom = (): Predicate => {
    if (peek() === '(') {
      next();
      const inner = or();
      if (next() !== ')') throw invalid('missing )');
      return inner;
    }
    if (peek() === 'not') {
      next();
      if (peek() !== '(') throw invalid('not must be followed by (');
      const inner = atom();
      return (r) => !inner(r);
    }
    return comparison();
  };
  const and = (): Predicate => {
    let left = atom();
    while (peek() === 'and') {
      next();
      const l = left;
      const right = atom();
      left = (r) => l(r) && right(r);
    }
    return left;
  };
  const or = (): Predicate => {
    let left = and();
    while (peek() === 'or') {
      next();
      const l = left;
      const right = and();
      left = (r) => l(r) || right(r);
    }
    return left;
  };

  if (tokens.length === 0) throw invalid('empty filter');
  const predicate = or();
  if (pos < tokens.length) throw invalid(`unexpected ${tokens[pos]}`);
  return predicate;
}

/** A whole number query parameter, or SCIM's 400 invalidValue. */
function intParam(req: EmulatorRequest, name: string): number | undefined {
  const raw = req.query.get(name);
  if (raw === null) return undefined;
  if (!/^-?\d+$/.test(raw)) throw scimError(400, `${name} must be an integer, not '${raw}'.`, 'invalidValue');
  return Number(raw);
}

/**
 * A SCIM list response (RFC 7644 §3.4.2.4): `filter`, then `startIndex` (1-based; below 1 means 1)
 * and `count` (negative means 0, at most 100), with `totalResults` counting every match.
 */
export function scimList<T>(
  req: EmulatorRequest,
  all: T[],
  attributes: (item: T) => Attributes,
  view: (item: T) => unknown,
) {
  const filter = req.query.get('filter');
  const matches = filter === null ? all : all.filter((x) => parseScimFilter(filter)(attributes(x)));
  const startIndex = Math.max(1, intParam(req, 'startIndex') ?? 1);
  const count = Math.min(MAX_COUNT, Math.max(0, intParam(req, 'count') ?? MAX_COUNT));
  const page = matches.slice(startIndex - 1, startIndex - 1 + count);
  return json(200, {
    schemas: [SCIM.listResponse],
    totalResults: matches.length,
    startIndex,
    itemsPerPage: page.length,
    Resources: page.map(view),
  });
}

const scimUser = (p: WorkspacePrincipal) => ({
  schemas: [SCIM.user, SCIM.workspaceUser],
  id: p.id,
  userName: userName(p),
  displayName: p.displayName,
  active: p.active !== false,
  emails: p.userName ? [{ type: 'work', value: p.userName, primary: true }] : [],
  groups: p.admin ? [{ display: 'admins', type: 'direct' }] : [],
  ...(p.applicationId ? { applicationId: p.applicationId } : {}),
});

/** The workspace's SCIM API: `Me` (any token may identify itself) and `Users` (access-management). */
export function workspaceScimRoutes(em: Emulator, ws: Workspace, router: Router): void {
  router
    .add('GET', '/api/2.0/preview/scim/v2/Me', (req) =>
      json(200, scimUser(authorize(em, ws, req, undefined).principal)),
    )
    .add('GET', '/api/2.0/preview/scim/v2/Users', (req) => {
      authorize(em, ws, req, 'access-management');
      return scimList(
        req,
        ws.principals.filter((p) => p.userName !== undefined),
        (p) => ({ id: p.id, userName: p.userName, displayName: p.displayName, active: p.active !== false }),
        scimUser,
      );
    })
    .add('GET', '/api/2.0/preview/scim/v2/Users/:id', (req) => {
      authorize(em, ws, req, 'access-management');
      const p = ws.principals.find((x) => x.userName !== undefined && x.id === req.params.id);
      if (!p) throw scimError(404, `User ${req.params.id ?? ''} not found.`);
      return json(200, scimUser(p));
    });
}

const scimServicePrincipal = (sp: AccountServicePrincipal) => ({
  schemas: [SCIM.servicePrincipal],
  id: sp.id,
  applicationId: sp.applicationId,
  displayName: sp.displayName,
  active: true,
});

/** The account's SCIM service principals (account admins only). */
export function accountScimRoutes(em: Emulator, router: Router): void {
  const base = '/api/2.0/accounts/:accountId/scim/v2/ServicePrincipals';
  router
    .add('GET', base, (req) =>
      scimList(
        req,
        accountAdmin(em, req).servicePrincipals,
        (sp) => ({ id: sp.id, applicationId: sp.applicationId, displayName: sp.displayName, active: true }),
        scimServicePrincipal,
      ),
    )
    .add('GET', `${base}/:spId`, (req) => {
      const sp = accountAdmin(em, req).servicePrincipals.find((s) => s.id === req.params.spId);
      if (!sp) throw scimError(404, `Service principal ${req.params.spId ?? ''} not found.`);
      return json(200, scimServicePrincipal(sp));
    });
}
