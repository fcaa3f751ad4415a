import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KeyVaultSecret } from '@azure/keyvault-secrets';
import type { Settings } from '../config';
import { MARKER_PREFIX, TAGS } from '../constants';
import { isTransient, PermanentError } from '../errors';
import type { Vault, Vaults } from '../clients/keyvault';
import type { Locks } from '../clients/lock';
import { notification, type Notification, type NotificationKind } from '../notifications/notification';
import { readPolicy, type RotationPolicy } from '../policy';
import { redactError, registerSecret } from '../redact';
import type { CredentialInfo, NewCredential, Rotator, RotatorDeps, SecretContext } from '../rotators/types';

export type Step =
  'lock' | 'read' | 'policy' | 'binding' | 'create' | 'verify' | 'store' | 'revoke' | 'reconcile';

interface OutcomeBase {
  vault: string;
  secret: string;
  kind?: string;
  rotationId?: string;
  durationMs: number;
}

export type Outcome = OutcomeBase &
  (
    | {
        status: 'rotated';
        credentialId: string;
        previousCredentialId?: string;
        oldExpiry?: string;
        newExpiry: string;
        revokePreviousAfter?: string;
      }
    | { status: 'revoked'; credentialIds: string[] }
    | { status: 'skipped'; reason: string }
    | { status: 'planned'; plan: string[] }
    | { status: 'failed'; step: Step; reason: string; transient: boolean }
  );

export interface RotationResult {
  outcome: Outcome;
  /** To enqueue, one message per (notification, channel). Free of secret values. */
  notifications: Notification[];
}

export interface SecretRequest {
  vault: string;
  secret: string;
  /** Plan and report, change nothing (also ROTATION_DRY_RUN). */
  dryRun?: boolean;
}

export interface RotateRequest extends SecretRequest {
  /** Rotate even if not due (e.g. a suspected leak); also revokes a previous credential still in grace. */
  force?: boolean;
}

export interface EngineOptions {
  settings: Settings;
  rotators: ReadonlyMap<string, Rotator>;
  vaults: Vaults;
  locks: Locks;
  deps: RotatorDeps;
  now?: () => Date;
  /** Verification retries for propagation delay: attempts, and the first delay (doubling). */
  verify?: { attempts: number; delayMs: number };
  /** Credentials younger than this are never treated as orphans (a rotation may be in flight). */
  orphanSafetyMs?: number;
}

const DAY_MS = 86_400_000;
/** A marker-less credential counts as a crashed rotation's if created this close to its start. */
const STARTED_WINDOW_MS = 15 * 60_000;

/** A failure at a named step; `session` turns it into a `failed` outcome. */
class StepFailure extends Error {
  constructor(
    readonly step: Step,
    readonly error: unknown,
  ) {
    super(redactError(error));
  }
}

async function step<T>(name: Step, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw e instanceof StepFailure ? e : new StepFailure(name, e);
  }
}

/** Everything an operation on one secret knows once it holds the lock and has read the secret. */
interface Session {
  vault: Vault;
  current: KeyVaultSecret;
  policy: RotationPolicy;
  ctx: SecretContext;
  rotationId: string;
  now: Date;
  dryRun: boolean;
  notify(kind: NotificationKind, details: Notification['details']): void;
}

type OpResult = Omit<Outcome, keyof OutcomeBase> & { kind?: never };

/**
 * The rotation protocol (design section 3), one engine for the Event Grid handler and the queue
 * worker: lock, re-read, create, verify, store, compensate, revoke the previous after the grace
 * period, reconcile orphans, dry run. A failure at any step leaves a working credential in the vault.
 */
export class RotationEngine {
  private readonly now: () => Date;
  private readonly verifyPolicy: { attempts: number; delayMs: number };
  private readonly orphanSafetyMs: number;

  constructor(private readonly options: EngineOptions) {
    this.now = options.now ?? (() => new Date());
    this.verifyPolicy = options.verify ?? { attempts: 6, delayMs: 2_000 };
    this.orphanSafetyMs = options.orphanSafetyMs ?? 15 * 60_000;
  }

  /** Rotates the secret if it is due (or forced). */
  rotate(req: RotateRequest): Promise<RotationResult> {
    return this.session(req, (s) => this.rotateLocked(s, req.force ?? false));
  }

  /** Revokes the previous credential once its grace period has passed. */
  revokePrevious(req: SecretRequest): Promise<RotationResult> {
    return this.session(req, (s) => this.revokePreviousLocked(s, false));
  }

  /** Revokes credentials this service created for the secret that the vault does not reference. */
  reconcile(req: SecretRequest): Promise<RotationResult> {
    return this.session(req, (s) => this.reconcileLocked(s, false));
  }

  private async session(req: SecretRequest, op: (s: Session) => Promise<OpResult>): Promise<RotationResult> {
    const started = Date.now();
    const rotationId = randomUUID();
    const notifications: Notification[] = [];
    const where = { vault: req.vault, secret: req.secret, rotationId };
    let kind: string | undefined;
    let recipients: string[] = [];
    const finish = (result: OpResult): RotationResult => {
      const outcome = { ...where, kind, durationMs: Date.now() - started, ...result } as Outcome;
      if (outcome.status === 'failed') {
        notifications.push(
          notification(
            'rotation-failed',
            { ...req, recipients },
            {
              kind: kind ?? null,
              step: outcome.step,
              reason: outcome.reason,
              transient: outcome.transient,
              rotationId,
            },
            this.now(),
          ),
        );
      }
      return { outcome, notifications };
    };
    // A credential that still fails verification after the engine's own retries was revoked again;
    // retrying at once (Event Grid, the queue) would only mint and revoke more. The next scan retries.
    const failed = (e: StepFailure): OpResult =>
      ({
        status: 'failed',
        step: e.step,
        reason: e.message,
        transient: e.step !== 'verify' && isTransient(e.error),
      }) as OpResult;

    let vault: Vault;
    try {
      vault = this.options.vaults.get(req.vault);
    } catch (e) {
      return finish(failed(new StepFailure('read', e)));
    }
    let lease;
    try {
      lease = await this.options.locks.acquire(`${vault.name}/${req.secret}`);
    } catch (e) {
      return finish(failed(new StepFailure('lock', e)));
    }
    if (!lease)
      return finish({
        status: 'skipped',
        reason: 'another rotation of this secret holds the lock',
      } as OpResult);
    try {
      const current = await step('read', () => readCurrent(vault, req.secret));
      registerSecret(current.value);
      const result = readPolicy(current.properties.tags, this.options.settings, this.options.rotators);
      if (result.status === 'not-opted-in') {
        return finish({ status: 'skipped', reason: `not opted in (no ${TAGS.kind} tag)` } as OpResult);
      }
      if (result.status === 'invalid') {
        kind = result.kind;
        const reason = result.findings.map((f) => `${f.tag}: ${f.reason}`).join('; ');
        return finish(failed(new StepFailure('policy', new PermanentError(`bad tags: ${reason}`))));
      }
      kind = result.policy.kind;
      recipients = result.policy.notify;
      const session: Session = {
        vault,
        current,
        policy: result.policy,
        ctx: {
          vaultName: vault.name,
          secretName: req.secret,
          currentValue: current.value ?? '',
          credentialId: result.policy.state.credentialId,
          previousCredentialId: result.policy.state.previousCredentialId,
        },
        rotationId,
        now: this.now(),
        // The setting wins: an operator's global dry run is never overridden by a message.
        dryRun: this.options.settings.ROTATION_DRY_RUN || (req.dryRun ?? false),
        notify: (k, details) =>
          notifications.push(
            notification(k, { ...req, recipients }, { kind: kind ?? null, ...details }, this.now()),
          ),
      };
      return finish(await op(session));
    } catch (e) {
      return finish(failed(e instanceof StepFailure ? e : new StepFailure('read', e)));
    } finally {
      await lease.release();
    }
  }

  private async rotateLocked(s: Session, force: boolean): Promise<OpResult> {
    const { policy, current, ctx, rotationId } = s;
    const rotator = policy.rotator;
    const expiresOn = current.properties.expiresOn;
    const dueAt = expiresOn ? new Date(expiresOn.getTime() - policy.windowDays * DAY_MS) : undefined;
    if (!force && dueAt && dueAt > s.now) {
      return {
        status: 'skipped',
        reason: `not due: expires ${expiresOn?.toISOString()}, rotates from ${dueAt.toISOString()}`,
      } as OpResult;
    }
    const pending = policy.state.previousCredentialId;
    if (pending && !force && policy.state.revokePreviousAfter && policy.state.revokePreviousAfter > s.now) {
      return {
        status: 'skipped',
        reason: `the previous credential is still in its grace period until ${policy.state.revokePreviousAfter.toISOString()}`,
      } as OpResult;
    }

    await step('binding', () => this.checkBinding(s));
    const lifetimeSeconds = policy.validityDays * 86_400;
    if (s.dryRun) {
      return {
        status: 'planned',
        plan: [
          ...(policy.state.rotationStarted ? ['reconcile the credentials of an interrupted rotation'] : []),
          ...(pending ? [`revoke previous credential ${pending}`] : []),
          `create a ${policy.kind} credential for ${rotator.describe(policy.target)} valid ${policy.validityDays} days`,
          'verify it',
          `store it as a new version of ${ctx.secretName} (previous credential revoked after ${policy.graceHours} h)`,
        ],
      } as OpResult;
    }
    // Clean up after an interrupted rotation first: its started marker disappears with the new version.
    if (policy.state.rotationStarted) await this.reconcileLocked(s, true);
    // A credential two generations old must not block the rotation of one about to expire: if it cannot
    // be revoked now, rotate anyway and say so (marked credentials are also found by reconcile later).
    let unrevoked: string | undefined;
    if (pending) {
      try {
        await this.revokePreviousLocked(s, true);
      } catch (e) {
        unrevoked = `${pending} (${e instanceof Error ? e.message : String(e)})`;
      }
    }

    const marker = `${MARKER_PREFIX}:${ctx.vaultName}/${ctx.secretName}:${rotationId}`;
    const untouched = { ...current.properties.tags };
    await step('create', () =>
      updateTags(s, { ...untouched, [TAGS.rotationStarted]: `${rotationId}@${s.now.toISOString()}` }),
    );
    let created: NewCredential;
    try {
      created = await step('create', () =>
        rotator.create(
          policy.target,
          ctx,
          {
            lifetimeSeconds,
            expiresAt: new Date(s.now.getTime() + lifetimeSeconds * 1000),
            marker,
            now: s.now,
          },
          this.options.deps,
        ),
      );
    } catch (e) {
      // Refused (4xx): nothing was created, so no interrupted rotation is left to reconcile. After a 5xx
      // or no answer the provider may have created it: the marker stays for reconcile.
      if (refused(e)) await updateTags(s, untouched).catch(() => undefined);
      throw e;
    }
    registerSecret(created.value);

    const revokeAfter = new Date(s.now.getTime() + policy.graceHours * 3_600_000);
    const previous = policy.state.credentialId;
    const tags: Record<string, string> = {
      ...policy.policyTags,
      [TAGS.credentialId]: created.id,
      [TAGS.rotationId]: rotationId,
      ...(previous
        ? { [TAGS.previousCredentialId]: previous, [TAGS.revokePreviousAfter]: revokeAfter.toISOString() }
        : {}),
    };
    try {
      await step('verify', () => this.verifyWithRetry(rotator, policy.target, created));
      await step('store', () =>
        s.vault.client.setSecret(ctx.secretName, created.value, {
          expiresOn: created.expiresAt,
          tags,
          contentType: current.properties.contentType,
        }),
      );
    } catch (e) {
      if (!(e instanceof StepFailure) || !(await this.storedAnyway(s, e))) {
        await this.compensate(s, created.id, e);
        throw e;
      }
    }

    s.notify('rotated', {
      target: rotator.describe(policy.target),
      credentialId: created.id,
      previousCredentialId: previous ?? null,
      oldExpiry: expiresOn?.toISOString() ?? null,
      newExpiry: created.expiresAt.toISOString(),
      revokePreviousAfter: previous ? revokeAfter.toISOString() : null,
      note: previous
        ? null
        : `the previous credential is not tracked (no ${TAGS.credentialId} tag): revoke it by hand`,
      unrevoked: unrevoked
        ? `an older credential could not be revoked: ${unrevoked}; revoke it by hand`
        : null,
      rotationId,
    });
    return {
      status: 'rotated',
      credentialId: created.id,
      previousCredentialId: previous,
      oldExpiry: expiresOn?.toISOString(),
      newExpiry: created.expiresAt.toISOString(),
      revokePreviousAfter: previous ? revokeAfter.toISOString() : undefined,
    } as OpResult;
  }

  /**
   * A store that failed on the wire may still have happened. Revoking the new credential then would
   * revoke what the vault holds, so re-read first: if the latest version is ours, it was stored.
   */
  private async storedAnyway(s: Session, failure: StepFailure): Promise<boolean> {
    if (failure.step !== 'store') return false;
    try {
      const latest = await s.vault.client.getSecret(s.ctx.secretName);
      return latest.properties.tags?.[TAGS.rotationId] === s.rotationId;
    } catch {
      // Unknown: keep the new credential (reconcile revokes it later if the vault does not reference it).
      throw failure;
    }
  }

  /** Revokes a credential that never made it into the vault; if that fails, reconcile will. */
  private async compensate(s: Session, credentialId: string, cause: unknown): Promise<void> {
    try {
      await s.policy.rotator.revoke(s.policy.target, credentialId, s.ctx, this.options.deps);
    } catch (e) {
      if (cause instanceof StepFailure)
        cause.message += ` (the new credential ${credentialId} could not be revoked: ${redactError(e)}; reconcile will retry)`;
    }
  }

  private async verifyWithRetry(rotator: Rotator, target: unknown, created: NewCredential): Promise<void> {
    const { attempts, delayMs } = this.verifyPolicy;
    for (let attempt = 1; ; attempt++) {
      try {
        return await rotator.verify(target, created.value, this.options.deps, created);
      } catch (e) {
        if (attempt >= attempts) throw e;
        await sleep(delayMs * 2 ** (attempt - 1));
      }
    }
  }

  private async checkBinding(s: Session): Promise<void> {
    const { policy, ctx } = s;
    const key = policy.rotator.bindingKey(policy.target);
    if (key === undefined) return;
    const bound = this.options.settings.ROTATION_BINDINGS.some(
      (b) =>
        b.vault.toLowerCase() === ctx.vaultName.toLowerCase() &&
        (b.secret === '*' || b.secret === ctx.secretName) &&
        b.target === key,
    );
    if (bound || (await policy.rotator.hasTargetBinding?.(policy.target, ctx, this.options.deps))) return;
    throw new PermanentError(
      `${policy.rotator.describe(policy.target)} is not bound to ${ctx.vaultName}/${ctx.secretName}: ` +
        `an admin of the target must add "${ctx.vaultName}/${ctx.secretName}=${key}" to ROTATION_BINDINGS` +
        (policy.rotator.hasTargetBinding
          ? ` or tag the target "${MARKER_PREFIX}:${ctx.vaultName}/${ctx.secretName}"`
          : ''),
    );
  }

  private async revokePreviousLocked(s: Session, force: boolean): Promise<OpResult> {
    const { policy, current, ctx } = s;
    const previous = policy.state.previousCredentialId;
    if (!previous) return { status: 'skipped', reason: 'no previous credential to revoke' } as OpResult;
    const after = policy.state.revokePreviousAfter;
    if (!force && after && after > s.now) {
      return {
        status: 'skipped',
        reason: `the previous credential is in its grace period until ${after.toISOString()}`,
      } as OpResult;
    }
    if (s.dryRun) return { status: 'planned', plan: [`revoke previous credential ${previous}`] } as OpResult;
    await step('revoke', () => policy.rotator.revoke(policy.target, previous, ctx, this.options.deps));
    const tags = { ...current.properties.tags };
    delete tags[TAGS.previousCredentialId];
    delete tags[TAGS.revokePreviousAfter];
    await step('revoke', () => updateTags(s, tags));
    s.notify('previous-revoked', { credentialId: previous, target: policy.rotator.describe(policy.target) });
    return { status: 'revoked', credentialIds: [previous] } as OpResult;
  }

  /**
   * Orphans are credentials this service created for the secret that the vault does not reference:
   * marked ones (`kv-rotator:{vault}/{secret}:…`), and for providers without a comment field, the ones
   * created within an interrupted rotation's window. Nothing is revoked while the current credential
   * id is unknown: then no one can prove which credential the vault holds.
   */
  private async reconcileLocked(s: Session, forRotation: boolean): Promise<OpResult> {
    const { policy, current, ctx } = s;
    const { credentialId, previousCredentialId, rotationStarted } = policy.state;
    if (!credentialId) {
      return {
        status: 'skipped',
        reason: `the current credential id is unknown (no ${TAGS.credentialId} tag); nothing is revoked`,
      } as OpResult;
    }
    // Under the lock no rotation of this secret is in flight, so a started marker is an interrupted one.
    const cutoff = s.now.getTime() - (forRotation ? 0 : this.orphanSafetyMs);
    const prefix = `${MARKER_PREFIX}:${ctx.vaultName}/${ctx.secretName}:`;
    const isOrphan = (c: CredentialInfo): boolean => {
      if (c.id === credentialId || c.id === previousCredentialId || c.createdAt.getTime() > cutoff)
        return false;
      if (c.marker !== undefined) return c.marker.startsWith(prefix);
      return (
        rotationStarted !== undefined &&
        Math.abs(c.createdAt.getTime() - rotationStarted.at.getTime()) <= STARTED_WINDOW_MS &&
        c.createdAt.getTime() >= rotationStarted.at.getTime() - 60_000
      );
    };
    const orphans = (
      await step('reconcile', () => policy.rotator.list(policy.target, ctx, this.options.deps))
    ).filter(isOrphan);
    if (s.dryRun)
      return {
        status: 'planned',
        plan: orphans.map((o) => `revoke orphaned credential ${o.id}`),
      } as OpResult;
    for (const orphan of orphans) {
      await step('reconcile', () => policy.rotator.revoke(policy.target, orphan.id, ctx, this.options.deps));
      s.notify('orphan-revoked', {
        credentialId: orphan.id,
        createdAt: orphan.createdAt.toISOString(),
        target: policy.rotator.describe(policy.target),
      });
    }
    if (rotationStarted && !forRotation) {
      const tags = { ...current.properties.tags };
      delete tags[TAGS.rotationStarted];
      await step('reconcile', () => updateTags(s, tags));
    }
    return orphans.length
      ? ({ status: 'revoked', credentialIds: orphans.map((o) => o.id) } as OpResult)
      : ({ status: 'skipped', reason: 'no orphaned credentials' } as OpResult);
  }
}

/** Whether the provider answered 4xx (or refused a precondition), anywhere in the cause chain. */
function refused(error: unknown): boolean {
  for (
    let e: unknown = error;
    e;
    e = (e as { cause?: unknown; error?: unknown }).error ?? (e as { cause?: unknown }).cause
  ) {
    if (e instanceof PermanentError) return true;
    const status =
      (e as { status?: unknown; statusCode?: unknown }).status ?? (e as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number') return status >= 400 && status < 500;
  }
  return false;
}

async function readCurrent(vault: Vault, name: string): Promise<KeyVaultSecret> {
  try {
    return await vault.client.getSecret(name);
  } catch (e) {
    const status = (e as { statusCode?: number }).statusCode;
    if (status === 403 && /disabled/i.test((e as Error).message)) {
      throw new PermanentError(
        'the current version is disabled: it is reported, not rotated; enable it or remove rotation-kind',
        { cause: e },
      );
    }
    if (status === 404)
      throw new PermanentError(`secret ${name} does not exist in ${vault.name}`, { cause: e });
    throw e;
  }
}

async function updateTags(s: Session, tags: Record<string, string>): Promise<void> {
  await s.vault.client.updateSecretProperties(s.ctx.secretName, s.current.properties.version as string, {
    tags,
  });
  // Later writes in this session start from what the vault holds now, not from the first read.
  s.current.properties.tags = tags;
}
