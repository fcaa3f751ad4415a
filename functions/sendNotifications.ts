import { app, type InvocationContext } from '@azure/functions';
import { MAX_DEQUEUE_COUNT, STORAGE } from '../shared/constants';
import { isTransient } from '../shared/errors';
import { deliver } from '../shared/notifications/deliver';
import { redactError } from '../shared/redact';
import { getRuntime, invocationTelemetry } from '../shared/runtime';
import { EVENTS } from '../shared/telemetry/events';
import { CONNECTION, contextSink, dequeueCount } from './common';

/** Queue worker: sends one notification on one channel; a failing channel is retried alone. */
export async function sendNotifications(message: unknown, context: InvocationContext): Promise<void> {
  const runtime = getRuntime();
  const telemetry = invocationTelemetry(context.invocationId, contextSink(context));
  const attempt = dequeueCount(context);
  const about = (message ?? {}) as {
    channel?: string;
    notification?: { kind?: string; vault?: string; secret?: string };
  };
  const dims = {
    channel: about.channel,
    kind: about.notification?.kind,
    vault: about.notification?.vault,
    secret: about.notification?.secret,
    attempt,
  };
  try {
    const delivered = await deliver(message, runtime.channels);
    await runtime.announcements
      .delivered(delivered.notification)
      .catch((e) => telemetry.log('warn', `recording the announcement failed: ${redactError(e)}`, dims));
    telemetry.event(EVENTS.NotificationSent, { ...dims, outcome: 'sent' });
  } catch (e) {
    const transient = isTransient(e);
    const poisoned = transient && attempt >= MAX_DEQUEUE_COUNT;
    telemetry.event(EVENTS.NotificationFailed, {
      ...dims,
      outcome: 'failed',
      transient,
      poisoned,
      reason: redactError(e),
    });
    await telemetry.flush();
    // Transient: the queue retries, then moves it to notifications-poison. Permanent: retrying cannot help.
    if (transient) throw e;
    return;
  }
  await telemetry.flush();
}

app.storageQueue('sendNotifications', {
  queueName: STORAGE.notificationQueue,
  connection: CONNECTION,
  handler: sendNotifications,
});
