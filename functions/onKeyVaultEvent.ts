import type { EventGridEvent, InvocationContext } from '@azure/functions';
import { HANDLED_EVENT_TYPES } from '../shared/constants';
import { redactError } from '../shared/redact';
import { TransientError } from '../shared/errors';
import { eventVault, parseKeyVaultEvent } from '../shared/events';
import { EVENTS } from '../shared/telemetry/events';
import { trackOutcome } from '../shared/telemetry/telemetry';
import { invocation, notificationQueue } from './common';

/**
 * Event Grid: rotates the secret a Key Vault event names. An event is a claim: malformed events,
 * invalid names, vault fields that contradict each other and other vaults are logged (naming the event
 * id) and completed before any lock, read or notification; a secret that does not exist or is not
 * opted in notifies nobody (telemetry only). A transient failure throws so Event Grid retries; a
 * permanent one is reported (once per secret version and reason per day) and completed.
 */
export async function onKeyVaultEvent(event: EventGridEvent, context: InvocationContext): Promise<void> {
  const { runtime, telemetry } = await invocation(context);
  let parsed;
  try {
    parsed = parseKeyVaultEvent(event);
  } catch (e) {
    const reason = redactError(e);
    telemetry.log('error', `ignored a malformed event: ${reason}`);
    // Completed, so Event Grid will not dead-letter it: the poison alert hears of it here.
    telemetry.event(EVENTS.MessagePoisoned, {
      queue: 'event-grid',
      poisonQueue: 'dropped',
      cause: 'malformed',
      reason,
    });
    await telemetry.flush();
    return;
  }
  const where = {
    eventId: parsed.id,
    eventType: parsed.type,
    vault: parsed.vaultName,
    secret: parsed.secretName,
  };
  if (!(HANDLED_EVENT_TYPES as readonly string[]).includes(parsed.type)) {
    telemetry.log('info', 'ignored an event type this service does not act on', where);
    return;
  }
  const found = eventVault(parsed, (name, url) => runtime.vaults.resolve(name, url));
  if ('contradiction' in found) {
    telemetry.log('error', `rejected event ${parsed.id}: ${found.contradiction}`, where);
    return;
  }
  if ('unknown' in found) {
    telemetry.log('warn', 'ignored an event from a vault that is not configured in KEY_VAULT_URIS', where);
    return;
  }
  const { vault } = found;
  const { outcome, notifications } = await runtime.engine.rotate({ vault, secret: parsed.secretName });
  // Final unless Event Grid redelivers it (transient); a delivery that never succeeds is dead-lettered.
  const final = outcome.status === 'failed' ? !outcome.transient : undefined;
  trackOutcome(telemetry.with({ eventId: parsed.id, trigger: 'event', final }), outcome, 'rotate');
  // Event Grid retries a transient failure; past FAILURE_NOTICE_AFTER_MINUTES the event completes with
  // the owners' notice instead, and the scan carries on retrying (so it is not final either).
  const tell = await runtime.failures.observe(outcome, false).catch(() => outcome.status !== 'failed');
  if (outcome.status === 'failed' && outcome.transient && !tell) {
    await telemetry.flush();
    throw new TransientError(
      `rotation of ${vault}/${parsed.secretName} failed at ${outcome.step}; Event Grid will retry: ${outcome.reason}`,
    );
  }
  context.extraOutputs.set(notificationQueue, runtime.route(notifications, telemetry));
  await telemetry.flush();
}
