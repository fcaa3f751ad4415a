/**
 * The backlog measurement the scan runs, against the shared Azurite: queue depths, and Event Grid dead
 * letters announced once each (MessagePoisoned) and counted (QueueBacklog). Unique queue and container
 * names keep it apart from every other test.
 */
import { randomBytes } from 'node:crypto';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { parseTelemetryLine } from '../../../local/host/telemetry';
import type { Settings } from '../../../shared/config';
import { REPORTED_METADATA, reportBacklog, type BacklogTargets } from '../../../shared/telemetry/backlog';
import { createTelemetry } from '../../../shared/telemetry/telemetry';

const storage = () => {
  const cs = process.env.AZURITE_CONNECTION_STRING;
  if (!cs) throw new Error('AZURITE_CONNECTION_STRING is not set (tests/support/globalSetup.ts)');
  return cs;
};
const id = randomBytes(4).toString('hex');

function run(targets: BacklogTargets) {
  const lines: string[] = [];
  const telemetry = createTelemetry({} as Settings, undefined, (_, line) => lines.push(line));
  return reportBacklog(targets, telemetry.with({ invocationId: 'scan-1' })).then(() =>
    lines.map((l) => parseTelemetryLine(l)).filter((e) => e !== undefined),
  );
}

/** A dead-letter blob as Event Grid writes it: an array with the event and why it gave up. */
const deadLetter = (vault: string, secret: string) =>
  JSON.stringify([
    {
      id: randomBytes(8).toString('hex'),
      eventType: 'Microsoft.KeyVault.SecretNearExpiry',
      subject: secret,
      data: { VaultName: vault, ObjectName: secret, ObjectType: 'Secret' },
      deadLetterReason: 'MaxDeliveryAttemptsExceeded',
      deliveryAttempts: 30,
      lastDeliveryOutcome: 'TimedOut',
    },
  ]);

describe('reportBacklog', () => {
  const queues = QueueServiceClient.fromConnectionString(storage());
  const blobs = BlobServiceClient.fromConnectionString(storage());
  const work = `bk-${id}-work`;
  const poison = `bk-${id}-work-poison`;
  const missing = `bk-${id}-never-created`;
  const container = blobs.getContainerClient(`bk-${id}-deadletter`);
  const targets: BacklogTargets = { queues, deadLetters: container, queueNames: [work, poison, missing] };

  beforeAll(async () => {
    await queues.getQueueClient(work).create();
    await queues.getQueueClient(poison).create();
    for (const m of ['a', 'b']) await queues.getQueueClient(work).sendMessage(m);
    await queues.getQueueClient(poison).sendMessage('c');
    await container.create();
    const upload = (name: string, body: string) =>
      container.getBlockBlobClient(name).upload(body, body.length);
    await upload('topic/sub/2026/12/02/07/one.json', deadLetter('kv-data-platform', 'adf-pat'));
    await upload('topic/sub/2026/12/02/07/two.json', deadLetter('../etc', 'x y'));
    await upload('topic/sub/2026/12/02/07/three.json', 'not json');
  });

  afterAll(async () => {
    for (const q of [work, poison]) await queues.getQueueClient(q).deleteIfExists();
    await container.deleteIfExists();
  });

  test("each queue's depth (a queue never created holds 0) and the dead-letter count", async () => {
    const events = await run(targets);
    const backlog = events.filter((e) => e.name === 'QueueBacklog').map((e) => e.dimensions);
    expect(backlog.map((d) => [d.queue, d.messages])).toEqual([
      [work, '2'],
      [poison, '1'],
      [missing, '0'],
      [container.containerName, '3'],
    ]);
    expect(backlog.at(-1)?.oldest).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(backlog.every((d) => d.invocationId === 'scan-1')).toBe(true);
  });

  test('every dead letter raises MessagePoisoned once, with its vault, secret and why', async () => {
    // The first test announced all three; mark-and-skip means a new run announces none.
    for await (const b of container.listBlobsFlat({ includeMetadata: true }))
      expect(b.metadata?.[REPORTED_METADATA]).toBe('true');
    expect((await run(targets)).filter((e) => e.name === 'MessagePoisoned')).toEqual([]);

    await container
      .getBlockBlobClient('topic/sub/2026/12/02/08/four.json')
      .upload(deadLetter('kv-apps', 'ops-app-secret'), deadLetter('kv-apps', 'ops-app-secret').length);
    const again = await run(targets);
    expect(again.filter((e) => e.name === 'MessagePoisoned').map((e) => e.dimensions)).toEqual([
      expect.objectContaining({
        queue: 'event-grid',
        poisonQueue: container.containerName,
        cause: 'dead-lettered',
        vault: 'kv-apps',
        secret: 'ops-app-secret',
        eventType: 'Microsoft.KeyVault.SecretNearExpiry',
        reason: 'MaxDeliveryAttemptsExceeded; TimedOut; 30 attempts',
        messageId: 'topic/sub/2026/12/02/08/four.json',
      }),
    ]);
    expect(
      again.find((e) => e.name === 'QueueBacklog' && e.dimensions.queue === container.containerName)
        ?.dimensions.messages,
    ).toBe('4');
  });

  test('a fresh container: invalid names left out, an unreadable blob still announced', async () => {
    const fresh = blobs.getContainerClient(`bk-${id}-fresh`);
    await fresh.create();
    try {
      for (const [name, body] of [
        ['bad.json', deadLetter('../etc', 'x y')],
        ['garbage.json', 'not json'],
      ] as const)
        await fresh.getBlockBlobClient(name).upload(body, body.length);
      const events = await run({ ...targets, deadLetters: fresh, queueNames: [] });
      const poisoned = events.filter((e) => e.name === 'MessagePoisoned').map((e) => e.dimensions);
      expect(poisoned).toHaveLength(2);
      const bad = poisoned.find((d) => d.messageId === 'bad.json');
      expect(bad?.vault).toBeUndefined();
      expect(bad?.secret).toBeUndefined();
      expect(poisoned.find((d) => d.messageId === 'garbage.json')?.reason).toMatch(
        /dead-letter blob not readable/,
      );
    } finally {
      await fresh.deleteIfExists();
    }
  });

  test('no dead-letter container yet: 0 dead letters', async () => {
    const events = await run({
      ...targets,
      deadLetters: blobs.getContainerClient(`bk-${id}-none`),
      queueNames: [],
    });
    expect(events.map((e) => [e.name, e.dimensions.messages])).toEqual([['QueueBacklog', '0']]);
  });
});
