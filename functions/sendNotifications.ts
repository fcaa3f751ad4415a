import type { InvocationContext } from '@azure/functions';
import { MAX_DEQUEUE_COUNT, STORAGE } from '../shared/constants';
import { errorFacts, isTransient, MalformedMessageError } from '../shared/errors';
import { deliver } from '../shared/notifications/deliver';
import { redactError } from '../shared/redact';
import { EVENTS } from '../shared/telemetry/events';
import { errorDimensions } from '../shared/telemetry/telemetry';
import { dequeueCount, invocation, messageId, notificationPoisonQueue } from './common';

const POISON_QUEUE = `${STORAGE.notificationQueue}-poison`;

/**
 * Queue worker: sends one notification on one channel; a failing channel is retried alone. A malformed
 * message is parked in the poison queue at once; a transient failure is retried until the last
 * delivery, after which the host moves the message to the poison queue. Both raise MessagePoisoned.
 */
export async function sendNotifications(message: unknown, context: InvocationContext): Promise<void> {
  const { runtime, telemetry } = await invocation(context);
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
    // The announcement is recorded before it is sent: if that write fails, nothing is sent and the
    // queue retries, so the scan never announces a rotation whose notice went out.
    await deliver(message, runtime.channels, (m) => runtime.announcements.announcing(m.notification));
    telemetry.event(EVENTS.NotificationSent, { ...dims, outcome: 'sent' });
  } catch (e) {
    const transient = isTransient(e);
    const malformed = e instanceof MalformedMessageError;
    const poisoned = malformed || (transient && attempt >= MAX_DEQUEUE_COUNT);
    const reason = redactError(e);
    const service = errorDimensions(errorFacts(e));
    telemetry.event(EVENTS.NotificationFailed, {
      ...dims,
      outcome: 'failed',
      transient,
      // Nothing retries a permanent failure, nor a transient one on the last delivery.
      final: !transient || poisoned,
      poisoned,
      reason,
      ...service,
    });
    if (poisoned) {
      telemetry.event(EVENTS.MessagePoisoned, {
        ...dims,
        queue: STORAGE.notificationQueue,
        poisonQueue: POISON_QUEUE,
        messageId: messageId(context),
        cause: malformed ? 'malformed' : 'retries-exhausted',
        reason,
        ...service,
      });
    }
    // Kept for a person to read, as the host would after the last delivery.
    if (malformed) context.extraOutputs.set(notificationPoisonQueue, [message]);
    await telemetry.flush();
    // Transient: the queue retries, then moves it to notifications-poison. Permanent: retrying cannot help.
    if (transient) throw e;
    return;
  }
  await telemetry.flush();
}
