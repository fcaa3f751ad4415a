import { app, type InvocationContext } from '@azure/functions';
import { MAX_DEQUEUE_COUNT, STORAGE } from '../shared/constants';
import { TransientError } from '../shared/errors';
import { trackOutcome } from '../shared/telemetry/telemetry';
import { workItemSchema } from '../shared/work';
import { CONNECTION, dequeueCount, invocation, notificationQueue, rotationPoisonQueue } from './common';

const OPERATIONS = { rotate: 'rotate', 'revoke-previous': 'revokePrevious', reconcile: 'reconcile' } as const;

/** Queue worker: runs the engine for one planned operation. */
export async function rotateSecret(message: unknown, context: InvocationContext): Promise<void> {
  const { runtime, telemetry } = await invocation(context);
  const parsed = workItemSchema.safeParse(message);
  if (!parsed.success) {
    // Retrying cannot fix it: park it in the poison queue at once, where the poison alert sees it.
    telemetry.log(
      'error',
      `malformed rotation request moved to ${STORAGE.rotationQueue}-poison: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'message'}: ${i.message}`).join('; ')}`,
    );
    context.extraOutputs.set(rotationPoisonQueue, [message]);
    return;
  }
  const item = parsed.data;
  const { outcome, notifications } = await runtime.engine[OPERATIONS[item.op]]({
    vault: item.vault,
    secret: item.secret,
    dryRun: item.dryRun,
    ...(item.op === 'rotate' ? { force: item.force } : {}),
  });
  const attempt = dequeueCount(context);
  const lastAttempt = attempt >= MAX_DEQUEUE_COUNT;
  const failedTransiently = outcome.status === 'failed' && outcome.transient;
  trackOutcome(
    telemetry.with({
      trigger: 'queue',
      plannedReason: item.reason,
      attempt,
      poisoned: failedTransiently && lastAttempt ? true : undefined,
    }),
    outcome,
    item.op,
  );
  // Transient failures are retried by the queue; owners hear about them only when retries run out.
  if (!failedTransiently || lastAttempt)
    context.extraOutputs.set(notificationQueue, runtime.route(notifications, telemetry));
  if (failedTransiently && lastAttempt) {
    // Retries are used up. The host discards the outputs of a failed invocation, so this one completes
    // and parks the message in the poison queue itself; throwing would lose the owners' notice.
    context.extraOutputs.set(rotationPoisonQueue, [message]);
  } else if (failedTransiently) {
    await telemetry.flush();
    throw new TransientError(
      `${item.op} of ${item.vault}/${item.secret} failed at ${outcome.step} (attempt ${attempt} of ${MAX_DEQUEUE_COUNT}): ${outcome.reason}`,
    );
  }
  await telemetry.flush();
}

app.storageQueue('rotateSecret', {
  queueName: STORAGE.rotationQueue,
  connection: CONNECTION,
  extraOutputs: [notificationQueue, rotationPoisonQueue],
  handler: rotateSecret,
});
