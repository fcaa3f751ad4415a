import type { InvocationContext, Timer } from '@azure/functions';
import type { ScanRequest } from '../shared/scan/request';
import { invocation, scanQueue } from './common';

/**
 * Timer: fans the scan out, one `scan-requests` message per configured vault. Each vault is then
 * scanned by its own invocation of scanVault, on whichever instance picks it up, and retried alone.
 */
export async function scanVaults(timer: Timer, context: InvocationContext): Promise<void> {
  const { runtime, telemetry } = await invocation(context);
  const scheduledAt = new Date().toISOString();
  const requests: ScanRequest[] = runtime.vaults.names().map((vault) => ({ vault, scheduledAt }));
  context.extraOutputs.set(scanQueue, requests);
  telemetry.log('info', `scan of ${requests.length} vaults enqueued`, { isPastDue: timer.isPastDue });
  // Poison queue depths and Event Grid dead letters, once per tick, for the workbook and the alerts.
  const { backlogTargets, reportBacklog } = await import('../shared/telemetry/backlog');
  await reportBacklog(backlogTargets(runtime.settings, runtime.credential), telemetry);
  await telemetry.flush();
}
