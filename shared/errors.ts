/**
 * Error hierarchy. The split between transient and permanent decides whether a trigger throws
 * (so Event Grid or the queue retries) or reports the failure and completes.
 */
import { redact } from './redact';

/** Base of every error this service throws on purpose. */
export class RotatorError extends Error {
  override name = 'RotatorError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Thrown at start-up when an app setting is missing or malformed; names the setting. */
export class ConfigError extends RotatorError {
  override name = 'ConfigError';
  constructor(readonly issues: { setting: string; problem: string }[]) {
    super(`Invalid configuration:\n${issues.map((i) => `  - ${i.setting}: ${i.problem}`).join('\n')}`);
  }
}

/** Retrying later may succeed: throttling, 5xx, timeouts, a credential still propagating. */
export class TransientError extends RotatorError {
  override name = 'TransientError';
}

/** Retrying will not help until a person changes something: bad tags, refused binding, 4xx. */
export class PermanentError extends RotatorError {
  override name = 'PermanentError';
}

/** A queue message that does not parse: it goes to the poison queue at once (retrying cannot help). */
export class MalformedMessageError extends PermanentError {
  override name = 'MalformedMessageError';
}

/** A provider (Databricks, Graph, Entra, Key Vault) answered with an error. Messages are redacted. */
export class ProviderError extends RotatorError {
  override name = 'ProviderError';
  constructor(
    readonly provider: string,
    readonly status: number | undefined,
    readonly code: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** 408, 429 and 5xx, and no status at all (the request never got an answer), are worth retrying. */
  get transient(): boolean {
    return this.status === undefined || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/** Error codes of a request that never got an answer: the connection failed, dropped or timed out. */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  // @azure/core-rest-pipeline's RestError for a request it could not send.
  'REQUEST_SEND_ERROR',
]);

/**
 * Whether the request never got an answer (anywhere in the cause chain): a network error code, an
 * undici error (`UND_ERR_*`: connect, headers or body timeout, socket closed), or an abort by a timeout.
 */
export function isNetworkError(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, name } = e as { code?: unknown; name?: unknown };
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || code.startsWith('UND_ERR_'))) return true;
    if (name === 'AbortError' || name === 'TimeoutError') return true;
  }
  return false;
}

/**
 * Whether an error is worth retrying: the Event Grid handler throws these, and reports the rest.
 * Deliberately: an answer is retried on throttling and server errors; no answer (a network error, a
 * timeout) is retried; anything else (a 4xx, a bug such as a TypeError, an unknown error) is not —
 * retrying the same call would fail the same way, so it is reported at once.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof TransientError) return true;
  if (error instanceof ProviderError) return error.transient;
  if (error instanceof RotatorError) return false;
  // Azure SDK RestError (statusCode) and Graph-style errors (status).
  const { statusCode, status } = (error ?? {}) as { statusCode?: unknown; status?: unknown };
  const answered = typeof statusCode === 'number' ? statusCode : status;
  if (typeof answered === 'number' && answered > 0)
    return answered === 408 || answered === 429 || answered >= 500;
  return isNetworkError(error);
}

/** A provider's or Key Vault's own answer to a failed call: HTTP status, service error code, message. */
export interface ErrorFacts {
  status?: number;
  code?: string;
  message?: string;
}

/**
 * The service's answer behind an error, for telemetry: the first ProviderError or Azure SDK RestError
 * (`statusCode`, `code`, `details.error`) in the cause chain. Undefined when no service answered (a
 * network error, a bug). The message is redacted.
 */
export function errorFacts(error: unknown): ErrorFacts | undefined {
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    if (current instanceof ProviderError) {
      return { status: current.status, code: current.code, message: redact(current.message) };
    }
    const e = current as { statusCode?: unknown; code?: unknown; details?: unknown };
    if (typeof e.statusCode === 'number') {
      const body = (e.details as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      const code =
        typeof body?.code === 'string' ? body.code : typeof e.code === 'string' ? e.code : undefined;
      const message = typeof body?.message === 'string' ? body.message : current.message;
      return { status: e.statusCode, code, message: redact(message) };
    }
    current = current.cause;
  }
  return undefined;
}
