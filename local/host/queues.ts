/**
 * The queue trigger of the local Functions host: the host's queue listener (batches, newBatchThreshold,
 * back-off up to maxPollingInterval), host.json's retry and poison rules, and the queue clients the
 * output bindings write with.
 */
import { DefaultAzureCredential } from '@azure/identity';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import type { BindingInfo, Registration } from './core';
import type { HostSettings, TriggerHost } from './host';
import { Waker } from './waker';

/**
 * Close to the real host's Storage retries (Azure.Core's .NET defaults: 3 retries, exponential from
 * 0.8 s: 0.8, 1.6, 3.2 s), not the JavaScript SDK's default 4 s base: a burst of 503s on polling
 * stalls the listener about as long as it would in Azure. The JavaScript policy's exponential waits
 * are (2^(n−1) − 1) × base: 0, 0.8 and 2.4 s before the 2nd, 3rd and 4th try (3.2 s in all, against
 * 5.6 s in .NET).
 */
const HOST_RETRY = { retryOptions: { maxTries: 4, retryDelayInMs: 800, maxRetryDelayInMs: 60_000 } };

export interface QueueListener {
  registration: Registration;
  queueName: string;
  client: QueueClient;
  waker: Waker;
  inFlight: number;
  loop?: Promise<void>;
}

/** What the queue trigger needs of the host. */
export interface QueueHost extends TriggerHost {
  readonly settings: HostSettings;
  readonly env: NodeJS.ProcessEnv;
  readonly minPollingIntervalMs?: number;
  triggerOf(r: Registration): [string, BindingInfo];
  /** Counts a message's processing as a running invocation (drain and stop wait for it). */
  track(work: Promise<unknown>): void;
}

export class QueueTriggers {
  readonly listeners: QueueListener[] = [];
  private readonly queueClients = new Map<string, QueueClient>();
  private readonly services = new Map<string, QueueServiceClient>();
  /** Receive calls under way: their messages are invisible but not yet tracked as running. */
  receiving = 0;

  constructor(private readonly host: QueueHost) {}

  encode(item: unknown): string {
    const text = Buffer.isBuffer(item)
      ? item
      : Buffer.from(typeof item === 'string' ? item : JSON.stringify(item), 'utf8');
    return this.host.settings.queues.messageEncoding === 'base64'
      ? text.toString('base64')
      : text.toString('utf8');
  }

  private decode(text: string): string {
    return this.host.settings.queues.messageEncoding === 'base64'
      ? Buffer.from(text, 'base64').toString('utf8')
      : text;
  }

  private queueService(connection: string): QueueServiceClient {
    let service = this.services.get(connection);
    if (service) return service;
    const setting = this.host.env[connection] ?? this.host.env[`AzureWebJobs${connection}`];
    const uri =
      this.host.env[`${connection}__queueServiceUri`] ??
      (this.host.env[`${connection}__accountName`]
        ? `https://${this.host.env[`${connection}__accountName`]}.queue.core.windows.net`
        : undefined);
    if (setting) service = QueueServiceClient.fromConnectionString(setting, HOST_RETRY);
    else if (uri)
      // Identity-based connection, as in Azure: the managed identity (or the developer's az login).
      service = new QueueServiceClient(
        uri,
        new DefaultAzureCredential({ managedIdentityClientId: this.host.env[`${connection}__clientId`] }),
        HOST_RETRY,
      );
    else
      throw new Error(
        `Storage account connection string '${connection}' does not exist. Make sure that it is a defined App Setting.`,
      );
    this.services.set(connection, service);
    return service;
  }

  async queueClient(binding: BindingInfo, create: boolean): Promise<QueueClient> {
    const connection = String(binding.connection || 'AzureWebJobsStorage');
    const key = `${connection}/${String(binding.queueName)}`;
    let client = this.queueClients.get(key);
    if (!client) {
      client = this.queueService(connection).getQueueClient(String(binding.queueName));
      if (create) await client.createIfNotExists();
      this.queueClients.set(key, client);
    }
    return client;
  }

  listen(): void {
    for (const registration of this.host.functionsOf('queueTrigger')) {
      const [, trigger] = this.host.triggerOf(registration);
      const queueName = String(trigger.queueName);
      const listener: QueueListener = {
        registration,
        queueName,
        client: this.queueService(String(trigger.connection || 'AzureWebJobsStorage')).getQueueClient(
          queueName,
        ),
        waker: new Waker(),
        inFlight: 0,
      };
      listener.loop = this.poll(listener);
      this.listeners.push(listener);
    }
  }

  /**
   * The host's queue listener: fetch a batch, process it concurrently, fetch the next when the number
   * in flight falls to newBatchThreshold; when the queue is empty, back off up to maxPollingInterval.
   */
  private async poll(l: QueueListener): Promise<void> {
    const q = this.host.settings.queues;
    const minDelay = this.host.minPollingIntervalMs ?? 100;
    let delay = minDelay;
    let created = false;
    while (!this.host.isStopped()) {
      let received = 0;
      try {
        if (!created) {
          await l.client.createIfNotExists();
          created = true;
        }
        if (l.inFlight <= q.newBatchThreshold) {
          // Invisible while it is processed; on failure it is made visible again after visibilityTimeout.
          this.receiving++;
          try {
            const batch = await l.client.receiveMessages({
              numberOfMessages: q.batchSize,
              visibilityTimeout: Math.ceil(q.messageLeaseMs / 1000),
            });
            received = batch.receivedMessageItems.length;
            for (const message of batch.receivedMessageItems) {
              l.inFlight++;
              const work = this.process(l, message).finally(() => {
                l.inFlight--;
                l.waker.wake();
              });
              this.host.track(work);
            }
          } finally {
            // Only now: until the messages are in `running`, drain() must not call the queue idle.
            this.receiving--;
          }
        }
      } catch (e) {
        if (this.host.isStopped()) break;
        this.host.log(
          'error',
          `polling queue '${l.queueName}' failed: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
      if (this.host.isStopped()) break;
      const full = l.inFlight > q.newBatchThreshold;
      if (received > 0) delay = minDelay;
      else if (!full) delay = Math.min(delay * 2, q.maxPollingIntervalMs);
      // A full batch waits for a completion (which wakes it); a productive poll goes again at once.
      await l.waker.wait(full ? q.maxPollingIntervalMs : received > 0 ? 0 : delay);
    }
  }

  private async process(
    l: QueueListener,
    message: {
      messageId: string;
      popReceipt: string;
      messageText: string;
      dequeueCount: number;
      insertedOn: Date;
      expiresOn: Date;
      nextVisibleOn: Date;
    },
  ): Promise<void> {
    const q = this.host.settings.queues;
    if (message.dequeueCount > q.maxDequeueCount) {
      await this.poison(l, message);
      return;
    }
    const text = this.decode(message.messageText);
    // The message stays invisible while the invocation runs: its lease is renewed at half its length.
    let popReceipt = message.popReceipt;
    let renewing: Promise<unknown> = Promise.resolve();
    const renew = setInterval(() => {
      renewing = l.client
        .updateMessage(message.messageId, popReceipt, undefined, Math.ceil(q.messageLeaseMs / 1000))
        .then((r) => {
          if (r.popReceipt) popReceipt = r.popReceipt;
        })
        .catch(() => undefined);
    }, q.messageLeaseMs / 2);
    renew.unref();
    const record = await this.host
      .invoke(
        l.registration,
        'queue',
        `New queue message detected on '${l.queueName}'.`,
        tryJsonParse(text),
        {
          id: message.messageId,
          queueTrigger: text,
          dequeueCount: message.dequeueCount,
          insertionTime: message.insertedOn.toISOString(),
          expirationTime: message.expiresOn.toISOString(),
          nextVisibleTime: message.nextVisibleOn.toISOString(),
          popReceipt: message.popReceipt,
        },
      )
      .finally(() => clearInterval(renew));
    // A renewal under way when the invocation ended changes the pop receipt the completion needs.
    await renewing;
    try {
      if (record.status === 'succeeded') {
        await l.client.deleteMessage(message.messageId, popReceipt);
      } else if (message.dequeueCount >= q.maxDequeueCount) {
        await this.poison(l, { ...message, popReceipt });
      } else {
        await l.client.updateMessage(
          message.messageId,
          popReceipt,
          undefined,
          Math.ceil(q.visibilityTimeoutMs / 1000),
        );
      }
    } catch (e) {
      this.host.log(
        'error',
        `completing message ${message.messageId} on '${l.queueName}' failed: ${String(e)}`,
      );
    }
  }

  private async poison(
    l: QueueListener,
    message: { messageId: string; popReceipt: string; messageText: string },
  ): Promise<void> {
    const poisonName = `${l.queueName}-poison`;
    this.host.log(
      'warning',
      `Message has reached MaxDequeueCount of ${this.host.settings.queues.maxDequeueCount}. Moving message to queue '${poisonName}'.`,
    );
    const [, trigger] = this.host.triggerOf(l.registration);
    const poison = await this.queueClient({ ...trigger, queueName: poisonName }, true);
    await poison.sendMessage(message.messageText);
    await l.client.deleteMessage(message.messageId, message.popReceipt);
  }

  /** Wakes the listeners of a queue (the host noticed its own write). */
  wake(queueName: string): void {
    for (const l of this.listeners) if (l.queueName === queueName) l.waker.wake();
  }

  /** Whether any trigger queue has a visible message (and wakes its listener). */
  async anyVisible(): Promise<boolean> {
    let visible = false;
    for (const l of this.listeners) {
      const peek = await l.client.peekMessages({ numberOfMessages: 1 }).catch(() => undefined);
      if (peek && peek.peekedMessageItems.length > 0) {
        visible = true;
        l.waker.wake();
      }
    }
    return visible;
  }

  /** Wakes every listener so it sees the host stopped; resolves when their loops have ended. */
  async stop(): Promise<void> {
    for (const l of this.listeners) l.waker.wake();
    await Promise.allSettled(this.listeners.map((l) => l.loop));
  }
}

/** As the library reads a string trigger: JSON when it parses, the string otherwise. */
function tryJsonParse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
