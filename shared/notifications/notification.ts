import { randomUUID } from 'node:crypto';
import { redact } from '../redact';

export const NOTIFICATION_KINDS = [
  'rotated',
  'rotation-failed',
  'expiring',
  'expired',
  'previous-revoked',
  'orphan-revoked',
] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

export type Severity = 'info' | 'warning' | 'error';

/** What owners are told (design section 5). Never carries a secret value: details are redacted. */
export interface Notification {
  id: string;
  kind: NotificationKind;
  vault: string;
  secret: string;
  severity: Severity;
  at: string;
  /** Extra recipients from the secret's `notify` tag. */
  recipients: string[];
  details: Record<string, string | number | boolean | null>;
}

const SEVERITY: Record<NotificationKind, Severity> = {
  rotated: 'info',
  'rotation-failed': 'error',
  expiring: 'warning',
  expired: 'error',
  'previous-revoked': 'info',
  'orphan-revoked': 'warning',
};

export function notification(
  kind: NotificationKind,
  where: { vault: string; secret: string; recipients?: string[] },
  details: Notification['details'],
  at: Date,
): Notification {
  return {
    id: randomUUID(),
    kind,
    vault: where.vault,
    secret: where.secret,
    severity: SEVERITY[kind],
    at: at.toISOString(),
    recipients: where.recipients ?? [],
    details: Object.fromEntries(
      Object.entries(details).map(([k, v]) => [k, typeof v === 'string' ? redact(v) : v]),
    ),
  };
}
