import { output, type InvocationContext } from '@azure/functions';
import { STORAGE } from '../shared/constants';
import type { LogSink } from '../shared/telemetry/telemetry';

/** The storage connection every queue binding uses: identity-based in Azure, Azurite locally. */
export const CONNECTION = 'AzureWebJobsStorage';

export const scanQueue = output.storageQueue({
  queueName: STORAGE.scanQueue,
  connection: CONNECTION,
});
export const rotationQueue = output.storageQueue({
  queueName: STORAGE.rotationQueue,
  connection: CONNECTION,
});
export const notificationQueue = output.storageQueue({
  queueName: STORAGE.notificationQueue,
  connection: CONNECTION,
});
export const rotationPoisonQueue = output.storageQueue({
  queueName: `${STORAGE.rotationQueue}-poison`,
  connection: CONNECTION,
});

/** Log lines go to the invocation's logger, so the host correlates them with the invocation. */
export function contextSink(context: InvocationContext): LogSink {
  return (level, line) =>
    level === 'error' ? context.error(line) : level === 'warn' ? context.warn(line) : context.info(line);
}

/** How many times the host has delivered this queue message (1 on the first attempt). */
export function dequeueCount(context: InvocationContext): number {
  const n = Number((context.triggerMetadata as { dequeueCount?: unknown } | undefined)?.dequeueCount);
  return Number.isFinite(n) && n > 0 ? n : 1;
}
