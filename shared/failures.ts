import type { Records } from './clients/records';
import type { Outcome } from './rotation/engine';

const DAY_MS = 86_400_000;

/**
 * When each secret started failing: a record written at its first failure (of any kind) and removed by
 * its next success. Two uses: owners hear of a rotation that keeps failing transiently after a bounded
 * time instead of only when retries run out, and the scan's "expired, rotation has not succeeded yet"
 * notice waits until a rotation has actually been tried and failed.
 */
export class Failures {
  constructor(
    private readonly records: Records,
    private readonly noticeAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private static key(vault: string, secret: string): string {
    return `${vault.toLowerCase()}/${secret.toLowerCase()}`;
  }

  /**
   * Records the outcome; says whether owners should hear of it now. A success clears the record. A
   * permanent failure, or the last attempt, is always told. A transient failure is told once per day
   * after the secret has been failing for `noticeAfterMs` (the retries go on).
   */
  async observe(outcome: Outcome, lastAttempt: boolean): Promise<boolean> {
    const key = Failures.key(outcome.vault, outcome.secret);
    if (outcome.status !== 'failed') {
      if (outcome.status === 'rotated' || outcome.status === 'revoked') await this.records.delete(key);
      return true;
    }
    await this.records.create(key);
    if (!outcome.transient || lastAttempt) return true;
    return this.overdue(key);
  }

  /** True once per day while a transient failure has lasted `noticeAfterMs`. */
  private async overdue(key: string): Promise<boolean> {
    const since = await this.records.writtenAt(key);
    if (!since || this.now() - since.getTime() < this.noticeAfterMs) return false;
    const day = Math.floor(this.now() / DAY_MS);
    return this.records.create(`${key}/told-${day}`);
  }

  /** Whether a rotation of the secret has failed since its last success. */
  async hasFailed(vault: string, secret: string): Promise<boolean> {
    return (await this.records.writtenAt(Failures.key(vault, secret))) !== undefined;
  }
}
