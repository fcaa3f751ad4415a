import type { Records } from './clients/records';
import type { WorkItem } from './work';

/**
 * The default age past which a claim's holder is taken to be gone (IN_FLIGHT_CLAIM_MINUTES): longer than
 * a queued message lives (5 attempts, each at most the function timeout plus the retry delay), shorter
 * than the scan schedule. A scan that dies after claiming and before its messages are written delays
 * those secrets by this much, not until an operator steps in.
 */
export const IN_FLIGHT_STALE_MS = 60 * 60_000;

/**
 * One queued operation per secret and op. The scan claims `{vault}/{secret}/{op}` before it enqueues
 * and skips work whose claim is held; the worker releases it once the message is done (succeeded,
 * failed for good, or parked in the poison queue) — not while the queue still retries it. So a short
 * schedule cannot pile duplicates in front of a retry.
 */
export class InFlight {
  constructor(
    private readonly records: Records,
    private readonly staleMs = IN_FLIGHT_STALE_MS,
  ) {}

  private static key(item: Pick<WorkItem, 'vault' | 'secret' | 'op'>): string {
    return `${item.vault.toLowerCase()}/${item.secret.toLowerCase()}/${item.op}`;
  }

  /**
   * The items that were not in flight, now claimed; forced and dry-run work is never held back.
   * `owner`: the scan request's message id. A retry of the same request (its instance died, or a page
   * failed, after claiming and before sending) takes its own claims back instead of skipping them.
   * A claim Storage fails to record admits the work: a duplicate message is harmless (the worker finds
   * it done), a rotation held back until the next scan is not.
   */
  async admit(items: readonly WorkItem[], owner?: string): Promise<WorkItem[]> {
    const claim = (item: WorkItem) =>
      this.records.claim(InFlight.key(item), this.staleMs, owner).catch(() => true);
    const admitted = await Promise.all(
      items.map(async (item) => (item.force || item.dryRun || (await claim(item)) ? item : undefined)),
    );
    return admitted.filter((i): i is WorkItem => i !== undefined);
  }

  async release(item: Pick<WorkItem, 'vault' | 'secret' | 'op'>): Promise<void> {
    await this.records.delete(InFlight.key(item));
  }
}
