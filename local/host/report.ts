/**
 * What the local runner prints for people: one short line per thing that happened (from the telemetry
 * events the functions wrote) and a table of the secrets before and after the cycle (read from the
 * vaults). Nothing here is assumed: a row says what the events and the vault say.
 */
import type { TelemetryEvent } from './telemetry';

/** A secret's current version as a list page shows it (no value). */
export interface SecretSnapshot {
  vault: string;
  secret: string;
  version?: string;
  kind?: string;
  expiresOn?: Date;
}

const day = (d: Date | undefined) => (d ? d.toISOString().slice(0, 10) : 'none');
const clip = (s: string, n = 140) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const where = (d: Record<string, string>) => `${d.vault ?? '?'}/${d.secret ?? '?'}`;

/** The line an event deserves on the console, or undefined for events only the summary uses. */
export function progressLine(e: TelemetryEvent): string | undefined {
  const d = e.dimensions;
  const kind = d.kind ? ` (${d.kind})` : '';
  switch (e.name) {
    case 'ScanCompleted':
      return d.outcome === 'failed'
        ? `✗ scan of ${d.vault} failed: ${clip(d.error ?? '')}`
        : `· scanned ${d.vault}: ${d.scanned} secrets, ${d.optedIn} opted in, ${d.due} due, ${d.enqueued} ${d.enqueued === '1' ? 'operation' : 'operations'} queued`;
    case 'SecretRotated':
      return `✓ rotated ${where(d)}${kind}, new expiry ${d.newExpiry?.slice(0, 10) ?? '?'}`;
    case 'SecretRotationPlanned':
      return `· planned ${where(d)}${kind} (dry run, nothing changed)`;
    case 'SecretRotationFailed':
      return `✗ rotation of ${where(d)}${kind} failed at ${d.step}${d.transient === 'true' ? ' (will retry)' : ''}: ${clip(d.reason ?? '')}`;
    case 'SecretRotationSkipped':
      return `· skipped ${where(d)}: ${clip(d.reason ?? '')}`;
    case 'SecretPolicyInvalid':
      return `✗ bad tags on ${where(d)}${kind}: ${clip(d.reason ?? '')}`;
    case 'SecretExpiring':
      return `! ${where(d)} expires ${d.expiresOn?.slice(0, 10) ?? '?'} (within ${d.within})${d.optedIn === 'false' ? ', not opted in' : ''}`;
    case 'SecretExpired':
      return `! ${where(d)} has expired${d.optedIn === 'false' ? ' (not opted in)' : ''}`;
    case 'PreviousCredentialRevoked':
      return `✓ revoked the previous credential of ${where(d)}${kind}`;
    case 'OrphanCredentialRevoked':
      return `✓ revoked ${d.credentialCount ?? ''} orphaned credential(s) of ${where(d)}${kind}`;
    case 'NotificationFailed':
      return `✗ ${d.channel} notification (${d.kind}) for ${where(d)} failed${d.transient === 'true' ? ', will retry' : ''}: ${clip(d.reason ?? '')}`;
    default:
      return undefined;
  }
}

/** The outcome column: what the events of the cycle say about one secret, most telling first. */
export function outcomeOf(
  events: TelemetryEvent[],
  before: SecretSnapshot | undefined,
  after: SecretSnapshot | undefined,
): string {
  const find = (name: string) => events.filter((e) => e.name === name).at(-1)?.dimensions;
  const rotated = find('SecretRotated');
  if (rotated) return 'rotated';
  const planned = find('SecretRotationPlanned');
  if (planned) return 'planned (dry run)';
  const failed = find('SecretRotationFailed');
  if (failed) return `failed at ${failed.step}${failed.transient === 'true' ? ' (retrying)' : ''}`;
  const invalid = find('SecretPolicyInvalid');
  const expiring = find('SecretExpiring') ?? find('SecretExpired');
  const notice = expiring ? ' · expiry notice' : '';
  if (invalid) {
    const tags = [...new Set([...invalid.reason!.matchAll(/(?:^|; )([a-z-]+):/g)].map((m) => m[1]))];
    return `bad tag ${tags.join(', ')} · reported${notice}`;
  }
  const revoked = find('PreviousCredentialRevoked');
  if (revoked) return 'previous credential revoked';
  if (before && after && before.version !== after.version) return 'new version (not by this cycle)';
  if (!before?.kind) return `not opted in${notice}`;
  const skipped = find('SecretRotationSkipped');
  if (skipped) return `skipped: ${clip(skipped.reason ?? '', 60)}`;
  return `not due${notice}`;
}

export interface SummaryRow {
  vault: string;
  secret: string;
  kind: string;
  expiry: string;
  outcome: string;
}

/** One row per secret in the vaults, before → after, with the outcome from the events. */
export function summarize(
  before: SecretSnapshot[],
  after: SecretSnapshot[],
  events: TelemetryEvent[],
): SummaryRow[] {
  const key = (s: { vault?: string; secret?: string }) => `${s.vault?.toLowerCase()}/${s.secret}`;
  const afterByKey = new Map(after.map((s) => [key(s), s]));
  const beforeByKey = new Map(before.map((s) => [key(s), s]));
  const keys = [...new Set([...before.map(key), ...after.map(key)])];
  return keys
    .map((k) => {
      const b = beforeByKey.get(k);
      const a = afterByKey.get(k);
      const s = (b ?? a) as SecretSnapshot;
      const mine = events.filter((e) => key(e.dimensions) === k);
      const changed = b?.version !== a?.version;
      return {
        vault: s.vault,
        secret: s.secret,
        kind: s.kind ?? '—',
        expiry: changed ? `${day(b?.expiresOn)} → ${day(a?.expiresOn)}` : `${day(b?.expiresOn)} (unchanged)`,
        outcome: outcomeOf(mine, b, a),
      };
    })
    .sort((x, y) => x.vault.localeCompare(y.vault) || x.secret.localeCompare(y.secret));
}

/** An aligned text table with a header and a rule; no leading indent. */
export function formatTable(rows: SummaryRow[]): string {
  const header: SummaryRow = {
    vault: 'vault',
    secret: 'secret',
    kind: 'kind',
    expiry: 'old expiry → new expiry',
    outcome: 'outcome',
  };
  const cols = Object.keys(header) as (keyof SummaryRow)[];
  const width = Object.fromEntries(
    cols.map((c) => [c, Math.max(...[header, ...rows].map((r) => r[c].length))]),
  );
  const line = (r: SummaryRow) =>
    cols.map((c, i) => (i === cols.length - 1 ? r[c] : r[c].padEnd(width[c] as number))).join(' │ ');
  const rule = cols.map((c) => '─'.repeat(width[c] as number)).join('─┼─');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Notifications by channel and outcome, from NotificationSent / NotificationFailed events. */
export function notificationCounts(
  events: TelemetryEvent[],
): Record<string, { sent: number; failed: number }> {
  const counts: Record<string, { sent: number; failed: number }> = {};
  for (const e of events) {
    if (e.name !== 'NotificationSent' && e.name !== 'NotificationFailed') continue;
    const c = (counts[e.dimensions.channel ?? '?'] ??= { sent: 0, failed: 0 });
    if (e.name === 'NotificationSent') c.sent++;
    else c.failed++;
  }
  return counts;
}
