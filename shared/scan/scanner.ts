import { setImmediate } from 'node:timers/promises';
import type { SecretProperties } from '@azure/keyvault-secrets';
import type { Settings } from '../config';
import type { Vaults } from '../clients/keyvault';
import type { Notices } from '../clients/notices';
import type { Announcements } from '../announcements';
import type { Failures } from '../failures';
import type { InFlight } from '../inflight';
import { notification, type Notification } from '../notifications/notification';
import { isTransient, TransientError } from '../errors';
import { redactError } from '../redact';
import type { Rotator } from '../rotators/types';
import { EVENTS, type SecretState } from '../telemetry/events';
import type { Telemetry } from '../telemetry/telemetry';
import type { WorkItem } from '../work';
import { assess, type Assessment, type ExpiryBucket } from './assess';

export interface VaultSummary {
  vault: string;
  scanned: number;
  optedIn: number;
  due: number;
  expiring: number;
  expired: number;
  invalid: number;
  disabled: number;
  enqueued: number;
  listPages: number;
  byKind: Record<string, number>;
  byExpiry: Partial<Record<ExpiryBucket, number>>;
  /** One state per secret (telemetry/events.ts SECRET_STATES), for the workbook's "healthy tenant". */
  byState: Partial<Record<SecretState, number>>;
  durationMs: number;
  error?: string;
}

/** Where one vault's scan puts what it plans, a list page at a time. */
export interface ScanOutput {
  /** The rotations, revocations and reconciliations planned from one page. */
  work(items: WorkItem[]): Promise<void>;
  /** The first-time notices planned from one page. */
  notices(items: Notification[]): Promise<void>;
}

export interface ScannerOptions {
  settings: Settings;
  vaults: Vaults;
  rotators: ReadonlyMap<string, Rotator>;
  notices: Notices;
  now?: () => Date;
  /** Work already queued for a secret is not enqueued again. */
  inflight?: InFlight;
  /** Rotations stored but never announced are announced. */
  announcements?: Announcements;
  /** "Rotation has not succeeded yet" waits for a rotation to have failed. */
  failures?: Failures;
}

export interface ScanVaultOptions {
  /** The invocation's telemetry: `ScanCompleted` and the per-secret events carry its invocation id. */
  telemetry: Telemetry;
  /**
   * A failure that may pass (throttled out, 5xx, no answer) is thrown as a TransientError without a
   * `ScanCompleted`, so the queue retries this vault alone. False on the last attempt: the failure is
   * then reported (`outcome: 'failed'`) and the scan completes.
   */
  retryable?: boolean;
  /**
   * The scan request's message id, the same on every delivery: the owner of this scan's in-flight
   * claims, so a retry re-sends what an earlier attempt claimed and never sent.
   */
  requestId?: string;
}

/** What a page's planning needs of its scan: telemetry, the request id, the record fallback. */
interface PageContext {
  telemetry: Telemetry;
  requestId?: string;
  /** A record read or write that may fail in Storage: counted, and `fallback` instead. */
  record: <T>(p: Promise<T> | undefined, fallback: T) => Promise<T | undefined>;
}

/**
 * Plans one vault: streams its list pages (25 secrets each, tags and expiry only, never a value, no
 * per-secret GET) and hands each page's work and notices to the output while the next page is
 * fetched. Memory stays flat however large the vault: a page is assessed, sent and dropped.
 */
export class Scanner {
  private readonly now: () => Date;

  constructor(private readonly options: ScannerOptions) {
    this.now = options.now ?? (() => new Date());
  }

  async scanVault(name: string, out: ScanOutput, options: ScanVaultOptions): Promise<VaultSummary> {
    const started = Date.now();
    const now = this.now();
    const summary: VaultSummary = {
      vault: name,
      scanned: 0,
      optedIn: 0,
      due: 0,
      expiring: 0,
      expired: 0,
      invalid: 0,
      disabled: 0,
      enqueued: 0,
      listPages: 0,
      byKind: {},
      byExpiry: {},
      byState: {},
      durationMs: 0,
    };
    const { telemetry } = options;
    // The previous page's output, still being sent while this page is fetched and assessed.
    let sending: Promise<unknown> = Promise.resolve();
    // Claimed and not yet sent: released if the scan fails, so the next scan plans them again.
    const unsent = new Set<WorkItem>();
    // The scan's own records (late announcements, failure and notice records) failing in Storage do
    // not fail the scan: that secret's notice waits for the next scan.
    let recordFailures = 0;
    const record = <T>(p: Promise<T> | undefined, fallback: T): Promise<T | undefined> =>
      (p ?? Promise.resolve(undefined)).catch(() => {
        recordFailures++;
        return fallback;
      });
    let next: Promise<IteratorResult<SecretProperties[]>> | undefined;
    try {
      const vault = this.options.vaults.get(name);
      const pages = vault.lister.listPropertiesOfSecrets().byPage({ maxPageSize: 25 });
      // The next page is requested before this one is assessed: the round trip, not the
      // assessment, is what a page costs, and a vault's pages can only be read one after another.
      next = pages.next();
      for (let current = await next; !current.done; current = await next) {
        next = pages.next();
        // Settled in the catch below if this page fails; never left rejecting unobserved.
        next.catch(() => undefined);
        // Node's HTTP client writes a request from a nextTick, and nextTicks wait until the microtask
        // queue is empty, which this page's assessment (awaits of settled promises) would not leave
        // before its end. One macrotask turn lets the next page's request leave first.
        await setImmediate();
        summary.listPages++;
        const { work, notices } = await this.planPage(vault.name, current.value, now, summary, {
          telemetry,
          requestId: options.requestId,
          record,
        });
        for (const item of work) unsent.add(item);
        await sending;
        sending = Promise.all([
          out.work(work).then(() => work.forEach((item) => unsent.delete(item))),
          out.notices(notices),
        ]);
        summary.enqueued += work.length;
      }
      await sending;
    } catch (e) {
      // Whatever was already sent stays sent; a retry plans it again and the worker finds it done.
      await Promise.allSettled([sending, next]);
      const inflight = this.options.inflight;
      if (inflight) await Promise.allSettled([...unsent].map((item) => inflight.release(item)));
      summary.error = redactError(e);
      if (options.retryable && isTransient(e)) {
        telemetry.log('warn', `scan of vault ${name} failed; the queue retries it`, {
          vault: name,
          error: summary.error,
        });
        throw new TransientError(`scan of vault ${name} failed: ${summary.error}`, { cause: e });
      }
      // One unreachable or throttled-out vault must not stop the others; the event says why.
      telemetry.log('error', `scan of vault ${name} failed`, { vault: name, error: summary.error });
    }
    if (recordFailures)
      telemetry.log('warn', `scan of vault ${name}: ${recordFailures} record reads or writes failed`, {
        vault: name,
      });
    summary.durationMs = Date.now() - started;
    telemetry.event(EVENTS.ScanCompleted, {
      ...summary,
      byKind: JSON.stringify(summary.byKind),
      byExpiry: JSON.stringify(summary.byExpiry),
      byState: JSON.stringify(summary.byState),
      outcome: summary.error ? 'failed' : 'completed',
    });
    return summary;
  }

  /**
   * One list page's work and notices. The assessment is synchronous; what is left are the records
   * (in flight, announced, failed, noticed), a storage round trip each, so a page's run at once
   * rather than one secret after another. Order is kept: work and notices follow the page.
   */
  private async planPage(
    vault: string,
    page: readonly SecretProperties[],
    now: Date,
    summary: VaultSummary,
    scan: PageContext,
  ): Promise<{ work: WorkItem[]; notices: Notification[] }> {
    const { inflight, announcements } = this.options;
    const { telemetry, record } = scan;
    const assessed = page.map((props) => {
      const a = assess(vault, props, this.options.settings, this.options.rotators, now);
      this.count(summary, a);
      if (a.findings) {
        telemetry.event(EVENTS.SecretPolicyInvalid, {
          vault,
          secret: a.name,
          kind: a.kind,
          reason: a.findings.map((f) => `${f.tag}: ${f.reason}`).join('; '),
        });
      }
      return { props, a };
    });
    const planned = assessed.flatMap(({ a }) => a.work);
    const [work, perSecret] = await Promise.all([
      // Work already in flight (queued or running) is not enqueued again.
      inflight && planned.length > 0 ? inflight.admit(planned, scan.requestId) : planned,
      Promise.all(
        assessed.map(async ({ props, a }) => [
          await record(announcements?.missed(vault, props, now), undefined),
          await this.firstNotice(vault, a, now, scan),
        ]),
      ),
    ]);
    return { work, notices: perSecret.flat().filter((n): n is Notification => n !== undefined) };
  }

  /** The assessment's notice, if it is due and was not sent before for this version and threshold. */
  private async firstNotice(
    vault: string,
    a: Assessment,
    now: Date,
    { telemetry, record }: PageContext,
  ): Promise<Notification | undefined> {
    if (!a.notice) return undefined;
    if (
      a.notice.afterFailure &&
      (await record(this.options.failures?.hasFailed(vault, a.name), false)) === false
    )
      return undefined;
    if (!(await record(this.options.notices.firstTime(`${vault}/${a.name}/${a.notice.key}`), false)))
      return undefined;
    this.noticeEvent(telemetry, vault, a);
    return notification(
      a.notice.kind,
      { vault, secret: a.name, recipients: a.recipients },
      { kind: a.kind ?? null, optedIn: a.optedIn, ...a.notice.details },
      now,
    );
  }

  private noticeEvent(telemetry: Telemetry, vault: string, a: Assessment): void {
    if (!a.notice) return;
    const event =
      a.notice.kind === 'expired'
        ? EVENTS.SecretExpired
        : a.notice.kind === 'expiring'
          ? EVENTS.SecretExpiring
          : undefined;
    if (!event) return;
    telemetry.event(event, {
      vault,
      secret: a.name,
      kind: a.kind,
      optedIn: a.optedIn,
      expiresOn: String(a.notice.details.expiresOn ?? a.notice.details.expiredOn ?? ''),
      within: String(a.notice.details.within ?? 'expired'),
    });
  }

  private count(s: VaultSummary, a: Assessment): void {
    s.scanned++;
    s.byExpiry[a.bucket] = (s.byExpiry[a.bucket] ?? 0) + 1;
    s.byState[a.state] = (s.byState[a.state] ?? 0) + 1;
    if (a.disabled) s.disabled++;
    if (a.bucket === 'expired') s.expired++;
    else if (a.bucket !== 'later' && a.bucket !== 'none') s.expiring++;
    if (!a.optedIn) return;
    s.optedIn++;
    if (a.kind) s.byKind[a.kind] = (s.byKind[a.kind] ?? 0) + 1;
    if (a.findings) s.invalid++;
    if (a.work.some((w) => w.op === 'rotate')) s.due++;
  }
}
