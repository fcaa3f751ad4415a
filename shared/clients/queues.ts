import type { TokenCredential } from '@azure/core-auth';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import type { Settings } from '../config';
import { STORAGE_RETRY } from './timeouts';

/** The function app's storage queues: a connection string locally, identity-based in Azure. */
export function createQueueServiceClient(
  settings: Settings,
  credential: TokenCredential,
): QueueServiceClient {
  if (settings.AzureWebJobsStorage)
    return QueueServiceClient.fromConnectionString(settings.AzureWebJobsStorage, STORAGE_RETRY);
  if (!settings.AzureWebJobsStorage__queueServiceUri)
    throw new Error('AzureWebJobsStorage__queueServiceUri is required to write to the queues');
  return new QueueServiceClient(settings.AzureWebJobsStorage__queueServiceUri, credential, STORAGE_RETRY);
}

/** As the host writes and reads them (host.json `messageEncoding: base64`): JSON, base64-encoded. */
export const encodeMessage = (item: unknown): string =>
  Buffer.from(JSON.stringify(item), 'utf8').toString('base64');

/**
 * Writes messages to one queue from code, for a function that enqueues as it goes rather than
 * through an output binding (which the host writes only when the invocation ends).
 */
export class QueueWriter {
  private ready?: Promise<unknown>;

  constructor(private readonly queue: QueueClient) {}

  get name(): string {
    return this.queue.name;
  }

  /** Sends every item, concurrently; resolves when all are stored. */
  async send(items: readonly unknown[]): Promise<void> {
    if (items.length === 0) return;
    // Deployed, the Bicep creates the queues; locally the first writer does.
    this.ready ??= this.queue.createIfNotExists().catch((e: unknown) => {
      this.ready = undefined;
      throw e;
    });
    await this.ready;
    await Promise.all(items.map((item) => this.queue.sendMessage(encodeMessage(item))));
  }
}
