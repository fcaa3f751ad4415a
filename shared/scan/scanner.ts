import type { Settings } from '../config';
import type { Vaults } from '../clients/keyvault';
import type { Notices } from '../clients/notices';
import type { Announcements } from '../announcements';
import type { Failures } from '../failures';
import type { InFlight } from '../inflight';
import { notification, type Notification } from '../notifications/notification';
import { redactError } from '../redact';
import type { Rotator } from '../rotators/types';
import { EVENTS } from '../telemetry/events';
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
  durationMs: number;
  error?: string;
}

export interface ScanResult {
  work: WorkItem[];
  notifications: Notification[];
  vaults: VaultSummary[];
}

export interface ScannerOptions {
  settings: Settings;
  vaults: Vaults;
  rotators: ReadonlyMap<string, Rotator>;
  notices: Notices;
  telemetry: Telemetry;
  now?: () => Date;
  /** Work already queued for a secret is not enqueued again. */
  inflight?: InFlight;
  /** Rotations stored but never announced are announced. */
  announcements?: Announcements;
  /** "Rotation has not succeeded yet" waits for a rotation to have failed. */
  failures?: Failures;
}

/**
 * The timer's planner: streams every vault's list pages (25 secrets each, tags and expiry only,
 * never a value, no per-secret GET) with bounded concurrency across vaults, and returns the work to
 * enqueue and the notices to send. Memory stays flat: a page is assessed and dropped.
 */
export class Scanner {
  private readonly now: () => Date;

  constructor(private readonly options: ScannerOptions) {
    this.now = options.now ?? (() => new Date());
  }

  async scan(): Promise<ScanResult> {
    const result: ScanResult = { work: [], notifications: [], vaults: [] };
    const names = this.options.vaults.names();
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++] as string;
        result.vaults.push(await this.scanVault(name, result));
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(this.options.settings.SCAN_CONCURRENCY, names.length) }, worker),
    );
    return result;
  }

  private async scanVault(name: string, into: ScanResult): Promise<VaultSummary> {
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
      durationMs: 0,
    };
    const { telemetry } = this.options;
    try {
      const vault = this.options.vaults.get(name);
      for await (const page of vault.client.listPropertiesOfSecrets().byPage({ maxPageSize: 25 })) {
        summary.listPages++;
        for (const props of page) {
          const a = assess(vault.name, props, this.options.settings, this.options.rotators, now);
          this.count(summary, a);
          const work = this.options.inflight ? await this.options.inflight.admit(a.work) : a.work;
          into.work.push(...work);
          summary.enqueued += work.length;
          const late = await this.options.announcements?.missed(vault.name, props, now);
          if (late) into.notifications.push(late);
          if (a.findings) {
            telemetry.event(EVENTS.SecretPolicyInvalid, {
              vault: vault.name,
              secret: a.name,
              kind: a.kind,
              reason: a.findings.map((f) => `${f.tag}: ${f.reason}`).join('; '),
            });
          }
          if (
            a.notice &&
            (!a.notice.afterFailure ||
              (await this.options.failures?.hasFailed(vault.name, a.name)) !== false) &&
            (await this.options.notices.firstTime(`${vault.name}/${a.name}/${a.notice.key}`))
          ) {
            into.notifications.push(
              notification(
                a.notice.kind,
                { vault: vault.name, secret: a.name, recipients: a.recipients },
                { kind: a.kind ?? null, optedIn: a.optedIn, ...a.notice.details },
                now,
              ),
            );
            const event =
              a.notice.kind === 'expired'
                ? EVENTS.SecretExpired
                : a.notice.kind === 'expiring'
                  ? EVENTS.SecretExpiring
                  : undefined;
            if (event)
              telemetry.event(event, {
                vault: vault.name,
                secret: a.name,
                kind: a.kind,
                optedIn: a.optedIn,
                expiresOn: String(a.notice.details.expiresOn ?? a.notice.details.expiredOn ?? ''),
                within: String(a.notice.details.within ?? 'expired'),
              });
          }
        }
      }
    } catch (e) {
      // One unreachable or throttled-out vault must not stop the others; the event says why.
      summary.error = redactError(e);
      telemetry.log('error', `scan of vault ${name} failed`, { vault: name, error: summary.error });
    }
    summary.durationMs = Date.now() - started;
    telemetry.event(EVENTS.ScanCompleted, {
      ...summary,
      byKind: JSON.stringify(summary.byKind),
      byExpiry: JSON.stringify(summary.byExpiry),
      outcome: summary.error ? 'failed' : 'completed',
    });
    return summary;
  }

  private count(s: VaultSummary, a: Assessment): void {
    s.scanned++;
    s.byExpiry[a.bucket] = (s.byExpiry[a.bucket] ?? 0) + 1;
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
