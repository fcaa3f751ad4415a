/** Small timing helpers shared by the local host's triggers. */
import type { RetryOptions, RpcDuration } from './core';

export function durationMs(d: RpcDuration | undefined): number {
  if (!d) return 0;
  const seconds = typeof d.seconds === 'object' ? d.seconds.toNumber() : (d.seconds ?? 0);
  return seconds * 1000 + Math.round((d.nanos ?? 0) / 1e6);
}

/** The host's delay before retry number `retry` (0-based) of a failed invocation. */
export function retryDelayMs(options: RetryOptions, retry: number): number {
  if (options.retryStrategy === 'fixedDelay') return durationMs(options.delayInterval);
  const min = durationMs(options.minimumInterval);
  const max = durationMs(options.maximumInterval) || Number.MAX_SAFE_INTEGER;
  return Math.min(max, min * 2 ** retry);
}

/** A sleep that `wake()` ends early; a wake while not sleeping ends the next sleep at once. */
export class Waker {
  private wakeUp?: () => void;
  private pending = false;

  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.pending = true;
  }
}
