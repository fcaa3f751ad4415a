import { setTimeout as sleep } from 'node:timers/promises';
import {
  RestError,
  type PipelinePolicy,
  type PipelineRequest,
  type PipelineResponse,
} from '@azure/core-rest-pipeline';

/**
 * How long each client waits, per call. Every figure stays below the rotation queue's 30 s retry
 * delay (host.json `visibilityTimeout`): one hung call costs a worker slot for less time than a retry
 * waits, and a throttled call gives up (transient, retried by the queue) instead of sleeping on.
 *
 * - `connectMs`: establishing the connection (TCP + TLS).
 * - `requestMs`: one attempt, from sending to the whole response.
 * - `callMs`: the whole call including the SDK's own retries and Retry-After waits.
 */
export const TIMEOUTS = {
  /**
   * Key Vault: the SDK's retries of a 5xx or a dropped connection start at 250 ms (its default base
   * is 1 s: 1–2 s, 2–4 s, 2–4 s, up to 10 s of a worker slot for three retries; now 0.25–0.5 s,
   * 0.5–1 s, 1–2 s). A 429 waits its Retry-After whatever these are.
   */
  keyVault: { requestMs: 10_000, callMs: 20_000, maxRetries: 3, retryDelayMs: 250, maxRetryDelayMs: 2_000 },
  /**
   * A scan's list pages: throttling (429 with Retry-After) is waited out page by page instead of
   * failing the vault's scan, which would start it over from its first page. A scan holds no worker
   * slot of the rotation queue, so it can afford the patience.
   */
  keyVaultList: {
    requestMs: 10_000,
    callMs: 60_000,
    maxRetries: 3,
    retryDelayMs: 250,
    maxRetryDelayMs: 2_000,
    throttledWaitMs: 45_000,
  },
  graph: { connectMs: 5_000, requestMs: 15_000, callMs: 25_000 },
  databricks: { connectMs: 5_000, requestMs: 15_000, callMs: 25_000 },
  /** The service's own token requests (managed identity, Entra). */
  identity: { requestMs: 10_000, callMs: 20_000 },
  /** Blob calls of the lock, the notice record and the announcement record. */
  storage: { requestMs: 10_000 },
} as const;

/**
 * The Storage SDKs' retry options (blob and queue): short back-offs, so a burst of 5xx is ridden out
 * within a record's 10 s deadline instead of the SDK's default 4 s, 8 s, 16 s … waits, and one attempt
 * gives up after 5 s.
 */
export const STORAGE_RETRY = {
  retryOptions: { maxTries: 4, retryDelayInMs: 250, maxRetryDelayInMs: 2_000, tryTimeoutInMs: 5_000 },
} as const;

/** An abort signal that fires after `ms`, or with `outer` if that fires first. */
export function deadline(ms: number, outer?: AbortSignal): AbortSignal {
  return outer ? AbortSignal.any([outer, AbortSignal.timeout(ms)]) : AbortSignal.timeout(ms);
}

/**
 * Azure SDK pipeline policies: a deadline for the whole call (per call, outside the retry policy, so
 * it also bounds Retry-After waits) and a timeout for each attempt (per retry).
 */
export function timeoutPolicies(limits: { requestMs: number; callMs: number }): {
  policy: PipelinePolicy;
  position: 'perCall' | 'perRetry';
}[] {
  return [
    {
      position: 'perCall',
      policy: {
        name: 'callDeadline',
        sendRequest: async (request, next) => {
          // A timer per call, cleared when the call ends (these clients never stream a body, so the
          // response is whole by then). AbortSignal.timeout would stay armed, with the signals it
          // is combined with, for callMs after every call: 40k of them in the tenant bench's scan.
          const outer = request.abortSignal as AbortSignal | undefined;
          const controller = new AbortController();
          const timer = setTimeout(
            () => controller.abort(new DOMException('The operation timed out.', 'TimeoutError')),
            limits.callMs,
          ).unref();
          const onAbort = () => controller.abort(outer?.reason);
          if (outer?.aborted) onAbort();
          else outer?.addEventListener('abort', onAbort, { once: true });
          request.abortSignal = controller.signal;
          try {
            return await next(request);
          } finally {
            clearTimeout(timer);
            outer?.removeEventListener('abort', onAbort);
          }
        },
      },
    },
    {
      position: 'perRetry',
      policy: {
        name: 'attemptTimeout',
        sendRequest: (request, next) => {
          if (!request.timeout || request.timeout > limits.requestMs) request.timeout = limits.requestMs;
          return next(request);
        },
      },
    },
  ];
}

/**
 * An error answer without a body (a gateway's 503, a dropped body) keeps its status and says so. The
 * Key Vault SDK reads `body.error` of every error answer, and turns an empty one into
 * `TypeError: Cannot read properties of undefined (reading 'error')`, losing the status. Per retry, so
 * the SDK's retry policy still sees the status and retries 429/5xx as usual.
 */
export function emptyErrorBodyPolicy(service: string): { policy: PipelinePolicy; position: 'perRetry' } {
  return {
    position: 'perRetry',
    policy: {
      name: 'emptyErrorBody',
      sendRequest: async (request: PipelineRequest, next): Promise<PipelineResponse> => {
        const response = await next(request);
        // A 401 is the challenge the SDK's authentication policy answers; it is left to it.
        if (response.status < 400 || response.status === 401 || (response.bodyAsText ?? '').trim() !== '')
          return response;
        throw new RestError(
          `${service} answered ${request.method} ${new URL(request.url).pathname} with ${response.status} and no body`,
          { statusCode: response.status, code: `HTTP${response.status}`, request, response },
        );
      },
    },
  };
}

/** Parses Retry-After (delta seconds or HTTP date) into milliseconds. */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Waits out throttling beyond the SDK's own retries: a 429 that is still a 429 after them is sent
 * again after its Retry-After (1 s if none), until `budgetMs` of waiting is spent; then the 429 is
 * returned. Per call, inside the call deadline (which also ends a wait). Only 429: an unreachable
 * service fails as fast as before.
 */
export function throttledPatiencePolicy(budgetMs: number): { policy: PipelinePolicy; position: 'perCall' } {
  return {
    position: 'perCall',
    policy: {
      name: 'throttledPatience',
      sendRequest: async (request, next) => {
        let waited = 0;
        for (;;) {
          let response: PipelineResponse | undefined;
          let error: unknown;
          try {
            response = await next(request);
          } catch (e) {
            // A 429 without a body arrives as an error (emptyErrorBodyPolicy).
            if (!(e instanceof RestError && e.statusCode === 429)) throw e;
            error = e;
          }
          const answer = response ?? (error as RestError).response;
          const wait = retryAfterMs(answer?.headers.get('retry-after')) || 1000;
          if ((response && response.status !== 429) || waited + wait > budgetMs) {
            if (response) return response;
            throw error;
          }
          await sleep(wait, undefined, { signal: request.abortSignal as AbortSignal | undefined });
          waited += wait;
        }
      },
    },
  };
}
