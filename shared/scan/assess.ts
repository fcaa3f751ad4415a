import type { SecretProperties } from '@azure/keyvault-secrets';
import type { Settings } from '../config';
import { EXPIRY_THRESHOLDS_DAYS, TAGS } from '../constants';
import type { NotificationKind } from '../notifications/notification';
import { readPolicy } from '../policy';
import type { Finding, Rotator } from '../rotators/types';
import type { SecretState } from '../telemetry/events';
import type { WorkItem } from '../work';

const DAY_MS = 86_400_000;
/** A `rotation-started` marker older than this belongs to a rotation that died. */
export const INTERRUPTED_AFTER_MS = 15 * 60_000;

export type ExpiryBucket = 'expired' | '1d' | '7d' | '14d' | '30d' | 'later' | 'none';

/** A one-off notice; `key` makes it once per secret version and threshold. */
export interface Notice {
  kind: NotificationKind;
  key: string;
  details: Record<string, string | number | boolean | null>;
  /** Only once a rotation has been tried and failed (not in the tick that enqueues the rotation). */
  afterFailure?: boolean;
}

export interface Assessment {
  name: string;
  kind?: string;
  optedIn: boolean;
  disabled: boolean;
  findings?: Finding[];
  bucket: ExpiryBucket;
  state: SecretState;
  work: WorkItem[];
  notice?: Notice;
  recipients: string[];
}

function bucketOf(exp: Date | undefined, now: Date): ExpiryBucket {
  if (!exp) return 'none';
  const days = (exp.getTime() - now.getTime()) / DAY_MS;
  if (days <= 0) return 'expired';
  // Smallest threshold first; no allocation, as this runs for every secret of every scan.
  for (let i = EXPIRY_THRESHOLDS_DAYS.length - 1; i >= 0; i--) {
    const t = EXPIRY_THRESHOLDS_DAYS[i] as number;
    if (days <= t) return `${t}d` as ExpiryBucket;
  }
  return 'later';
}

/** The expired or expiring notice for a bucket; none when expiry is far or absent. */
function noticeOfExpiry(
  bucket: ExpiryBucket,
  exp: Date | undefined,
  version: string,
  reason: string,
): Notice | undefined {
  if (bucket === 'expired')
    return {
      kind: 'expired',
      key: `${version}-expired`,
      details: { expiredOn: exp?.toISOString() ?? null, reason },
    };
  if (bucket === 'later' || bucket === 'none') return undefined;
  return {
    kind: 'expiring',
    key: `${version}-${bucket}`,
    details: { expiresOn: exp?.toISOString() ?? null, within: bucket, reason },
  };
}

/**
 * What the scan makes of one secret, from its list-page properties alone (tags and expiry, never
 * the value): the work to enqueue and the notice to send, if any. Pure, so it is cheap per secret.
 */
export function assess(
  vault: string,
  props: SecretProperties,
  settings: Settings,
  rotators: ReadonlyMap<string, Rotator>,
  now: Date,
): Assessment {
  const exp = props.expiresOn;
  const bucket = bucketOf(exp, now);
  const base = {
    name: props.name,
    disabled: props.enabled === false,
    bucket,
    work: [] as WorkItem[],
    recipients: [] as string[],
  };
  const version = props.version ?? 'unknown';
  const policy = readPolicy(props.tags, settings, rotators);
  if (policy.status === 'not-opted-in') {
    return {
      ...base,
      optedIn: false,
      state: 'notOptedIn',
      notice: noticeOfExpiry(bucket, exp, version, `not opted in to rotation (no ${TAGS.kind} tag)`),
    };
  }
  if (policy.status === 'invalid') {
    const reason = policy.findings.map((f) => `${f.tag}: ${f.reason}`).join('; ');
    return {
      ...base,
      optedIn: true,
      state: 'blocked',
      kind: policy.kind,
      findings: policy.findings,
      notice: noticeOfExpiry(bucket, exp, version, `cannot rotate: ${reason}`) ?? {
        kind: 'rotation-failed',
        key: `${version}-invalid`,
        details: { step: 'policy', reason },
      },
    };
  }
  const p = policy.policy;
  const assessment: Assessment = {
    ...base,
    optedIn: true,
    state: 'healthy',
    kind: p.kind,
    recipients: p.notify,
  };
  if (base.disabled) {
    assessment.state = 'blocked';
    assessment.notice = {
      kind: 'rotation-failed',
      key: `${version}-disabled`,
      details: { step: 'read', reason: 'the current version is disabled: reported, not rotated' },
    };
    return assessment;
  }
  const dueAt = exp ? exp.getTime() - p.windowDays * DAY_MS : undefined;
  if (dueAt === undefined || dueAt <= now.getTime())
    assessment.work.push({
      vault,
      secret: props.name,
      op: 'rotate',
      reason: bucket === 'expired' ? 'expired' : 'due',
    });
  if (p.state.previousCredentialId && (!p.state.revokePreviousAfter || p.state.revokePreviousAfter <= now)) {
    assessment.work.push({ vault, secret: props.name, op: 'revoke-previous', reason: 'grace-period-over' });
  }
  if (
    p.state.rotationStarted &&
    now.getTime() - p.state.rotationStarted.at.getTime() > INTERRUPTED_AFTER_MS
  ) {
    assessment.work.push({ vault, secret: props.name, op: 'reconcile', reason: 'interrupted-rotation' });
  }
  // An opted-in secret should have rotated when its window opened; still expiring below the
  // window means rotation keeps failing, which owners must hear about.
  const withinWindow =
    bucket !== 'later' &&
    bucket !== 'none' &&
    bucket !== 'expired' &&
    Number.parseInt(bucket, 10) < p.windowDays;
  if (bucket === 'expired' || withinWindow) {
    // Only once a rotation has failed: not in the tick that enqueues it.
    const notice = noticeOfExpiry(bucket, exp, version, 'rotation has not succeeded yet');
    assessment.notice = notice && { ...notice, afterFailure: true };
  }
  if (bucket === 'expired') assessment.state = 'expired';
  else if (assessment.work.some((w) => w.op === 'rotate')) assessment.state = 'due';
  else if (p.state.previousCredentialId && p.state.revokePreviousAfter && p.state.revokePreviousAfter > now)
    assessment.state = 'inGrace';
  return assessment;
}
