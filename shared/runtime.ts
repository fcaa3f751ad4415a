import { getSettings } from './config';
import { BlobNotices } from './clients/notices';
import { BlobRecords } from './clients/records';
import { Announcements } from './announcements';
import { Failures } from './failures';
import { InFlight } from './inflight';
import { createBlobServiceClient } from './clients/lock';
import { createQueueServiceClient, QueueWriter } from './clients/queues';
import { STORAGE } from './constants';
import { createChannels, type Channels } from './notifications/channels';
import type { Notification } from './notifications/notification';
import { disabledChannels, routeNotification, type NotificationMessage } from './notifications/routing';
import { ROTATORS } from './rotators';
import { QueueScanOutput } from './scan/outbox';
import { Scanner, type ScanOutput } from './scan/scanner';
import { createServices, type Services } from './services';
import { EVENTS } from './telemetry/events';
import { createTelemetry, type LogSink, type Telemetry } from './telemetry/telemetry';

/** Everything the functions use, built once per process on first use (not at module load). */
export interface Runtime extends Services {
  telemetry: Telemetry;
  scanner: Scanner;
  channels: Channels;
  /** Durable records of queued work, failing secrets and announced rotations (blobs in the lock container). */
  inflight: InFlight;
  failures: Failures;
  announcements: Announcements;
  /** One queue message per (notification, channel); skipped routes are logged. */
  route(notifications: Notification[], telemetry: Telemetry): NotificationMessage[];
  /** A vault scan's output, written to the rotation and notification queues as it pages. */
  scanOutput(telemetry: Telemetry): ScanOutput;
}

let cached: Runtime | undefined;

export function getRuntime(): Runtime {
  if (cached) return cached;
  const settings = getSettings();
  const services = createServices(settings);
  const telemetry = createTelemetry(settings, services.credential);
  for (const d of disabledChannels(settings)) telemetry.event(EVENTS.NotificationChannelDisabled, { ...d });
  const container = createBlobServiceClient(settings, services.credential).getContainerClient(
    STORAGE.lockContainer,
  );
  const queues = createQueueServiceClient(settings, services.credential);
  const rotations = new QueueWriter(queues.getQueueClient(STORAGE.rotationQueue));
  const notices = new QueueWriter(queues.getQueueClient(STORAGE.notificationQueue));
  const route: Runtime['route'] = (notifications, t) =>
    notifications.flatMap((n) => {
      const { messages, skipped } = routeNotification(n, settings);
      for (const s of skipped)
        t.log('warn', `notification not routed to ${s.channel}: ${s.reason}`, {
          vault: n.vault,
          secret: n.secret,
          kind: n.kind,
        });
      return messages;
    });
  const inflight = new InFlight(
    new BlobRecords(container, 'inflight'),
    settings.IN_FLIGHT_CLAIM_MINUTES * 60_000,
  );
  const failures = new Failures(
    new BlobRecords(container, 'failing'),
    settings.FAILURE_NOTICE_AFTER_MINUTES * 60_000,
  );
  const announcements = new Announcements(new BlobRecords(container, 'announced'), settings, ROTATORS);
  cached = {
    ...services,
    telemetry,
    inflight,
    failures,
    announcements,
    scanner: new Scanner({
      settings,
      vaults: services.vaults,
      rotators: ROTATORS,
      notices: new BlobNotices(container),
      inflight,
      announcements,
      failures,
    }),
    channels: createChannels(settings, { graph: services.deps.graph, credential: services.credential }),
    route,
    scanOutput: (t) => new QueueScanOutput(rotations, notices, (n) => route(n, t)),
  };
  return cached;
}

/** The runtime's telemetry for one invocation: its id on every event, its logger for every line. */
export function invocationTelemetry(invocationId: string, sink: LogSink): Telemetry {
  return getRuntime().telemetry.with({ invocationId }, sink);
}
