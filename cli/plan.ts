import type { ContainerClient } from '@azure/storage-blob';
import { createBlobServiceClient } from '../shared/clients/lock';
import type { Notices } from '../shared/clients/notices';
import { STORAGE } from '../shared/constants';
import { ROTATORS } from '../shared/rotators';
import type { Notification } from '../shared/notifications/notification';
import { Scanner, type ScanOutput, type VaultSummary } from '../shared/scan/scanner';
import type { WorkItem } from '../shared/work';
import type { Telemetry } from '../shared/telemetry/telemetry';
import { table, type CommandResult, type Progress } from './output';
import type { Target } from './target';

/** The scanner's notice store, read-only: a notice counts as "would be sent" when it was not sent yet. */
class PeekNotices implements Notices {
  constructor(private readonly container: ContainerClient) {}
  async firstTime(key: string): Promise<boolean> {
    return !(await this.container.getBlockBlobClient(`notices/${key}`).exists());
  }
}

/** Telemetry that goes nowhere: a plan is not a scan, and must not look like one in the workbook. */
const silent: Telemetry = {
  event: () => undefined,
  log: () => undefined,
  with: () => silent,
  flush: async () => undefined,
};

/** What the next scan would do: the scanner itself, with writes replaced by reads. */
export async function plan(target: Target, progress: Progress, now = new Date()): Promise<CommandResult> {
  progress.step('planning as the scanner does');
  const container = createBlobServiceClient(target.settings, target.services.credential).getContainerClient(
    STORAGE.lockContainer,
  );
  const scanner = new Scanner({
    settings: target.settings,
    vaults: target.services.vaults,
    rotators: ROTATORS,
    notices: new PeekNotices(container),
    now: () => now,
  });
  // Each vault as its scanVault invocation plans it, with the output collected instead of enqueued.
  const result = {
    work: [] as WorkItem[],
    notifications: [] as Notification[],
    vaults: [] as VaultSummary[],
  };
  const collect: ScanOutput = {
    work: async (items) => void result.work.push(...items),
    notices: async (items) => void result.notifications.push(...items),
  };
  for (const vault of target.services.vaults.names()) {
    result.vaults.push(await scanner.scanVault(vault, collect, { telemetry: silent, retryable: false }));
  }
  const work = [...result.work].sort((a, b) =>
    `${a.vault}/${a.secret}`.localeCompare(`${b.vault}/${b.secret}`),
  );
  const text = [`Plan for the next scan of ${target.description}, ${now.toISOString()}`, ''];
  text.push('Work it would enqueue on rotation-requests');
  text.push(
    ...table(
      ['VAULT', 'SECRET', 'OPERATION', 'WHY'],
      work.map((w) => [w.vault, w.secret, w.op, w.reason ?? '']),
    ),
  );
  if (work.length === 0) text.push('  none');
  text.push('', 'Notices it would send');
  const notices = result.notifications.map((n) => [
    n.vault,
    n.secret,
    n.kind,
    String(n.details.reason ?? n.details.within ?? ''),
  ]);
  text.push(...table(['VAULT', 'SECRET', 'NOTICE', 'WHY'], notices));
  if (notices.length === 0) text.push('  none (or already sent)');
  text.push('', 'Per vault');
  text.push(
    ...table(
      ['VAULT', 'SCANNED', 'OPTED IN', 'DUE', 'EXPIRING', 'EXPIRED', 'INVALID', 'DISABLED', 'ERROR'],
      result.vaults
        .sort((a, b) => a.vault.localeCompare(b.vault))
        .map((v) =>
          [
            v.vault,
            v.scanned,
            v.optedIn,
            v.due,
            v.expiring,
            v.expired,
            v.invalid,
            v.disabled,
            v.error ?? '',
          ].map(String),
        ),
    ),
  );
  if (target.settings.ROTATION_DRY_RUN)
    text.push('', 'ROTATION_DRY_RUN is on: the rotations would only be planned.');
  const failed = result.vaults.some((v) => v.error);
  return {
    exitCode: failed || result.vaults.some((v) => v.invalid > 0) ? 1 : 0,
    data: {
      at: now.toISOString(),
      work,
      notifications: result.notifications,
      vaults: result.vaults,
      dryRun: target.settings.ROTATION_DRY_RUN,
    },
    text,
  };
}
