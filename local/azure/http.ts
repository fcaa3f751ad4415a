import type { IncomingHttpHeaders } from 'node:http';

/** A parsed request as the emulated services see it. */
export interface EmulatorRequest {
  method: string;
  /** Path without query string, percent-decoded per segment by the router. */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Route parameters, e.g. `{ name: 'db-token' }` for `/secrets/:name`. */
  params: Record<string, string>;
  /** The origin the request arrived on, e.g. `https://localhost:8444`. */
  origin: string;
}

export interface EmulatorResponse {
  status: number;
  headers?: Record<string, string>;
  /** Objects are sent as JSON; strings and buffers as is. */
  body?: unknown;
}

/** Thrown by handlers; the server turns it into a response. `body` is the service's own error shape. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`);
  }
}

export type Handler = (req: EmulatorRequest) => EmulatorResponse | Promise<EmulatorResponse>;

interface Route {
  method: string;
  template: string;
  regex: RegExp;
  keys: string[];
  handler: Handler;
}

/**
 * A minimal router. Templates use `:name` for one segment and `:name*` for the rest of the path;
 * a trailing `/?` makes the trailing slash optional (Key Vault's `GET /secrets/{name}/`).
 */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, template: string, handler: Handler): this {
    const keys: string[] = [];
    const pattern = template
      .replace(/\/\?$/, '')
      .split('/')
      .map((segment) => {
        const rest = /^:(\w+)\*$/.exec(segment);
        if (rest) {
          keys.push(rest[1] as string);
          return '(.+)';
        }
        const param = /^:(\w+)$/.exec(segment);
        if (param) {
          keys.push(param[1] as string);
          return '([^/]+)';
        }
        return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      })
      .join('/');
    const optionalSlash = template.endsWith('/?') ? '/?' : '';
    this.routes.push({ method, template, regex: new RegExp(`^${pattern}${optionalSlash}$`), keys, handler });
    return this;
  }

  /** Finds the handler for a request; `template` names the route for request counts and faults. */
  match(
    method: string,
    path: string,
  ):
    | { handler: Handler; params: Record<string, string>; template: string }
    | 'method-not-allowed'
    | undefined {
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.regex.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method) continue;
      const params: Record<string, string> = {};
      route.keys.forEach((key, i) => (params[key] = decodeURIComponent(m[i + 1] as string)));
      return { handler: route.handler, params, template: route.template };
    }
    return pathMatched ? 'method-not-allowed' : undefined;
  }
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): EmulatorResponse {
  return { status, body, headers };
}

/** Parses a JSON body; a malformed one is the caller's 400 with the given error shape. */
export function readJson<T = unknown>(req: EmulatorRequest, onError: (message: string) => HttpError): T {
  if (req.body.length === 0) return {} as T;
  try {
    return JSON.parse(req.body.toString('utf8')) as T;
  } catch {
    throw onError('The request body is not valid JSON.');
  }
}

export function readForm(req: EmulatorRequest): URLSearchParams {
  return new URLSearchParams(req.body.toString('utf8'));
}

export function bearerToken(req: EmulatorRequest): string | undefined {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer\s+(.+)$/i.exec(header) : null;
  return m?.[1];
}

export function basicCredentials(req: EmulatorRequest): { user: string; password: string } | undefined {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? /^Basic\s+(.+)$/i.exec(header) : null;
  if (!m) return undefined;
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return {
    user: decodeURIComponent(decoded.slice(0, colon)),
    password: decodeURIComponent(decoded.slice(colon + 1)),
  };
}
