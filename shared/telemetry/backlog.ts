import type { TokenCredential } from '@azure/core-auth';
import type { ContainerClient } from '@azure/storage-blob';
import type { QueueServiceClient } from '@azure/storage-queue';
import type { Settings } from '../config';
import { createBlobServiceClient } from '../clients/lock';
import { createQueueServiceClient } from '../clients/queues';
import { STORAGE } from '../constants';
import { redactError } from '../redact';
import { EVENTS } from './events';
import type { Telemetry } from './telemetry';

/** Metadata key set on a dead-letter blob once its MessagePoisoned event was sent. */
export const REPORTED_METADATA = 'rotatorreported';
/** At most this many new dead letters are read (and announced) per run; the rest wait for the next. */
const MAX_NEW_DEAD_LETTERS = 50;
const VAULT_NAME = /^[0-9a-zA-Z-]{3,24}$/;
const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;

export interface BacklogTargets {
  queues: QueueServiceClient;
  deadLetters: ContainerClient;
  /** The queues to measure: the work queues and their -poison queues. */
  queueNames: string[];
}

export function backlogTargets(settings: Settings, credential: TokenCredential): BacklogTargets {
  return {
    queues: createQueueServiceClient(settings, credential),
    deadLetters: createBlobServiceClient(settings, credential).getContainerClient(
      STORAGE.deadLetterContainer,
    ),
    queueNames: [STORAGE.scanQueue, STORAGE.rotationQueue, STORAGE.notificationQueue].flatMap((q) => [
      q,
      `${q}-poison`,
    ]),
  };
}

const notFound = (e: unknown) => (e as { statusCode?: unknown } | null)?.statusCode === 404;

/**
 * One QueueBacklog event per queue (approximate message count; a queue not created yet holds 0) and
 * one for the Event Grid dead-letter container (blob count, oldest blob). Every dead letter not seen
 * before raises MessagePoisoned (cause `dead-lettered`) and is marked in its metadata, so the poison
 * alert hears of each once. Never throws: a measurement that fails is logged and left out.
 */
export async function reportBacklog(targets: BacklogTargets, telemetry: Telemetry): Promise<void> {
  for (const queue of targets.queueNames) {
    try {
      const props = await targets.queues.getQueueClient(queue).getProperties();
      telemetry.event(EVENTS.QueueBacklog, { queue, messages: props.approximateMessagesCount ?? 0 });
    } catch (e) {
      if (notFound(e)) telemetry.event(EVENTS.QueueBacklog, { queue, messages: 0 });
      else telemetry.log('warn', `could not measure queue ${queue}: ${redactError(e)}`);
    }
  }
  try {
    await reportDeadLetters(targets.deadLetters, telemetry);
  } catch (e) {
    if (notFound(e))
      telemetry.event(EVENTS.QueueBacklog, { queue: targets.deadLetters.containerName, messages: 0 });
    else telemetry.log('warn', `could not read ${targets.deadLetters.containerName}: ${redactError(e)}`);
  }
}

async function reportDeadLetters(container: ContainerClient, telemetry: Telemetry): Promise<void> {
  let count = 0;
  let oldest: Date | undefined;
  const unreported: string[] = [];
  for await (const blob of container.listBlobsFlat({ includeMetadata: true })) {
    count++;
    const created = blob.properties.createdOn ?? blob.properties.lastModified;
    if (!oldest || created < oldest) oldest = created;
    if (blob.metadata?.[REPORTED_METADATA] !== 'true' && unreported.length < MAX_NEW_DEAD_LETTERS)
      unreported.push(blob.name);
  }
  for (const name of unreported) {
    const blob = container.getBlockBlobClient(name);
    const props = await blob.getProperties();
    telemetry.event(EVENTS.MessagePoisoned, {
      queue: 'event-grid',
      poisonQueue: container.containerName,
      cause: 'dead-lettered',
      messageId: name,
      ...(await describeDeadLetter(container, name, props.contentLength ?? 0)),
    });
    await blob.setMetadata(
      { ...props.metadata, [REPORTED_METADATA]: 'true' },
      { conditions: { ifMatch: props.etag } },
    );
  }
  telemetry.event(EVENTS.QueueBacklog, {
    queue: container.containerName,
    messages: count,
    oldest: oldest?.toISOString(),
  });
}

/**
 * What a dead-letter blob says (an array of Event Grid events with deadLetterReason): claims, so names
 * are kept only when they are valid vault and secret names, and nothing else from it is trusted.
 */
async function describeDeadLetter(
  container: ContainerClient,
  name: string,
  size: number,
): Promise<{ vault?: string; secret?: string; eventType?: string; reason?: string }> {
  if (size > 256 * 1024) return { reason: `dead-letter blob of ${size} bytes not read` };
  try {
    const body = (await container.getBlockBlobClient(name).downloadToBuffer()).toString('utf8');
    const parsed = JSON.parse(body) as unknown;
    const first = (Array.isArray(parsed) ? parsed[0] : parsed) as {
      eventType?: unknown;
      deadLetterReason?: unknown;
      deliveryAttempts?: unknown;
      lastDeliveryOutcome?: unknown;
      data?: { VaultName?: unknown; ObjectName?: unknown };
    };
    const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, 200) : undefined);
    const vault = text(first?.data?.VaultName);
    const secret = text(first?.data?.ObjectName);
    return {
      vault: vault && VAULT_NAME.test(vault) ? vault : undefined,
      secret: secret && SECRET_NAME.test(secret) ? secret : undefined,
      eventType: text(first?.eventType),
      reason:
        [
          text(first?.deadLetterReason),
          text(first?.lastDeliveryOutcome),
          typeof first?.deliveryAttempts === 'number' ? `${first.deliveryAttempts} attempts` : undefined,
        ]
          .filter(Boolean)
          .join('; ') || undefined,
    };
  } catch (e) {
    return { reason: `dead-letter blob not readable: ${redactError(e)}` };
  }
}
