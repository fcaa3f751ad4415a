/**
 * Custom events sent to Application Insights (design section 6), and the dimensions (customDimensions)
 * each carries. The workbook and the alert rules in infra/ read exactly these names and dimensions:
 * tests/infra/kql.test.ts parses every query and checks each event name and dimension it reads
 * against these lists, and `Telemetry.event` accepts only the dimensions listed for the event.
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
  /** A message left its queue without being processed: malformed, retries used up, or dead-lettered. */
  MessagePoisoned: 'MessagePoisoned',
  /** How many messages a queue (or the Event Grid dead-letter container) holds, measured by the scan. */
  QueueBacklog: 'QueueBacklog',
} as const;

export type EventName = (typeof EVENTS)[keyof typeof EVENTS];

/** On every event of an invocation (set with `Telemetry.with`). */
export const INVOCATION_DIMENSIONS = ['invocationId'] as const;

/** Where a rotation outcome came from (set with `Telemetry.with` by the trigger). */
const TRIGGER_DIMENSIONS = ['trigger', 'eventId', 'plannedReason', 'attempt'] as const;

/**
 * A provider's or Key Vault's own answer to a failed call, when it gave one (shared/errors.ts
 * `errorFacts`): HTTP status, service error code, service message (redacted).
 */
export const ERROR_DIMENSIONS = ['errorStatus', 'errorCode', 'errorMessage'] as const;

/** trackOutcome (shared/telemetry/telemetry.ts): every engine outcome. */
const OUTCOME_DIMENSIONS = [
  'vault',
  'secret',
  'kind',
  'outcome',
  'durationMs',
  'rotationId',
  'operation',
  ...TRIGGER_DIMENSIONS,
] as const;

/**
 * A failure is `final` when nothing will retry it: permanent, or the queue's last delivery
 * (host.json maxDequeueCount). `poisoned`: this attempt's message went to the poison queue.
 */
const FAILURE_DIMENSIONS = ['step', 'reason', 'transient', 'final', 'poisoned', ...ERROR_DIMENSIONS] as const;

/** The ScanCompleted counts (one event per vault per scan). */
export const SCAN_COUNTS = [
  'scanned',
  'optedIn',
  'due',
  'expiring',
  'expired',
  'invalid',
  'disabled',
  'enqueued',
  'listPages',
  'durationMs',
] as const;

const NOTIFICATION_DIMENSIONS = ['channel', 'kind', 'vault', 'secret', 'attempt', 'outcome'] as const;

export const EVENT_DIMENSIONS = {
  SecretRotated: [...OUTCOME_DIMENSIONS, 'newExpiry'],
  SecretRotationFailed: [...OUTCOME_DIMENSIONS, ...FAILURE_DIMENSIONS],
  SecretRotationSkipped: [...OUTCOME_DIMENSIONS, 'reason'],
  SecretRotationPlanned: [...OUTCOME_DIMENSIONS],
  PreviousCredentialRevoked: [...OUTCOME_DIMENSIONS, 'credentialCount'],
  OrphanCredentialRevoked: [...OUTCOME_DIMENSIONS, 'credentialCount'],
  SecretExpiring: ['vault', 'secret', 'kind', 'optedIn', 'expiresOn', 'within'],
  SecretExpired: ['vault', 'secret', 'kind', 'optedIn', 'expiresOn', 'within'],
  SecretPolicyInvalid: ['vault', 'secret', 'kind', 'reason'],
  /**
   * One per vault per scan. `outcome`: `completed`, or `failed` (the counts are then partial and
   * `error` says why). `byKind`, `byExpiry`, `byState`: JSON objects, key → count.
   */
  ScanCompleted: ['vault', 'outcome', 'error', ...SCAN_COUNTS, 'byKind', 'byExpiry', 'byState'],
  NotificationSent: [...NOTIFICATION_DIMENSIONS],
  NotificationFailed: [
    ...NOTIFICATION_DIMENSIONS,
    'reason',
    'transient',
    'final',
    'poisoned',
    ...ERROR_DIMENSIONS,
  ],
  /**
   * `queue`: where the message was (`scan-requests`, `rotation-requests`, `notifications`, or `event-grid` for a Key
   * Vault event); `poisonQueue`: where it is now (a `-poison` queue, the dead-letter container, or
   * `dropped` for a malformed Key Vault event); `cause`: `malformed`, `retries-exhausted` or
   * `dead-lettered`.
   */
  MessagePoisoned: [
    'queue',
    'poisonQueue',
    'cause',
    'reason',
    'messageId',
    'attempt',
    'vault',
    'secret',
    'channel',
    'kind',
    'eventType',
    ...ERROR_DIMENSIONS,
  ],
  /** `messages`: approximate message count (blobs for the dead-letter container); `oldest`: ISO time, when known. */
  QueueBacklog: ['queue', 'messages', 'oldest'],
  NotificationChannelDisabled: ['channel', 'setting', 'reason'],
} as const satisfies Record<EventName, readonly string[]>;

/** The dimensions an event may carry: its own, and the invocation's. */
export type EventDimension<E extends EventName> =
  (typeof EVENT_DIMENSIONS)[E][number] | (typeof INVOCATION_DIMENSIONS)[number];

/** What `Telemetry.event` takes for an event: its declared dimensions only. */
export type EventDimensions<E extends EventName> = {
  [K in EventDimension<E>]?: string | number | boolean | null | undefined;
};

/**
 * States of a secret in ScanCompleted `byState`, one per secret, the first that applies: not opted in;
 * blocked (bad rotation tags, or a disabled current version: a person must act); expired; due (a
 * rotation is planned); in grace (rotated, the previous credential still valid); healthy.
 */
export const SECRET_STATES = ['notOptedIn', 'blocked', 'expired', 'due', 'inGrace', 'healthy'] as const;
export type SecretState = (typeof SECRET_STATES)[number];
