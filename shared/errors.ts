/**
 * Error hierarchy. The split between transient and permanent decides whether a trigger throws
 * (so Event Grid or the queue retries) or reports the failure and completes.
 */

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

/** Whether an error is worth retrying: the Event Grid handler throws these, and reports the rest. */
export function isTransient(error: unknown): boolean {
  if (error instanceof TransientError) return true;
  if (error instanceof ProviderError) return error.transient;
  if (error instanceof RotatorError) return false;
  // Azure SDK RestError and network errors: retry on throttling, server errors, or no answer at all.
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status !== 'number' || status === 408 || status === 429 || status >= 500;
}
