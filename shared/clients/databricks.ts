import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { isNetworkError, PermanentError, ProviderError } from '../errors';
import { redact } from '../redact';
import { deadline, retryAfterMs, TIMEOUTS } from './timeouts';

export interface DatabricksClientOptions {
  /** Decides whether an origin may receive a credential; checked before every request. */
  isAllowedOrigin: (origin: string) => boolean;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** The whole call, retries and Retry-After waits included; past it the error is returned as is. */
  callTimeoutMs?: number;
  /** Retries after 429/503 (and, for idempotent calls, after a network error). */
  maxRetries?: number;
  /** Back-off when the server gives no Retry-After; doubles per attempt. */
  baseDelayMs?: number;
  /** A Retry-After longer than this is not waited for: the error is returned as transient instead. */
  maxRetryAfterMs?: number;
  dispatcher?: Dispatcher;
}

export type DatabricksAuth = { bearer: string } | { basic: { user: string; password: string } };

export interface DatabricksRequest {
  method: 'GET' | 'POST' | 'DELETE' | 'PATCH';
  auth: DatabricksAuth;
  json?: unknown;
  form?: Record<string, string>;
  /** Safe to repeat after a dropped connection (the server may have done it already). */
  idempotent?: boolean;
}

/** SCIM lists answer at most 100 resources per page. */
const SCIM_MAX_COUNT = 100;
const SCIM_ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';

/** SCIM error statuses as the Databricks error codes the rest of the API uses, so callers branch once. */
const SCIM_STATUS_CODES: Record<number, string> = {
  400: 'INVALID_PARAMETER_VALUE',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'RESOURCE_DOES_NOT_EXIST',
  409: 'RESOURCE_ALREADY_EXISTS',
};

const DEFAULTS = {
  connectTimeoutMs: TIMEOUTS.databricks.connectMs,
  requestTimeoutMs: TIMEOUTS.databricks.requestMs,
  callTimeoutMs: TIMEOUTS.databricks.callMs,
  // 0.25 + 0.5 + 1 s: a worker slot rides out a short blip; a longer outage goes back to the queue.
  maxRetries: 3,
  baseDelayMs: 250,
  maxRetryAfterMs: 10_000,
};

/**
 * Databricks REST over one pooled undici dispatcher: timeouts, retries that honour Retry-After,
 * typed errors from `{error_code, message}` (or OAuth `{error, error_description}`), and an origin
 * allowlist so no credential is ever sent to a host that was not validated.
 */
export class DatabricksClient {
  private readonly options: Required<Omit<DatabricksClientOptions, 'dispatcher'>>;
  private readonly dispatcher: Dispatcher;

  constructor(options: DatabricksClientOptions) {
    this.options = { ...DEFAULTS, ...options };
    this.dispatcher =
      options.dispatcher ??
      new Agent({
        connect: { timeout: this.options.connectTimeoutMs },
        headersTimeout: this.options.requestTimeoutMs,
        bodyTimeout: this.options.requestTimeoutMs,
        connections: 16,
      });
  }

  async call<T>(origin: string, path: string, req: DatabricksRequest): Promise<T> {
    const url = new URL(path, origin);
    if (url.protocol !== 'https:' || !this.options.isAllowedOrigin(url.origin)) {
      throw new PermanentError(
        `Refusing to send a credential to ${url.origin}: not an allowed Databricks host`,
      );
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    headers.authorization =
      'bearer' in req.auth
        ? `Bearer ${req.auth.bearer}`
        : `Basic ${Buffer.from(`${encodeURIComponent(req.auth.basic.user)}:${encodeURIComponent(req.auth.basic.password)}`).toString('base64')}`;
    let body: string | undefined;
    if (req.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(req.json);
    } else if (req.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(req.form).toString();
    }

    const end = Date.now() + this.options.callTimeoutMs;
    const signal = deadline(this.options.callTimeoutMs);
    for (let attempt = 0; ; attempt++) {
      const canRetry = attempt < this.options.maxRetries;
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, { method: req.method, headers, body, dispatcher: this.dispatcher, signal });
      } catch (e) {
        const idempotent = req.idempotent ?? req.method !== 'POST';
        if (canRetry && idempotent && isNetworkError(e) && Date.now() + this.backoff(attempt) < end) {
          await sleep(this.backoff(attempt));
          continue;
        }
        throw new ProviderError(
          'databricks',
          undefined,
          networkCode(e),
          `${req.method} ${url.pathname} failed: ${redact(String((e as Error).message))}`,
          { cause: e },
        );
      }
      const text = await res.body.text();
      if (res.statusCode < 300) return parseBody<T>(res.statusCode, text, req.method, url.pathname);
      const error = parseError(res.statusCode, text, req.method, url.pathname);
      if ((res.statusCode === 429 || res.statusCode === 503) && canRetry) {
        const wait = retryAfterMs(res.headers['retry-after']) ?? this.backoff(attempt);
        if (wait <= this.options.maxRetryAfterMs && Date.now() + wait < end) {
          await sleep(wait);
          continue;
        }
      }
      throw error;
    }
  }

  /**
   * Every item of a list paged with `page_size`/`page_token` → `next_page_token` (the account API's
   * style), following tokens until a page has none. The number of items on a page says nothing.
   */
  async listAll<T>(
    origin: string,
    path: string,
    itemsKey: string,
    req: { auth: DatabricksAuth; pageSize?: number },
  ): Promise<T[]> {
    const items: T[] = [];
    const seen = new Set<string>();
    for (let token: string | undefined; ;) {
      const url = new URL(path, 'https://placeholder');
      if (req.pageSize !== undefined) url.searchParams.set('page_size', String(req.pageSize));
      if (token) url.searchParams.set('page_token', token);
      const page = await this.call<Record<string, unknown>>(origin, `${url.pathname}${url.search}`, {
        method: 'GET',
        auth: req.auth,
      });
      items.push(...((page[itemsKey] as T[] | undefined) ?? []));
      const next = page.next_page_token;
      if (typeof next !== 'string' || next === '') return items;
      if (seen.has(next))
        throw new ProviderError(
          'databricks',
          200,
          undefined,
          `${url.pathname}: the API repeated a page token`,
        );
      seen.add(next);
      token = next;
    }
  }

  /**
   * Every resource of a SCIM list (RFC 7644 §3.4.2.4): `startIndex` (1-based) advances by the
   * resources received until `totalResults` are in or a page comes back empty.
   */
  async scimListAll<T>(
    origin: string,
    path: string,
    req: { auth: DatabricksAuth; filter?: string; count?: number },
  ): Promise<T[]> {
    const items: T[] = [];
    for (;;) {
      const url = new URL(path, 'https://placeholder');
      if (req.filter !== undefined) url.searchParams.set('filter', req.filter);
      url.searchParams.set('startIndex', String(items.length + 1));
      url.searchParams.set('count', String(req.count ?? SCIM_MAX_COUNT));
      const page = await this.call<{ totalResults?: number; Resources?: T[] }>(
        origin,
        `${url.pathname}${url.search}`,
        { method: 'GET', auth: req.auth },
      );
      const resources = page.Resources ?? [];
      items.push(...resources);
      if (resources.length === 0 || items.length >= (page.totalResults ?? 0)) return items;
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private backoff(attempt: number): number {
    return this.options.baseDelayMs * 2 ** attempt;
  }
}

/** A 2xx body; one that is not JSON (a proxy's sign-in page) is a provider error, not a SyntaxError. */
function parseBody<T>(status: number, text: string, method: string, path: string): T {
  if (!text) return {} as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    // No cause: the SyntaxError would quote the body.
    throw new ProviderError(
      'databricks',
      status,
      undefined,
      `${method} ${path} → ${status}: the response is not JSON`,
    );
  }
}

/**
 * A typed error from any of Databricks' error shapes: REST `{error_code, message}`, OAuth
 * `{error, error_description}`, or SCIM `{schemas:[…:Error], detail, status:"404", scimType?}`.
 */
function parseError(status: number, text: string, method: string, path: string): ProviderError {
  let code: string | undefined;
  let message = text.slice(0, 300);
  try {
    const body = JSON.parse(text) as {
      error_code?: string | number;
      message?: string;
      error?: string;
      error_description?: string;
      schemas?: unknown;
      detail?: string;
      scimType?: string;
    };
    if (Array.isArray(body.schemas) && body.schemas.includes(SCIM_ERROR)) {
      code = SCIM_STATUS_CODES[status];
      message = (body.detail ?? message) + (body.scimType ? ` (scimType ${body.scimType})` : '');
    } else {
      // Auth failures carry the HTTP status as a number (`{"error_code":403}`); the code is a string.
      code = body.error_code !== undefined ? String(body.error_code) : body.error;
      message = body.message ?? body.error_description ?? message;
    }
  } catch {
    // not JSON (a proxy's HTML page): keep the start of the text
  }
  return new ProviderError(
    'databricks',
    status,
    code,
    redact(`${method} ${path} → ${status} ${code ?? ''}: ${message}`.replace(/\s+:/, ':')),
  );
}

function networkCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}
