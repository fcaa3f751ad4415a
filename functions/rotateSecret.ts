import type { InvocationContext } from '@azure/functions';
import { MAX_DEQUEUE_COUNT, STORAGE } from '../shared/constants';
import { errorFacts, TransientError } from '../shared/errors';
import { redactError } from '../shared/redact';
import { EVENTS } from '../shared/telemetry/events';
import { errorDimensions, trackOutcome } from '../shared/telemetry/telemetry';
import { workItemSchema } from '../shared/work';
import { dequeueCount, invocation, messageId, notificationQueue, rotationPoisonQueue } from './common';

const OPERATIONS = { rotate: 'rotate', 'revoke-previous': 'revokePrevious', reconcile: 'reconcile' } as const;
const POISON_QUEUE = `${STORAGE.rotationQueue}-poison`;

/**
 * Queue worker: runs the engine for one planned operation. Every message that ends in the poison
 * queue (malformed, or its last delivery failed) is announced by a MessagePoisoned event, which the
 * poison alert reads; a failure nothing will retry (permanent, or the last delivery) is `final`.
 */
export async function rotateSecret(message: unknown, context: InvocationContext): Promise<void> {
  const { runtime, telemetry } = await invocation(context);
  const attempt = dequeueCount(context);
  const lastAttempt = attempt >= MAX_DEQUEUE_COUNT;
  const poisoned = {
    queue: STORAGE.rotationQueue,
    poisonQueue: POISON_QUEUE,
    messageId: messageId(context),
    attempt,
  };
  const parsed = workItemSchema.safeParse(message);
  if (!parsed.success) {
    // Retrying cannot fix it: park it in the poison queue at once, where the poison alert sees it.
    const reason = parsed.error.issues
      .map((i) => `${i.path.join('.') || 'message'}: ${i.message}`)
      .join('; ');
    telemetry.log('error', `malformed rotation request moved to ${POISON_QUEUE}: ${reason}`);
    telemetry.event(EVENTS.MessagePoisoned, { ...poisoned, cause: 'malformed', reason });
    context.extraOutputs.set(rotationPoisonQueue, [message]);
    await telemetry.flush();
    return;
  }
  const item = parsed.data;
  const where = { ...poisoned, vault: item.vault, secret: item.secret };
  let result;
  try {
    result = await runtime.engine[OPERATIONS[item.op]]({
      vault: item.vault,
      secret: item.secret,
      dryRun: item.dryRun,
      ...(item.op === 'rotate' ? { force: item.force } : {}),
    });
  } catch (e) {
    // The engine reports failures as outcomes; a throw is a bug or a broken runtime. The queue retries
    // it, and on the last delivery the host moves the message to the poison queue: say so first.
    if (lastAttempt) {
      telemetry.event(EVENTS.MessagePoisoned, {
        ...where,
        cause: 'retries-exhausted',
        reason: redactError(e),
        ...errorDimensions(errorFacts(e)),
      });
    }
    await telemetry.flush();
    throw e;
  }
  const { outcome, notifications } = result;
  const failedTransiently = outcome.status === 'failed' && outcome.transient;
  // Another worker holds the secret's lock: it may be rotating it now, or it died mid-rotation and its
  // lease is lapsing. Either way this message is not done: the queue delivers it again after its
  // delay, when the work is finished (then nothing is due) or the lock is free.
  const lockedOut = outcome.status === 'skipped' && outcome.locked === true && !lastAttempt;
  trackOutcome(
    telemetry.with({
      trigger: 'queue',
      plannedReason: item.reason,
      attempt,
      poisoned: failedTransiently && lastAttempt ? true : undefined,
      final: outcome.status === 'failed' ? !failedTransiently || lastAttempt : undefined,
    }),
    outcome,
    item.op,
  );
  // Transient failures are retried by the queue; owners hear of them when retries run out, or once the
  // secret has been failing for FAILURE_NOTICE_AFTER_MINUTES. Done with the message: its claim goes.
  // Those records are bookkeeping: when Storage fails them, the outcome still counts (logged).
  const done = !(failedTransiently || lockedOut) || lastAttempt;
  const bookkeeping = (what: string) => (e: unknown) => {
    telemetry.log('warn', `${what} for ${item.vault}/${item.secret} failed: ${redactError(e)}`);
    return done;
  };
  if (await runtime.failures.observe(outcome, lastAttempt).catch(bookkeeping('recording the outcome')))
    context.extraOutputs.set(notificationQueue, runtime.route(notifications, telemetry));
  if (done) await runtime.inflight.release(item).catch(bookkeeping('releasing the in-flight claim'));
  if (failedTransiently && lastAttempt) {
    // Retries are used up. The host discards the outputs of a failed invocation, so this one completes
    // and parks the message in the poison queue itself; throwing would lose the owners' notice.
    context.extraOutputs.set(rotationPoisonQueue, [message]);
    telemetry.event(EVENTS.MessagePoisoned, {
      ...where,
      cause: 'retries-exhausted',
      reason: outcome.reason,
      ...errorDimensions(outcome.error),
    });
  } else if (failedTransiently) {
    await telemetry.flush();
    throw new TransientError(
      `${item.op} of ${item.vault}/${item.secret} failed at ${outcome.step} (attempt ${attempt} of ${MAX_DEQUEUE_COUNT}): ${outcome.reason}`,
    );
  } else if (lockedOut) {
    await telemetry.flush();
    throw new TransientError(
      `${item.op} of ${item.vault}/${item.secret} waits for the lock (attempt ${attempt} of ${MAX_DEQUEUE_COUNT}): ${outcome.reason}`,
    );
  }
  await telemetry.flush();
}
