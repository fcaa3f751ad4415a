/** The timer trigger of the local Functions host: ticks on demand or on the NCRONTAB schedule, with retries. */
import type * as Functions from '@azure/functions';
import type { Registration } from './core';
import type { InvocationRecord, TriggerHost } from './host';
import { nextOccurrence, type Schedule } from './ncrontab';
import { retryDelayMs, Waker } from './waker';

/** What the timer trigger needs of the host. */
export interface TimerHost extends TriggerHost {
  readonly schedules: ReadonlyMap<string, Schedule>;
}

export class TimerTrigger {
  private loop?: { waker: Waker; done: Promise<void> };
  private chain: Promise<unknown> = Promise.resolve();
  /** Ends a retry delay early when the host stops. */
  private readonly retryWaker = new Waker();

  constructor(private readonly host: TimerHost) {}

  /**
   * Fires the timer function(s) now, as the schedule would, with the registration's retry policy.
   * Ticks never overlap (the host runs a timer function as a singleton).
   */
  tick(functionName?: string): Promise<InvocationRecord[]> {
    const timers = this.host
      .functionsOf('timerTrigger')
      .filter((r) => functionName === undefined || r.metadata.name === functionName);
    if (this.host.isStopped()) return Promise.reject(new Error('the host has stopped'));
    if (timers.length === 0) throw new Error(`no timer function ${functionName ?? ''} is registered`.trim());
    const next = this.chain.then(async () => {
      const records: InvocationRecord[] = [];
      for (const r of timers) records.push(await this.runTimer(r));
      return records;
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async runTimer(registration: Registration): Promise<InvocationRecord> {
    const retry = registration.metadata.retryOptions;
    const max = retry?.maxRetryCount ?? 0;
    const schedule = this.host.schedules.get(registration.metadata.name);
    for (let attempt = 0; ; attempt++) {
      const now = new Date();
      const timer: Functions.Timer = {
        isPastDue: false,
        schedule: { adjustForDST: true },
        scheduleStatus: {
          last: now.toISOString(),
          next: (schedule && nextOccurrence(schedule, now)?.toISOString()) ?? '',
          lastUpdated: now.toISOString(),
        },
      };
      const record = await this.host.invoke(
        registration,
        'timer',
        attempt === 0 ? 'Timer fired' : `Retry ${attempt} of ${max}`,
        timer,
        {},
        retry ? { retryCount: attempt, maxRetryCount: max } : undefined,
      );
      if (record.status === 'succeeded' || !retry || this.host.isStopped() || (max !== -1 && attempt >= max))
        return record;
      const delay = retryDelayMs(retry, attempt);
      this.host.log('warning', `retrying 'Functions.${registration.metadata.name}' in ${delay / 1000} s`);
      await this.retryWaker.wait(delay);
      if (this.host.isStopped()) return record;
    }
  }

  /**
   * Ticks every `intervalMs`, or on each function's own NCRONTAB schedule when no interval is given.
   * Returns when the first wait starts; stop() ends it.
   */
  startTimerLoop(intervalMs?: number): void {
    if (this.loop) throw new Error('the timer loop is already running');
    const waker = new Waker();
    const schedule = [...this.host.schedules.values()][0];
    const nextDelay = () =>
      intervalMs ??
      Math.max(0, (schedule && nextOccurrence(schedule, new Date())?.getTime()) ?? 0) - Date.now();
    const done = (async () => {
      while (!this.host.isStopped()) {
        await waker.wait(nextDelay());
        if (this.host.isStopped()) break;
        await this.tick().catch((e: unknown) => this.host.log('error', `timer tick failed: ${String(e)}`));
      }
    })();
    this.loop = { waker, done };
  }

  /** When the next scheduled tick is due under the NCRONTAB schedule (for people). */
  nextScheduled(functionName?: string): Date | undefined {
    const schedule = functionName
      ? this.host.schedules.get(functionName)
      : [...this.host.schedules.values()][0];
    return schedule && nextOccurrence(schedule, new Date());
  }

  /** Ends the loop and any retry delay; resolves when the loop has stopped. */
  async stop(): Promise<void> {
    this.loop?.waker.wake();
    this.retryWaker.wake();
    await this.loop?.done;
  }
}
