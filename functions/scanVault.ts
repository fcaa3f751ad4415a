import type { InvocationContext } from '@azure/functions';
import { MAX_DEQUEUE_COUNT, STORAGE } from '../shared/constants';
import { scanRequestSchema } from '../shared/scan/request';
import { EVENTS } from '../shared/telemetry/events';
import { dequeueCount, invocation, messageId, scanPoisonQueue } from './common';

/**
 * Queue worker: scans one vault and enqueues its rotations and notices page by page as it goes.
 * A transient failure throws so the queue retries this vault alone; the last attempt reports it.
 */
export async function scanVault(message: unknown, context: InvocationContext): Promise<void> {
  const { runtime, telemetry } = await invocation(context);
  const parsed = scanRequestSchema.safeParse(message);
  if (!parsed.success || !runtime.vaults.has(parsed.data.vault)) {
    // Retrying cannot fix it (the message names no vault of ours): park it in the poison queue at
    // once, where the poison alert sees it.
    const reason = parsed.success
      ? `vault "${parsed.data.vault}" is not configured in KEY_VAULT_URIS`
      : parsed.error.issues.map((i) => `${i.path.join('.') || 'message'}: ${i.message}`).join('; ');
    telemetry.log('error', `malformed scan request moved to ${STORAGE.scanQueue}-poison: ${reason}`);
    telemetry.event(EVENTS.MessagePoisoned, {
      queue: STORAGE.scanQueue,
      poisonQueue: `${STORAGE.scanQueue}-poison`,
      messageId: messageId(context),
      attempt: dequeueCount(context),
      cause: 'malformed',
      reason,
    });
    context.extraOutputs.set(scanPoisonQueue, [message]);
    await telemetry.flush();
    return;
  }
  try {
    const summary = await runtime.scanner.scanVault(parsed.data.vault, runtime.scanOutput(telemetry), {
      telemetry,
      retryable: dequeueCount(context) < MAX_DEQUEUE_COUNT,
      requestId: messageId(context),
    });
    telemetry.log(
      'info',
      `scan of vault ${summary.vault} planned ${summary.enqueued} operations from ${summary.scanned} secrets`,
    );
  } finally {
    await telemetry.flush();
  }
}
