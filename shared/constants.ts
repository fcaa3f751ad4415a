/** Tag names of the opt-in contract (design section 2). Kebab-case; values ≤ 256 chars, ≤ 15 tags. */
export const TAGS = {
  kind: 'rotation-kind',
  validityDays: 'rotation-validity-days',
  windowDays: 'rotation-window-days',
  graceHours: 'rotation-grace-hours',
  notify: 'notify',
  databricksHost: 'databricks-host',
  /** For databricks-pat: the service principal that owns the PAT, when the rotator authenticates as it. */
  databricksPatOwner: 'databricks-pat-owner',
  databricksAccountId: 'databricks-account-id',
  databricksSpId: 'databricks-sp-id',
  entraAppId: 'entra-app-id',
  // Written by the rotator: the state of the credential in this version.
  credentialId: 'credential-id',
  previousCredentialId: 'previous-credential-id',
  revokePreviousAfter: 'revoke-previous-after',
  rotationId: 'rotation-id',
  /** Set on the current version just before a new credential is created; a new version drops it. */
  rotationStarted: 'rotation-started',
} as const;

/** Tags only the rotator writes; they describe one version and are not copied forward blindly. */
export const STATE_TAGS = [
  TAGS.credentialId,
  TAGS.previousCredentialId,
  TAGS.revokePreviousAfter,
  TAGS.rotationId,
  TAGS.rotationStarted,
] as const;

/** Tag names of the Azure Key Vault rotation samples, accepted so their secrets migrate as they are. */
export const SAMPLE_TAG_ALIASES = {
  CredentialId: TAGS.credentialId,
  ValidityPeriodDays: TAGS.validityDays,
} as const;

export const KEY_VAULT_LIMITS = { maxTags: 15, maxTagValueLength: 256 } as const;

/** Storage names shared by the functions, the engine and the Bicep. */
export const STORAGE = {
  rotationQueue: 'rotation-requests',
  notificationQueue: 'notifications',
  lockContainer: 'locks',
  /** The issuance record (shared/issuance.ts): what this service asked providers for. */
  issuanceContainer: 'issuance',
} as const;

/** The prefix that marks provider credentials this service created: `kv-rotator:{vault}/{secret}:{rotationId}`. */
export const MARKER_PREFIX = 'kv-rotator';

export const RESOURCE_SCOPES = {
  databricks: '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default',
  graph: 'https://graph.microsoft.com/.default',
} as const;

/** The Key Vault event types the Event Grid handler acts on; the Bicep subscription filters to these. */
export const HANDLED_EVENT_TYPES = [
  'Microsoft.KeyVault.SecretNearExpiry',
  'Microsoft.KeyVault.SecretExpired',
] as const;

/** host.json `extensions.queues.maxDequeueCount`: the attempt after which a message goes to `{queue}-poison`. */
export const MAX_DEQUEUE_COUNT = 5;

/** Days before expiry at which `expiring` is announced, each once per secret version. */
export const EXPIRY_THRESHOLDS_DAYS = [30, 14, 7, 1] as const;
