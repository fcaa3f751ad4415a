import { output, type InvocationContext } from '@azure/functions';
import { STORAGE } from '../shared/constants';
import type { Runtime } from '../shared/runtime';
import type { LogSink, Telemetry } from '../shared/telemetry/telemetry';

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
export const scanPoisonQueue = output.storageQueue({
  queueName: `${STORAGE.scanQueue}-poison`,
  connection: CONNECTION,
});
export const rotationPoisonQueue = output.storageQueue({
  queueName: `${STORAGE.rotationQueue}-poison`,
  connection: CONNECTION,
});
export const notificationPoisonQueue = output.storageQueue({
  queueName: `${STORAGE.notificationQueue}-poison`,
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

/** The id of the queue message being processed, for the MessagePoisoned event. */
export function messageId(context: InvocationContext): string | undefined {
  const id = (context.triggerMetadata as { id?: unknown } | undefined)?.id;
  return typeof id === 'string' ? id : undefined;
}

/**
 * The runtime and this invocation's telemetry. The runtime (every SDK, the engine, the scanner) is
 * loaded on the first invocation, not when the host loads the app to index its functions: indexing
 * needs only the registrations, and a cold start pays for the SDKs only once there is work.
 */
export async function invocation(
  context: InvocationContext,
): Promise<{ runtime: Runtime; telemetry: Telemetry }> {
  const { getRuntime, invocationTelemetry } = await import('../shared/runtime');
  return {
    runtime: getRuntime(),
    telemetry: invocationTelemetry(context.invocationId, contextSink(context)),
  };
}
