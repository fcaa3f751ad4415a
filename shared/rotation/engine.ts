import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KeyVaultSecret } from '@azure/keyvault-secrets';
import type { Settings } from '../config';
import { MARKER_PREFIX, TAGS } from '../constants';
import { errorFacts, isTransient, PermanentError, TransientError, type ErrorFacts } from '../errors';
import type { Vault, Vaults } from '../clients/keyvault';
import type { Locks } from '../clients/lock';
import { TIMEOUTS } from '../clients/timeouts';
import type { Notices } from '../clients/notices';
import { proves, targetKey, type Issuance, type IssuanceRecord } from '../issuance';
import { firstFailureToday } from '../notifications/dedupe';
import { notification, type Notification } from '../notifications/notification';
import { isKeyVaultName, readPolicy } from '../policy';
import { redactError, registerSecret } from '../redact';
import type { CredentialInfo, NewCredential, Rotator, RotatorDeps } from '../rotators/types';
import { reconcileLocked, type ReconcileOptions } from './reconcile';
import {
  advance,
  checkBinding,
  openRecords,
  step,
  StepFailure,
  updateTags,
  type OpResult,
  type Session,
} from './session';

export type Step =
  'lock' | 'read' | 'policy' | 'binding' | 'create' | 'verify' | 'store' | 'revoke' | 'reconcile';

export interface OutcomeBase {
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
    /**
     * `missing`: the secret does not exist (nothing to rotate; an operator asking for it made a mistake).
     * `locked`: another worker holds the secret's lock, or held it and died (its lease lapses within
     * LEASE_SECONDS): the request is not done, and a queued one is retried.
     */
    | { status: 'skipped'; reason: string; missing?: true; locked?: true }
    | { status: 'planned'; plan: string[] }
    | { status: 'failed'; step: Step; reason: string; transient: boolean; error?: ErrorFacts }
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
  /** What this service asked providers for: the only authority for what it may revoke. */
  issuance: Issuance;
  /** Failure notices go out once per secret version and reason per day. */
  notices: Notices;
  deps: RotatorDeps;
  now?: () => Date;
  /** Verification retries for propagation delay: attempts, and the first delay (doubling). */
  verify?: { attempts: number; delayMs: number };
  /** Credentials younger than this are never treated as orphans (a rotation may be in flight). */
  orphanSafetyMs?: number;
  /** How long a provider may still carry out a create request whose answer never came (IN_FLIGHT_MS). */
  inFlightMs?: number;
}

const DAY_MS = 86_400_000;
/**
 * How long after a create request its provider may still act on it: a request that timed out or lost
 * its connection can be carried out later (the client gave up, the provider did not). Twice the whole
 * create call's deadline (the tag write before it and the slowest provider's call), for a provider's own
 * lag. Until then, finding nothing that carries the request's marker proves nothing.
 */
export const IN_FLIGHT_MS =
  2 * (TIMEOUTS.keyVault.callMs + Math.max(TIMEOUTS.graph.callMs, TIMEOUTS.databricks.callMs));

/**
 * The rotation protocol (design section 3), one engine for the Event Grid handler and the queue
 * worker: lock, re-read, create, verify, store, compensate, revoke the previous after the grace
 * period, reconcile orphans, dry run. A failure at any step leaves a working credential in the vault.
 */
export class RotationEngine {
  private readonly now: () => Date;
  private readonly verifyPolicy: { attempts: number; delayMs: number };
  private readonly reconciling: ReconcileOptions;

  constructor(private readonly options: EngineOptions) {
    this.now = options.now ?? (() => new Date());
    this.verifyPolicy = options.verify ?? { attempts: 6, delayMs: 2_000 };
    this.reconciling = {
      settings: options.settings,
      issuance: options.issuance,
      deps: options.deps,
      now: this.now,
      orphanSafetyMs: options.orphanSafetyMs ?? 15 * 60_000,
      inFlightMs: options.inFlightMs ?? IN_FLIGHT_MS,
    };
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
    return this.session(req, (s) => reconcileLocked(s, false, this.reconciling));
  }

  private async session(req: SecretRequest, op: (s: Session) => Promise<OpResult>): Promise<RotationResult> {
    const started = Date.now();
    const rotationId = randomUUID();
    const notifications: Notification[] = [];
    const where = { vault: req.vault, secret: req.secret, rotationId };
    let kind: string | undefined;
    let recipients: string[] = [];
    let version: string | undefined;
    // A name that is not a Key Vault name, a secret that does not exist and one that is not opted in
    // have no owner to tell: telemetry only, whoever sent the event or message.
    let silent = false;
    const finish = async (result: OpResult): Promise<RotationResult> => {
      const outcome = { ...where, kind, durationMs: Date.now() - started, ...result } as Outcome;
      // Transient failures are retried (Event Grid, the queue) and reported by the trigger when retries
      // run out; a permanent one is reported once per secret version and reason per day.
      if (
        outcome.status === 'failed' &&
        !silent &&
        (outcome.transient ||
          (await firstFailureToday(
            this.options.notices,
            { ...req, version },
            outcome.step,
            outcome.reason,
            this.now(),
          )))
      ) {
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
        error: errorFacts(e.error),
      }) as OpResult;

    // Names are claims until checked: nothing below (lock blob, Key Vault URL) sees one that is not
    // a Key Vault name.
    if (!isKeyVaultName(req.vault) || !isKeyVaultName(req.secret)) {
      silent = true;
      return finish(
        failed(new StepFailure('read', new PermanentError('not a Key Vault vault/secret name; ignored'))),
      );
    }
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
        locked: true,
      } as OpResult);
    try {
      const current = await step('read', () => readCurrent(vault, req.secret));
      if (!current) {
        silent = true;
        return finish({
          status: 'skipped',
          reason: `secret ${req.secret} does not exist`,
          missing: true,
        } as OpResult);
      }
      version = current.properties.version;
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
        lease,
        vault,
        current,
        policy: result.policy,
        ctx: {
          vaultName: vault.name,
          secretName: req.secret,
          currentValue: current.value ?? '',
          credentialId: result.policy.state.credentialId,
          previousCredentialId: result.policy.state.previousCredentialId,
          tags: current.properties.tags,
        },
        rotationId,
        now: this.now(),
        // The setting wins: an operator's global dry run is never overridden by a message.
        dryRun: this.options.settings.ROTATION_DRY_RUN || (req.dryRun ?? false),
        target: targetKey(result.policy.kind, result.policy.target),
        records: await step('read', () => this.options.issuance.list(vault.name, req.secret)),
        notify: (k, details) =>
          notifications.push(
            notification(k, { ...req, recipients }, { kind: kind ?? null, ...details }, this.now()),
          ),
      };
      session.ctx.issued = (id) =>
        proves(session.records, session.policy.kind, session.target, id) !== undefined;
      // A credential revoked to make room at a provider limit: its record is closed and owners are told.
      session.ctx.freed = async (id) => {
        const record = proves(session.records, session.policy.kind, session.target, id);
        if (record) await this.options.issuance.update(record, { state: 'revoked', at: this.now() });
        session.notify('orphan-revoked', {
          credentialId: id,
          reason: 'revoked to make room at a provider limit',
          target: session.policy.rotator.describe(session.policy.target),
        });
      };
      return await finish(await op(session));
    } catch (e) {
      return finish(failed(e instanceof StepFailure ? e : new StepFailure('read', e)));
    } finally {
      // A name that exists nowhere leaves no lock blob behind (100 made-up names, 0 blobs).
      await lease.release({ discard: silent });
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

    await step('binding', () => checkBinding(s, this.options.settings, this.options.deps));
    const lifetimeSeconds = policy.validityDays * 86_400;
    if (s.dryRun) {
      return {
        status: 'planned',
        plan: [
          ...(openRecords(s).length ? ['reconcile the credentials of an interrupted rotation'] : []),
          ...(pending ? [`revoke previous credential ${pending} if this service issued it`] : []),
          `create a ${policy.kind} credential for ${rotator.describe(policy.target)} valid ${policy.validityDays} days`,
          'verify it',
          `store it as a new version of ${ctx.secretName} (previous credential revoked after ${policy.graceHours} h)`,
        ],
      } as OpResult;
    }
    // Clean up after an interrupted rotation first (its records say what it asked for).
    if (openRecords(s).length) await reconcileLocked(s, true, this.reconciling);
    // A credential two generations old must not block the rotation of one about to expire: if it cannot
    // be revoked now, rotate anyway and say so.
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
    stillLocked(s, 'asking the provider for a credential');
    // Recorded before the provider is asked, so even a lost answer leaves a trace that proves it ours.
    let record = await step('create', () =>
      this.options.issuance.begin({
        vault: ctx.vaultName,
        secret: ctx.secretName,
        kind: policy.kind,
        target: s.target,
        rotationId,
        at: s.now,
      }),
    );
    s.records.push(record);
    await step('create', () =>
      updateTags(s, { ...untouched, [TAGS.rotationStarted]: `${rotationId}@${s.now.toISOString()}` }),
    );
    let created: NewCredential;
    try {
      created = await step('create', () =>
        rotator.create(
          policy.target,
          ctx,
          { lifetimeSeconds, expiresAt: new Date(s.now.getTime() + lifetimeSeconds * 1000), marker },
          this.options.deps,
        ),
      );
    } catch (e) {
      // Refused (4xx): nothing was created, so no interrupted rotation is left to reconcile. After a 5xx
      // or no answer the provider may have created it: the record stays open for reconcile.
      if (refused(e)) {
        await this.options.issuance
          .update(record, { state: 'refused', at: this.now() })
          .catch(() => undefined);
        await updateTags(s, untouched).catch(() => undefined);
      }
      throw e;
    }
    registerSecret(created.value);
    const previous = policy.state.credentialId;
    record = await step('create', () =>
      advance(this.options.issuance, s, record, {
        state: 'issued',
        credentialId: created.id,
        at: this.now(),
      }),
    ).catch(async (e: unknown) => {
      // Without its record the new credential could never be proven ours: take it back now.
      await this.compensate(s, created.id, e);
      throw e;
    });

    const revokeAfter = new Date(s.now.getTime() + policy.graceHours * 3_600_000);
    let tracked: string | undefined;
    const tags: Record<string, string> = {
      ...policy.policyTags,
      [TAGS.credentialId]: created.id,
      [TAGS.rotationId]: rotationId,
    };
    // An earlier request the provider may still carry out: the scan's reconcile finds it later.
    const unresolved = openRecords(s)[0];
    if (unresolved) tags[TAGS.rotationStarted] = `${unresolved.rotationId}@${unresolved.createdAt}`;
    let stored: KeyVaultSecret | undefined;
    try {
      await step('verify', () => this.verifyWithRetry(rotator, policy.target, created));
      // The credential the vault holds now becomes the previous one: revoked later only if this service
      // issued it, or verifies now that it is the one the vault holds (adoption).
      tracked = previous ? await this.provenOrAdopted(s, previous) : undefined;
      if (tracked) {
        tags[TAGS.previousCredentialId] = tracked;
        tags[TAGS.revokePreviousAfter] = revokeAfter.toISOString();
      }
      stillLocked(s, 'storing the new credential (it is revoked again)');
      stored = await step('store', () =>
        s.vault.client.setSecret(ctx.secretName, created.value, {
          expiresOn: created.expiresAt,
          tags,
          contentType: current.properties.contentType,
        }),
      );
    } catch (e) {
      if (!(e instanceof StepFailure) || !(await this.storedAnyway(s, e))) {
        await this.compensate(s, created.id, e, record);
        throw e;
      }
    }
    // The vault holds it. If this write is lost, reconcile sees the version's rotation id and completes it.
    await this.options.issuance
      .update(record, { state: 'stored', version: stored?.properties.version, at: this.now() })
      .catch(() => undefined);

    s.notify('rotated', {
      target: rotator.describe(policy.target),
      credentialId: created.id,
      previousCredentialId: tracked ?? null,
      oldExpiry: expiresOn?.toISOString() ?? null,
      newExpiry: created.expiresAt.toISOString(),
      revokePreviousAfter: tracked ? revokeAfter.toISOString() : null,
      note: tracked
        ? null
        : previous
          ? `the previous credential ${previous} was not issued by this service and could not be verified as the one the vault held: it is not revoked; revoke it by hand`
          : `the previous credential is not tracked (no ${TAGS.credentialId} tag): revoke it by hand`,
      unrevoked: unrevoked
        ? `an older credential could not be revoked: ${unrevoked}; revoke it by hand`
        : null,
      rotationId,
    });
    return {
      status: 'rotated',
      credentialId: created.id,
      previousCredentialId: tracked,
      oldExpiry: expiresOn?.toISOString(),
      newExpiry: created.expiresAt.toISOString(),
      revokePreviousAfter: tracked ? revokeAfter.toISOString() : undefined,
    } as OpResult;
  }

  /**
   * The credential id of the version being replaced, if this service may revoke it later: a record
   * shows this service issued it for this secret and target, or it is adopted now. Adoption (the
   * credential a person stored before the first rotation) needs the binding (checked already) and
   * proof at the provider that it is the credential the vault holds: the vault's value works at the
   * target, the id is one of the target's credentials, and either the value's own authority lists it
   * (a PAT lists only its owner's tokens, which its holder could revoke anyway) or it is the only
   * credential of the target that this service did not issue and that matches the value's hint.
   */
  private async provenOrAdopted(s: Session, credentialId: string): Promise<string | undefined> {
    const { policy, ctx } = s;
    if (proves(s.records, policy.kind, s.target, credentialId)) return credentialId;
    if (!ctx.currentValue) return undefined;
    let listed: CredentialInfo[];
    try {
      await policy.rotator.verify(policy.target, ctx.currentValue, this.options.deps);
      listed = await policy.rotator.list(policy.target, ctx, this.options.deps);
    } catch {
      // Not verifiable now (the value no longer works, the list is refused): owners are told instead.
      return undefined;
    }
    if (!listed.some((c) => c.id === credentialId)) return undefined;
    if (policy.rotator.bindingKey(policy.target) !== undefined) {
      const candidates = listed.filter(
        (c) =>
          !proves(s.records, policy.kind, s.target, c.id) &&
          !c.marker?.startsWith(`${MARKER_PREFIX}:`) &&
          (c.hint === undefined || ctx.currentValue.startsWith(c.hint)),
      );
      if (candidates.length !== 1 || candidates[0]?.id !== credentialId) return undefined;
    }
    const record = await this.options.issuance
      .adopt(
        {
          vault: ctx.vaultName,
          secret: ctx.secretName,
          kind: policy.kind,
          target: s.target,
          rotationId: randomUUID(),
          at: s.now,
        },
        credentialId,
        s.current.properties.version,
      )
      .catch(() => undefined);
    if (!record) return undefined;
    s.records.push(record);
    return credentialId;
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
      // Unknown: keep the new credential (its record stays `issued`; reconcile decides later).
      throw failure;
    }
  }

  /** Revokes a credential that never made it into the vault; if that fails, reconcile will. */
  private async compensate(
    s: Session,
    credentialId: string,
    cause: unknown,
    record?: IssuanceRecord,
  ): Promise<void> {
    try {
      await s.policy.rotator.revoke(s.policy.target, credentialId, s.ctx, this.options.deps);
      if (record) await this.options.issuance.update(record, { state: 'revoked', at: this.now() });
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
    // The tag is a claim: only a credential this service issued (or adopted) for this secret and
    // target, and not the one the vault holds now, is revoked.
    const record = proves(s.records, policy.kind, s.target, previous);
    const holding =
      policy.state.credentialId === previous ||
      s.records.some(
        (r) =>
          r.state === 'stored' && r.credentialId === previous && r.version === current.properties.version,
      );
    if (!record || holding)
      throw new StepFailure(
        'revoke',
        new PermanentError(
          (holding
            ? `previous credential ${previous} is the credential the vault holds now`
            : `previous credential ${previous} is not one this service issued for ${ctx.vaultName}/${ctx.secretName} and ${policy.rotator.describe(policy.target)}`) +
            `: nothing was revoked; remove the ${TAGS.previousCredentialId} tag, and revoke the credential by hand if it is yours and unused`,
        ),
      );
    await step('binding', () => checkBinding(s, this.options.settings, this.options.deps));
    if (s.dryRun) return { status: 'planned', plan: [`revoke previous credential ${previous}`] } as OpResult;
    await step('revoke', () => policy.rotator.revoke(policy.target, previous, ctx, this.options.deps));
    await step('revoke', () => this.options.issuance.update(record, { state: 'revoked', at: this.now() }));
    const tags = { ...current.properties.tags };
    delete tags[TAGS.previousCredentialId];
    delete tags[TAGS.revokePreviousAfter];
    await step('revoke', () => updateTags(s, tags));
    s.notify('previous-revoked', { credentialId: previous, target: policy.rotator.describe(policy.target) });
    return { status: 'revoked', credentialIds: [previous] } as OpResult;
  }
}

/**
 * Before a step that must not run twice at once: if the lease lapsed (its renewals failed), another
 * worker may be rotating this secret now. Transient: the queue's retry takes the lock again.
 */
function stillLocked(s: Session, before: string): void {
  if (s.lease.held()) return;
  throw new StepFailure(
    'lock',
    new TransientError(`the lock on ${s.ctx.vaultName}/${s.ctx.secretName} lapsed; stopped before ${before}`),
  );
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

async function readCurrent(vault: Vault, name: string): Promise<KeyVaultSecret | undefined> {
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
    if (status === 404) return undefined;
    throw e;
  }
}
