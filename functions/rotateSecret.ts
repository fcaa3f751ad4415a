import { app, type InvocationContext } from '@azure/functions';
import { MAX_DEQUEUE_COUNT, STORAGE } from '../shared/constants';
import { TransientError } from '../shared/errors';
import { redactError } from '../shared/redact';
import { getRuntime, invocationTelemetry } from '../shared/runtime';
import { trackOutcome } from '../shared/telemetry/telemetry';
import { workItemSchema } from '../shared/work';
import { CONNECTION, contextSink, dequeueCount, notificationQueue, rotationPoisonQueue } from './common';

const OPERATIONS = { rotate: 'rotate', 'revoke-previous': 'revokePrevious', reconcile: 'reconcile' } as const;

/** Queue worker: runs the engine for one planned operation. */
export async function rotateSecret(message: unknown, context: InvocationContext): Promise<void> {
  const runtime = getRuntime();
  const telemetry = invocationTelemetry(context.invocationId, contextSink(context));
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
  // Transient failures are retried by the queue; owners hear of them when retries run out, or once the
  // secret has been failing for FAILURE_NOTICE_AFTER_MINUTES. Done with the message: its claim goes.
  // Those records are bookkeeping: when Storage fails them, the outcome still counts (logged).
  const done = !failedTransiently || lastAttempt;
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
