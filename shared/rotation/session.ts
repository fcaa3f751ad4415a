/**
 * What one operation on a secret shares, under the secret's lock: the session (the secret as read,
 * its policy, its issuance records), named steps for failures, and the small writes every operation
 * makes (tags, records) with the session's view kept up to date. Used by the engine and by reconcile.
 */
import type { KeyVaultSecret } from '@azure/keyvault-secrets';
import type { Vault } from '../clients/keyvault';
import type { Lease } from '../clients/lock';
import type { Settings } from '../config';
import { MARKER_PREFIX } from '../constants';
import { PermanentError } from '../errors';
import type { Issuance, IssuanceChange, IssuanceRecord } from '../issuance';
import type { Notification, NotificationKind } from '../notifications/notification';
import type { RotationPolicy } from '../policy';
import { redactError } from '../redact';
import type { RotatorDeps, SecretContext } from '../rotators/types';
import type { Outcome, OutcomeBase, Step } from './engine';

/** A failure at a named step; the engine's session turns it into a `failed` outcome. */
export class StepFailure extends Error {
  constructor(
    readonly step: Step,
    readonly error: unknown,
  ) {
    super(redactError(error));
  }
}

export async function step<T>(name: Step, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw e instanceof StepFailure ? e : new StepFailure(name, e);
  }
}

/** Everything an operation on one secret knows once it holds the lock and has read the secret. */
export interface Session {
  /** The secret's lock, held for the whole operation. */
  lease: Lease;
  vault: Vault;
  current: KeyVaultSecret;
  policy: RotationPolicy;
  ctx: SecretContext;
  rotationId: string;
  now: Date;
  dryRun: boolean;
  /** `targetKey(kind, target)`, as the issuance records name it. */
  target: string;
  /** This secret's issuance records, read once per operation under the lock. */
  records: IssuanceRecord[];
  notify(kind: NotificationKind, details: Notification['details']): void;
}

export type OpResult = Omit<Outcome, keyof OutcomeBase> & { kind?: never };

/** Writes the current version's tags, and keeps the session's view of them. */
export async function updateTags(s: Session, tags: Record<string, string>): Promise<void> {
  await s.vault.client.updateSecretProperties(s.ctx.secretName, s.current.properties.version as string, {
    tags,
  });
  // Later writes in this session start from what the vault holds now, not from the first read.
  s.current.properties.tags = tags;
}

/** Moves a record forward, in the store and in the session's view of it. */
export async function advance(
  issuance: Issuance,
  s: Session,
  record: IssuanceRecord,
  change: IssuanceChange,
): Promise<IssuanceRecord> {
  const next = await issuance.update(record, change);
  s.records = s.records.map((r) => (r.rotationId === next.rotationId ? next : r));
  return next;
}

/** Records of rotations that asked a provider for a credential and never stored or gave it back. */
export function openRecords(s: Session): IssuanceRecord[] {
  return s.records.filter(
    (r) =>
      (r.state === 'requested' || r.state === 'issued') &&
      r.kind === s.policy.kind &&
      r.target === s.target &&
      r.rotationId !== s.rotationId,
  );
}

/**
 * The confused-deputy check, before any call that reaches a provider: the target must be bound to
 * this vault and secret by someone who controls it. ROTATION_BINDINGS (app settings) is read first;
 * only then, for kinds that keep a binding on the target itself, the target's own tag.
 */
export async function checkBinding(s: Session, settings: Settings, deps: RotatorDeps): Promise<void> {
  const { policy, ctx } = s;
  const key = policy.rotator.bindingKey(policy.target);
  if (key === undefined) return;
  const bound = settings.ROTATION_BINDINGS.some(
    (b) =>
      b.vault.toLowerCase() === ctx.vaultName.toLowerCase() &&
      (b.secret === '*' || b.secret.toLowerCase() === ctx.secretName.toLowerCase()) &&
      b.target.toLowerCase() === key.toLowerCase(),
  );
  if (bound || (await policy.rotator.hasTargetBinding?.(policy.target, ctx, deps))) return;
  throw new PermanentError(
    `${policy.rotator.describe(policy.target)} is not bound to ${ctx.vaultName}/${ctx.secretName}: ` +
      `an admin of the target must add "${ctx.vaultName}/${ctx.secretName}=${key}" to ROTATION_BINDINGS` +
      (policy.rotator.hasTargetBinding
        ? ` or tag the target "${MARKER_PREFIX}:${ctx.vaultName}/${ctx.secretName}"`
        : ''),
  );
}
