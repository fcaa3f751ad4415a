import { app, type InvocationContext, type Timer } from '@azure/functions';
import { getRuntime, invocationTelemetry } from '../shared/runtime';
import { backlogTargets, reportBacklog } from '../shared/telemetry/backlog';
import { contextSink, notificationQueue, rotationQueue } from './common';

/** Timer: plans due rotations, revocations and reconciliations, and expiry notices; enqueues them. */
export async function scanVaults(_timer: Timer, context: InvocationContext): Promise<void> {
  const runtime = getRuntime();
  const telemetry = invocationTelemetry(context.invocationId, contextSink(context));
  const result = await runtime.scanner.scan(telemetry);
  context.extraOutputs.set(rotationQueue, result.work);
  context.extraOutputs.set(notificationQueue, runtime.route(result.notifications, telemetry));
  telemetry.log(
    'info',
    `scan planned ${result.work.length} operations and ${result.notifications.length} notices`,
  );
  // Poison queue depth and Event Grid dead letters, for the workbook and the alerts.
  await reportBacklog(backlogTargets(runtime.settings, runtime.credential), telemetry);
  await telemetry.flush();
}

app.timer('scanVaults', {
  schedule: '%SCAN_SCHEDULE%',
  // A scan that failed as a whole (storage down) is retried soon rather than at the next tick.
  retry: {
    strategy: 'exponentialBackoff',
    maxRetryCount: 3,
    minimumInterval: { seconds: 30 },
    maximumInterval: { minutes: 5 },
  },
  extraOutputs: [rotationQueue, notificationQueue],
  handler: scanVaults,
});
