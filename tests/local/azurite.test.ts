import { RestError } from '@azure/core-rest-pipeline';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { QueueClient, type DequeuedMessageItem } from '@azure/storage-queue';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

/** Queue and container names: 3-63 lowercase letters, digits and dashes; unique per test. */
const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

function connectionString(): string {
  const cs = process.env.AZURITE_CONNECTION_STRING;
  if (!cs) throw new Error('AZURITE_CONNECTION_STRING is not set (tests/support/globalSetup.ts sets it)');
  return cs;
}

/** Functions' queue trigger reads base64 by default (host.json extensions.queues.messageEncoding). */
const encode = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
const decode = (text: string) => JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as unknown;

async function rejection(promise: Promise<unknown>): Promise<RestError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof RestError)) throw new Error(`expected a RestError, got ${String(error)}`);
  return error;
}

/** Polls until a message is visible again (Azurite's visibility clock has one-second granularity). */
async function receiveWhenVisible(queue: QueueClient): Promise<DequeuedMessageItem[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { receivedMessageItems } = await queue.receiveMessages({ visibilityTimeout: 30 });
    if (receivedMessageItems.length > 0 || Date.now() > deadline) return receivedMessageItems;
    await sleep(250);
  }
}

describe('queues', () => {
  let queue: QueueClient;
  beforeEach(async () => {
    queue = new QueueClient(connectionString(), unique('rotate'));
    await queue.create();
  });
  afterEach(async () => {
    await queue.deleteIfExists();
  });

  test('send and receive base64 text', async () => {
    const message = { kind: 'rotate', vault: 'kv-one', secret: 'db-token', attempt: 1 };
    await queue.sendMessage(encode(message));
    const { receivedMessageItems } = await queue.receiveMessages();
    expect(receivedMessageItems).toHaveLength(1);
    const [item] = receivedMessageItems;
    expect(item!.messageText).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(decode(item!.messageText)).toEqual(message);
    expect(item!.dequeueCount).toBe(1);
    await queue.deleteMessage(item!.messageId, item!.popReceipt);
    expect((await queue.getProperties()).approximateMessagesCount).toBe(0);
  });

  test('dequeueCount goes up when a message comes back after its visibility timeout', async () => {
    await queue.sendMessage(encode({ n: 1 }));
    const first = (await queue.receiveMessages({ visibilityTimeout: 3 })).receivedMessageItems;
    expect(first.map((m) => m.dequeueCount)).toEqual([1]);
    // Invisible while the first receiver holds it (peek does not change visibility or dequeueCount).
    expect((await queue.peekMessages()).peekedMessageItems).toHaveLength(0);

    const second = await receiveWhenVisible(queue);
    expect(second.map((m) => m.dequeueCount)).toEqual([2]);
    expect(second[0]!.messageId).toBe(first[0]!.messageId);
    // The first receiver's pop receipt is stale: it can no longer delete the message.
    const stale = await rejection(queue.deleteMessage(first[0]!.messageId, first[0]!.popReceipt));
    expect(stale.statusCode).toBe(400);
    expect(stale.code).toBe('PopReceiptMismatch');
    await queue.deleteMessage(second[0]!.messageId, second[0]!.popReceipt);
  });
});

describe('blob lease (the rotation lock)', () => {
  let container: ContainerClient;
  beforeEach(async () => {
    container = BlobServiceClient.fromConnectionString(connectionString()).getContainerClient(
      unique('locks'),
    );
    await container.create();
  });
  afterEach(async () => {
    await container.deleteIfExists();
  });

  test('acquire → a second acquire fails with 409 LeaseAlreadyPresent → release → acquire works', async () => {
    const blob = container.getBlockBlobClient('kv-one/db-token');
    await blob.upload('', 0);
    const holder = blob.getBlobLeaseClient();
    const rival = blob.getBlobLeaseClient();
    expect(holder.leaseId).not.toBe(rival.leaseId);

    const lease = await holder.acquireLease(15);
    expect(lease.leaseId).toBe(holder.leaseId);
    expect((await blob.getProperties()).leaseState).toBe('leased');

    const conflict = await rejection(rival.acquireLease(15));
    expect(conflict.statusCode).toBe(409);
    expect(conflict.code).toBe('LeaseAlreadyPresent');

    // Writing to a leased blob without the lease id is refused, so only the holder can update it.
    const write = await rejection(blob.upload('x', 1));
    expect(write.statusCode).toBe(412);
    expect(write.code).toBe('LeaseIdMissing');
    await blob.upload('state', 5, { conditions: { leaseId: holder.leaseId } });

    await holder.releaseLease();
    expect((await blob.getProperties()).leaseState).toBe('available');
    const again = await rival.acquireLease(15);
    expect(again.leaseId).toBe(rival.leaseId);
    await rival.releaseLease();
  });

  test('acquiring with the held lease id again succeeds (idempotent re-entry); renew keeps it', async () => {
    const blob = container.getBlockBlobClient('lock');
    await blob.upload('', 0);
    const holder = blob.getBlobLeaseClient();
    await holder.acquireLease(15);
    await holder.acquireLease(15);
    await holder.renewLease();
    expect((await blob.getProperties()).leaseState).toBe('leased');
    await holder.releaseLease();
  });
});
