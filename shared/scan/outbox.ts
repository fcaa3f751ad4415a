import type { QueueWriter } from '../clients/queues';
import type { Notification } from '../notifications/notification';
import type { NotificationMessage } from '../notifications/routing';
import type { WorkItem } from '../work';
import type { ScanOutput } from './scanner';

/**
 * A vault scan's output on the function app's queues, written as the scan pages: rotation work on
 * `rotation-requests`, routed notices on `notifications`. The one place the scan enqueues work.
 */
export class QueueScanOutput implements ScanOutput {
  constructor(
    private readonly rotations: QueueWriter,
    private readonly notifications: QueueWriter,
    private readonly route: (notifications: Notification[]) => NotificationMessage[],
  ) {}

  async work(items: WorkItem[]): Promise<void> {
    await this.rotations.send(items);
  }

  async notices(items: Notification[]): Promise<void> {
    await this.notifications.send(this.route(items));
  }
}
