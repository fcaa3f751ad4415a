/**
 * Custom events sent to Application Insights (design section 6). The workbook and alert rules in
 * infra/ query exactly these names and dimensions; a contract test keeps the two in step.
 */
export const EVENTS = {
  SecretRotated: 'SecretRotated',
  SecretRotationFailed: 'SecretRotationFailed',
  SecretRotationSkipped: 'SecretRotationSkipped',
  SecretRotationPlanned: 'SecretRotationPlanned',
  SecretExpiring: 'SecretExpiring',
  SecretExpired: 'SecretExpired',
  PreviousCredentialRevoked: 'PreviousCredentialRevoked',
  OrphanCredentialRevoked: 'OrphanCredentialRevoked',
  SecretPolicyInvalid: 'SecretPolicyInvalid',
  ScanCompleted: 'ScanCompleted',
  NotificationSent: 'NotificationSent',
  NotificationFailed: 'NotificationFailed',
  /** Once per process: a channel is off (dims channel, setting, reason); rotation goes on without it. */
  NotificationChannelDisabled: 'NotificationChannelDisabled',
} as const;

export type EventName = (typeof EVENTS)[keyof typeof EVENTS];

/**
 * Dimensions (customDimensions) every per-secret event carries. `ScanCompleted` carries counts instead:
 * `vault`, `scanned`, `optedIn`, `due`, `expiring`, `expired`, `invalid`, `enqueued`, `durationMs`,
 * `byKind` (JSON object kind → count) and `byExpiry` (JSON object bucket → count).
 */
export const SECRET_DIMENSIONS = [
  'vault',
  'secret',
  'kind',
  'outcome',
  'durationMs',
  'rotationId',
  'invocationId',
] as const;
