import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SecretProperties } from '@azure/keyvault-secrets';
import { STORAGE, TAGS } from '../shared/constants';
import type { Outcome } from '../shared/rotation/engine';
import { routeNotification } from '../shared/notifications/routing';
import type { WorkItem } from '../shared/work';
import { day, type CommandResult, type Progress, UsageError } from './output';
import type { Target } from './target';
import { poisonedWork } from './vaults';

export type Operation = WorkItem['op'];

export interface RotateOptions {
  force?: boolean;
  dryRun?: boolean;
  /** How long to wait for a deployed service's outcome. */
  timeoutSeconds?: number;
  /** Poll interval while waiting (tests shorten it). */
  pollMs?: number;
}

/** `VAULT/SECRET` → its parts, checked against the configured vaults and Key Vault's name rules. */
export function parseSecretRef(target: Target, ref: string): { vault: string; secret: string } {
  const m = /^([^/\s]+)\/([0-9a-zA-Z-]{1,127})$/.exec(ref);
  if (!m)
    throw new UsageError(
      `expected VAULT/SECRET (a Key Vault secret name is 1-127 letters, digits and dashes), not "${ref}"`,
    );
  const vault = target.services.vaults.resolve(m[1] as string);
  if (!vault)
    throw new UsageError(
      `vault ${m[1]} is not configured (KEY_VAULT_URIS has ${target.services.vaults.names().join(', ')})`,
    );
  return { vault, secret: m[2] as string };
}

/** The newest version's properties (version listing: no value is read). */
async function latest(target: Target, vault: string, secret: string): Promise<SecretProperties | undefined> {
  let newest: SecretProperties | undefined;
  for await (const p of target.services.vaults.get(vault).client.listPropertiesOfSecretVersions(secret)) {
    if (!newest || (p.createdOn?.getTime() ?? 0) >= (newest.createdOn?.getTime() ?? 0)) newest = p;
  }
  return newest;
}

interface Report {
  status: Outcome['status'] | 'enqueued' | 'timed-out';
  how: 'engine' | 'queue';
  op: Operation;
  vault: string;
  secret: string;
  version?: string;
  credentialId?: string;
  previousCredentialId?: string;
  expiresOn?: string;
  revokePreviousAfter?: string;
  revoked?: string[];
  reason?: string;
  /** The secret does not exist: a skip, but the operator's request cannot be met. */
  missing?: boolean;
  plan?: string[];
  notifications?: number;
}

function render(r: Report): string[] {
  const where = `${r.vault}/${r.secret}`;
  const via =
    r.how === 'engine'
      ? 'by the engine in this process'
      : 'by the service (its queue, its identity and bindings)';
  switch (r.status) {
    case 'rotated':
      return [
        `✓ ${where} rotated ${via}`,
        `  new version     ${r.version ?? '?'}`,
        `  expires         ${r.expiresOn ?? '?'} (${day(r.expiresOn)})`,
        `  credential      ${r.credentialId ?? '?'}`,
        ...(r.previousCredentialId
          ? [
              `  previous        ${r.previousCredentialId}, revoked after ${r.revokePreviousAfter ?? 'the grace period'}`,
            ]
          : []),
      ];
    case 'revoked':
      return [`✓ ${where}: revoked ${r.revoked?.join(', ') || 'the previous credential'} ${via}`];
    case 'planned':
      return [
        `· dry run of ${r.op} on ${where}: nothing was changed`,
        ...(r.plan ?? []).map((p) => `  would ${p}`),
      ];
    case 'skipped':
      return [`· ${where}: ${r.op} skipped: ${r.reason}`];
    case 'timed-out':
      return [`✗ ${where}: ${r.reason}`];
    default:
      return [`✗ ${where}: ${r.op} failed: ${r.reason}`];
  }
}

async function viaEngine(
  target: Target,
  op: Operation,
  ref: { vault: string; secret: string },
  o: RotateOptions,
): Promise<Report> {
  const { engine } = target.services;
  const req = { ...ref, dryRun: o.dryRun };
  const { outcome, notifications } =
    op === 'rotate'
      ? await engine.rotate({ ...req, force: o.force })
      : op === 'revoke-previous'
        ? await engine.revokePrevious(req)
        : await engine.reconcile(req);
  // The notices go where the service's would: one message per (notification, channel).
  const messages = notifications.flatMap((n) => routeNotification(n, target.settings).messages);
  if (messages.length) {
    const queue = target.queues.getQueueClient(STORAGE.notificationQueue);
    await queue.createIfNotExists();
    for (const m of messages) await queue.sendMessage(Buffer.from(JSON.stringify(m)).toString('base64'));
  }
  const report: Report = {
    status: outcome.status,
    how: 'engine',
    op,
    ...ref,
    notifications: messages.length,
  };
  if (outcome.status === 'rotated') {
    const v = await latest(target, ref.vault, ref.secret);
    Object.assign(report, {
      version: v?.version,
      credentialId: outcome.credentialId,
      previousCredentialId: outcome.previousCredentialId,
      // What the vault holds (Key Vault keeps whole seconds).
      expiresOn: v?.expiresOn?.toISOString() ?? outcome.newExpiry,
      revokePreviousAfter: outcome.revokePreviousAfter,
    });
  } else if (outcome.status === 'revoked') report.revoked = outcome.credentialIds;
  else if (outcome.status === 'planned') report.plan = outcome.plan;
  else if (outcome.status === 'skipped')
    Object.assign(report, { reason: outcome.reason, missing: outcome.missing });
  else if (outcome.status === 'failed') report.reason = `${outcome.step}: ${outcome.reason}`;
  return report;
}

/**
 * Enqueues the work item on the service's queue and watches the vault (and the poison queue) for the
 * outcome: a new version for rotate, the previous credential's tag gone for revoke-previous, the
 * orphans gone for reconcile; or the message handled without coming back.
 */
async function viaQueue(
  target: Target,
  op: Operation,
  ref: { vault: string; secret: string },
  o: RotateOptions,
  progress: Progress,
): Promise<Report> {
  const before = await latest(target, ref.vault, ref.secret);
  if (!before)
    return {
      status: 'failed',
      how: 'queue',
      op,
      ...ref,
      reason: `secret ${ref.secret} does not exist in ${ref.vault}`,
    };
  // A dry run first (the engine in this process, changing nothing): work the service would skip is
  // reported at once instead of enqueued; for reconcile it lists the orphans to wait for.
  const preview = await viaEngine(target, op, ref, { ...o, dryRun: true }).catch(() => undefined);
  if (op === 'reconcile' && preview?.status === 'planned' && preview.plan?.length === 0)
    return {
      ...preview,
      status: 'skipped',
      how: 'queue',
      reason: 'no orphaned credentials (checked with a dry run; nothing was enqueued)',
    };
  if (preview?.status === 'skipped')
    return {
      ...preview,
      how: 'queue',
      reason: `${preview.reason} (checked with a dry run; nothing was enqueued)`,
    };
  const orphans = op === 'reconcile' && preview?.status === 'planned' ? (preview.plan ?? []) : undefined;
  const item: WorkItem = {
    op,
    ...ref,
    reason: `operator request ${randomUUID()}`,
    ...(op === 'rotate' && o.force ? { force: true } : {}),
  };
  const queue = target.queues.getQueueClient(STORAGE.rotationQueue);
  await queue.createIfNotExists();
  const sent = await queue.sendMessage(Buffer.from(JSON.stringify(item)).toString('base64'));
  const deadline = Date.now() + (o.timeoutSeconds ?? 120) * 1000;
  const poll = o.pollMs ?? 1000;
  let goneSince: number | undefined;
  while (Date.now() < deadline) {
    progress.step(`waiting for the service to ${op} ${ref.vault}/${ref.secret} (message ${sent.messageId})`);
    await sleep(poll);
    const now = await latest(target, ref.vault, ref.secret);
    if (op === 'rotate' && now && now.version !== before.version && now.tags?.[TAGS.rotationId]) {
      return {
        status: 'rotated',
        how: 'queue',
        op,
        ...ref,
        version: now.version,
        expiresOn: now.expiresOn?.toISOString(),
        credentialId: now.tags[TAGS.credentialId],
        previousCredentialId: now.tags[TAGS.previousCredentialId],
        revokePreviousAfter: now.tags[TAGS.revokePreviousAfter],
      };
    }
    if (
      op === 'revoke-previous' &&
      before.tags?.[TAGS.previousCredentialId] &&
      !now?.tags?.[TAGS.previousCredentialId]
    )
      return {
        status: 'revoked',
        how: 'queue',
        op,
        ...ref,
        revoked: [before.tags[TAGS.previousCredentialId] as string],
      };
    if (orphans?.length) {
      const left = await viaEngine(target, op, ref, { ...o, dryRun: true }).catch(() => undefined);
      if (left?.status === 'skipped' || (left?.status === 'planned' && left.plan?.length === 0))
        return {
          status: 'revoked',
          how: 'queue',
          op,
          ...ref,
          revoked: orphans.map((p) => p.replace(/^revoke orphaned credential /, '')),
        };
    }
    const poisoned = (await poisonedWork(target)).get(`${ref.vault}/${ref.secret}`);
    if (poisoned?.reason === item.reason)
      return {
        status: 'failed',
        how: 'queue',
        op,
        ...ref,
        reason: `the service gave up after retries (${STORAGE.rotationQueue}-poison); see its logs`,
      };
    // Handled without a visible change (skipped, or reconcile found nothing): the message is gone and
    // stays gone past the queue's visibility timeout (a failed attempt would bring it back).
    const visible = (await queue.peekMessages({ numberOfMessages: 32 })).peekedMessageItems.some(
      (m) => m.messageId === sent.messageId,
    );
    goneSince = visible ? undefined : (goneSince ?? Date.now());
    if (goneSince !== undefined && Date.now() - goneSince > 35_000)
      return {
        status: 'skipped',
        how: 'queue',
        op,
        ...ref,
        reason: 'the service handled the request and the vault shows no change; its notices and logs say why',
      };
  }
  return {
    status: 'timed-out',
    how: 'queue',
    op,
    ...ref,
    reason: `no outcome within ${o.timeoutSeconds ?? 120} s; the request stays on ${STORAGE.rotationQueue} (message ${sent.messageId}); is the function app running?`,
  };
}

export async function runOperation(
  target: Target,
  op: Operation,
  ref: string,
  o: RotateOptions,
  progress: Progress,
): Promise<CommandResult> {
  const secret = parseSecretRef(target, ref);
  if (o.force && op !== 'rotate') throw new UsageError('--force is for rotate only');
  // A dry run changes nothing, so it runs here even against a deployed service.
  const useQueue = target.serviceRunning && !o.dryRun;
  progress.step(`${op} ${secret.vault}/${secret.secret}`);
  const report = useQueue
    ? await viaQueue(target, op, secret, o, progress)
    : await viaEngine(target, op, secret, o);
  const ok =
    report.status === 'rotated' ||
    report.status === 'revoked' ||
    report.status === 'planned' ||
    (report.status === 'skipped' && !report.missing);
  return { exitCode: ok ? 0 : 1, data: report, text: render(report) };
}
