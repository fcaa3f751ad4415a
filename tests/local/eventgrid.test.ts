import { EventGridDeserializer, isSystemEvent } from '@azure/eventgrid';
import { SecretClient } from '@azure/keyvault-secrets';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { KEY_VAULT_EVENT_TYPES, type SubscriptionInput } from '../../local/azure/services/eventgrid';
import { appCredential, useLocalAzure } from '../support/localAzure';

const azure = useLocalAzure();
const DAY = 86_400;
const ARM_TOPIC =
  /^\/subscriptions\/[0-9a-f-]{36}\/resourceGroups\/[^/]+\/providers\/Microsoft\.KeyVault\/vaults\//;

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A webhook subscriber on plain HTTP; `answer` picks the status for each delivery (default 200). */
class Subscriber {
  readonly received: Received[] = [];
  answer: (n: number) => number = () => 200;
  private readonly server: Server;

  private constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(this.answer(this.received.length)).end();
      });
    });
  }

  static async start(): Promise<Subscriber> {
    const s = new Subscriber();
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/api/events`;
  }

  /** Parsed bodies of the Event Grid schema deliveries (each an array of one event). */
  get events(): Record<string, unknown>[] {
    return this.received.flatMap((r) => JSON.parse(r.body) as Record<string, unknown>[]);
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let subscriber: Subscriber;
beforeEach(async () => {
  subscriber = await Subscriber.start();
});
afterEach(async () => {
  await azure().reset();
  await subscriber.stop();
});

function subscribe(options: Omit<SubscriptionInput, 'url'> = {}): string {
  return azure().events.subscribe({ url: subscriber.url, retryDelayMs: 10, ...options });
}

/** Seeds a vault with one secret expiring `days` from the emulated now; returns its version. */
async function seedExpiring(
  vault: string,
  secret: string,
  days: number,
): Promise<{ exp: number; version: string }> {
  const exp = azure().clock.nowSeconds() + days * DAY;
  await azure().seed({
    vaults: [{ name: vault, secrets: [{ name: secret, value: 'not-a-real-value', exp }] }],
  });
  const version = azure().state.vaults.get(vault)?.secrets.get(secret)?.[0]?.version;
  if (!version) throw new Error('seed did not create the secret');
  return { exp, version };
}

/** Advances the emulated clock through the control API, as an out-of-process test would. */
async function advanceDays(days: number): Promise<void> {
  const res = await request(`${azure().url}/control/clock/advance`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ days }),
  });
  expect(res.statusCode).toBe(200);
  await res.body.json();
  await azure().events.idle();
}

const deserializer = new EventGridDeserializer();

describe('Key Vault expiry events (Event Grid schema)', () => {
  test('SecretNearExpiry once, 30 days before exp, in the real PascalCase payload; then SecretExpired', async () => {
    subscribe();
    const { exp, version } = await seedExpiring('kv-expiry', 'db-token', 31);
    await advanceDays(0.5);
    expect(subscriber.received).toHaveLength(0); // still 30.5 days left

    await advanceDays(2);
    expect(subscriber.received).toHaveLength(1);
    const delivery = subscriber.received[0]!;
    expect(delivery.headers['content-type']).toMatch(/^application\/json/);
    expect(delivery.headers['aeg-event-type']).toBe('Notification');
    expect(delivery.headers['aeg-delivery-count']).toBe('0');
    expect(delivery.headers['aeg-subscription-name']).toEqual(expect.any(String));
    const body = JSON.parse(delivery.body) as unknown[];
    expect(body).toEqual([
      {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        topic: expect.stringMatching(ARM_TOPIC),
        subject: 'db-token',
        eventType: 'Microsoft.KeyVault.SecretNearExpiry',
        eventTime: expect.any(String),
        data: {
          Id: `${azure().vaultUrl('kv-expiry')}/secrets/db-token/${version}`,
          VaultName: 'kv-expiry',
          ObjectType: 'Secret',
          ObjectName: 'db-token',
          Version: version,
          NBF: null,
          EXP: exp,
        },
        dataVersion: '1',
        metadataVersion: '1',
      },
    ]);
    const event = body[0] as { topic: string; eventTime: string };
    expect(event.topic.endsWith('/providers/Microsoft.KeyVault/vaults/kv-expiry')).toBe(true);
    // eventTime is the emulated now, not the wall clock.
    expect(Date.parse(event.eventTime)).toBeGreaterThan(Date.now() + 2 * DAY * 1000);

    // The real library accepts the delivery as is.
    const [parsed] = await deserializer.deserializeEventGridEvents(delivery.body);
    expect(parsed).toBeDefined();
    expect(isSystemEvent('Microsoft.KeyVault.SecretNearExpiry', parsed!)).toBe(true);
    if (isSystemEvent('Microsoft.KeyVault.SecretNearExpiry', parsed!)) {
      // The typings say camelCase; the wire (and so the deserialized object) is PascalCase.
      expect(parsed.data as unknown).toMatchObject({ VaultName: 'kv-expiry', ObjectName: 'db-token' });
    }

    await advanceDays(1);
    expect(subscriber.received).toHaveLength(1); // not delivered twice

    await advanceDays(29);
    expect(subscriber.received).toHaveLength(2);
    const [expired] = await deserializer.deserializeEventGridEvents(subscriber.received[1]!.body);
    expect(isSystemEvent('Microsoft.KeyVault.SecretExpired', expired!)).toBe(true);
    expect(expired!.subject).toBe('db-token');

    await advanceDays(5);
    expect(subscriber.received).toHaveLength(2); // expired only once
    expect(azure().events.published.map((e) => e.eventType)).toEqual([
      'Microsoft.KeyVault.SecretNearExpiry',
      'Microsoft.KeyVault.SecretExpired',
    ]);
  });

  test('a disabled or exp-less secret emits nothing', async () => {
    subscribe();
    const exp = azure().clock.nowSeconds() + 10 * DAY;
    await azure().seed({
      vaults: [
        {
          name: 'kv-quiet',
          secrets: [
            { name: 'disabled', value: 'x', exp, enabled: false },
            { name: 'no-exp', value: 'y' },
          ],
        },
      ],
    });
    await advanceDays(40);
    expect(subscriber.received).toHaveLength(0);
  });
});

describe('CloudEvents 1.0 schema', () => {
  test('delivers one structured CloudEvent with content-type application/cloudevents+json', async () => {
    subscribe({ schema: 'CloudEventSchemaV1_0' });
    const { exp, version } = await seedExpiring('kv-cloud', 'sp-secret', 31);
    await advanceDays(2);

    expect(subscriber.received).toHaveLength(1);
    const delivery = subscriber.received[0]!;
    expect(delivery.headers['content-type']).toMatch(/^application\/cloudevents\+json/);
    expect(JSON.parse(delivery.body)).toEqual({
      specversion: '1.0',
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      source: expect.stringMatching(ARM_TOPIC),
      subject: 'sp-secret',
      type: 'Microsoft.KeyVault.SecretNearExpiry',
      time: expect.any(String),
      datacontenttype: 'application/json',
      data: {
        Id: `${azure().vaultUrl('kv-cloud')}/secrets/sp-secret/${version}`,
        VaultName: 'kv-cloud',
        ObjectType: 'Secret',
        ObjectName: 'sp-secret',
        Version: version,
        NBF: null,
        EXP: exp,
      },
    });

    const [event] = await deserializer.deserializeCloudEvents(delivery.body);
    expect(event!.source.endsWith('/vaults/kv-cloud')).toBe(true);
    expect(isSystemEvent('Microsoft.KeyVault.SecretNearExpiry', event!)).toBe(true);
    // The Event Grid schema parser rejects it: the two schemas are really different on the wire.
    await expect(deserializer.deserializeEventGridEvents(delivery.body)).rejects.toThrow();
  });
});

describe('delivery retry and dead-lettering', () => {
  test('500, 500, then 200: three attempts with aeg-delivery-count 0, 1, 2, then delivered', async () => {
    subscriber.answer = (n) => (n <= 2 ? 500 : 200);
    const id = subscribe({ retryDelayMs: 20 });
    await seedExpiring('kv-retry', 'db-token', 31);
    await advanceDays(2);

    expect(subscriber.received.map((r) => r.headers['aeg-delivery-count'])).toEqual(['0', '1', '2']);
    // Same event each time (at-least-once: a subscriber dedupes on id).
    expect(new Set(subscriber.events.map((e) => e.id)).size).toBe(1);
    expect(azure().events.deliveries.map((d) => [d.subscriptionId, d.attempt, d.status])).toEqual([
      [id, 1, 500],
      [id, 2, 500],
      [id, 3, 200],
    ]);
    expect(azure().events.deadLettered).toHaveLength(0);
  });

  test('always failing: dead-lettered after maxAttempts', async () => {
    subscriber.answer = () => 503;
    const id = subscribe({ maxAttempts: 3, retryDelayMs: 5 });
    await seedExpiring('kv-dead', 'db-token', 31);
    await advanceDays(2);

    expect(subscriber.received).toHaveLength(3);
    expect(azure().events.deadLettered).toEqual([
      {
        subscriptionId: id,
        event: expect.objectContaining({ eventType: 'Microsoft.KeyVault.SecretNearExpiry' }),
        deadLetterReason: 'MaxDeliveryAttemptsExceeded',
        deliveryAttempts: 3,
        lastStatus: 503,
      },
    ]);

    // The control API shows the same record.
    const res = await request(`${azure().url}/control/eventgrid/events`);
    const events = (await res.body.json()) as { deadLettered: unknown[]; deliveries: unknown[] };
    expect(events.deadLettered).toHaveLength(1);
    expect(events.deliveries).toHaveLength(3);
  });

  test('400 is not retried (Event Grid dead-letters it at once)', async () => {
    subscriber.answer = () => 400;
    subscribe({ maxAttempts: 5 });
    await seedExpiring('kv-bad', 'db-token', 31);
    await advanceDays(2);

    expect(subscriber.received).toHaveLength(1);
    expect(azure().events.deadLettered[0]).toMatchObject({
      deadLetterReason: 'DeliveryFailed',
      deliveryAttempts: 1,
      lastStatus: 400,
    });
  });

  test('an unreachable subscriber is retried, then dead-lettered with status "error"', async () => {
    const url = subscriber.url;
    await subscriber.stop();
    azure().events.subscribe({ url, maxAttempts: 2, retryDelayMs: 5 });
    await seedExpiring('kv-gone', 'db-token', 31);
    await advanceDays(2);

    expect(azure().events.deliveries.map((d) => d.status)).toEqual(['error', 'error']);
    expect(azure().events.deadLettered[0]).toMatchObject({ lastStatus: 'error', deliveryAttempts: 2 });
    subscriber = await Subscriber.start(); // for afterEach
  });

  test('reset() cancels pending retries: nothing is recorded into the fresh state', async () => {
    subscriber.answer = () => 500;
    subscribe({ maxAttempts: 5, retryDelayMs: 60_000 });
    await seedExpiring('kv-reset', 'db-token', 31);
    azure().clock.advance(2 * DAY * 1000);
    // Wait for the first attempt to be recorded; the retry then sleeps for a minute.
    while (azure().events.deliveries.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(subscriber.received).toHaveLength(1);

    await azure().reset();
    await azure().events.idle(); // returns at once: the 60 s back-off was cancelled
    expect(azure().events.deliveries).toHaveLength(0);
    expect(azure().events.deadLettered).toHaveLength(0);
    expect(subscriber.received).toHaveLength(1);
  });
});

describe('subscription filters', () => {
  async function seedTwoVaults(): Promise<void> {
    await azure().seed({
      vaults: [
        { name: 'kv-a', secrets: [{ name: 's1', value: 'x' }] },
        { name: 'kv-b', secrets: [{ name: 's2', value: 'y' }] },
      ],
    });
  }

  function emitAll(): void {
    const vaults = azure().state.vaults;
    for (const [vault, secret] of [
      ['kv-a', 's1'],
      ['kv-b', 's2'],
    ] as const) {
      const v = vaults.get(vault)!;
      const version = v.secrets.get(secret)![0]!.version;
      for (const type of KEY_VAULT_EVENT_TYPES) azure().events.emit(v, type, secret, version);
    }
  }

  test('eventTypes: only the listed types are delivered', async () => {
    await seedTwoVaults();
    subscribe({ eventTypes: ['Microsoft.KeyVault.SecretNewVersionCreated'] });
    emitAll();
    await azure().events.idle();
    expect(subscriber.events.map((e) => `${e.eventType} ${e.subject}`).sort()).toEqual([
      'Microsoft.KeyVault.SecretNewVersionCreated s1',
      'Microsoft.KeyVault.SecretNewVersionCreated s2',
    ]);
    const [event] = await deserializer.deserializeEventGridEvents(subscriber.received[0]!.body);
    expect(isSystemEvent('Microsoft.KeyVault.SecretNewVersionCreated', event!)).toBe(true);
  });

  test('vaults: only events from the listed vaults are delivered', async () => {
    await seedTwoVaults();
    subscribe({ vaults: ['kv-b'] });
    emitAll();
    await azure().events.idle();
    expect(subscriber.events.map((e) => e.subject)).toEqual(['s2', 's2', 's2']);
    expect(azure().events.published).toHaveLength(6); // published on every topic, delivered per filter
  });

  test('both filters, subscribed through the control API; DELETE unsubscribes', async () => {
    await seedTwoVaults();
    const res = await request(`${azure().url}/control/eventgrid/subscriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        url: subscriber.url,
        vaults: ['kv-a'],
        eventTypes: ['Microsoft.KeyVault.SecretExpired'],
      }),
    });
    expect(res.statusCode).toBe(201);
    const { id } = (await res.body.json()) as { id: string };
    const list = await request(`${azure().url}/control/eventgrid/subscriptions`);
    expect(((await list.body.json()) as { subscriptions: { id: string }[] }).subscriptions).toEqual([
      expect.objectContaining({ id, schema: 'EventGridSchema', maxAttempts: 5 }),
    ]);

    emitAll();
    await azure().events.idle();
    expect(subscriber.events.map((e) => `${e.eventType} ${e.subject}`)).toEqual([
      'Microsoft.KeyVault.SecretExpired s1',
    ]);

    const del = await request(`${azure().url}/control/eventgrid/subscriptions/${id}`, { method: 'DELETE' });
    expect(del.statusCode).toBe(204);
    await del.body.dump();
    emitAll();
    await azure().events.idle();
    expect(subscriber.received).toHaveLength(1);

    const again = await request(`${azure().url}/control/eventgrid/subscriptions/${id}`, { method: 'DELETE' });
    expect(again.statusCode).toBe(404);
    await again.body.dump();
  });

  test('a bad subscription is a 400 naming the field', async () => {
    const res = await request(`${azure().url}/control/eventgrid/subscriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: subscriber.url, eventTypes: ['Microsoft.KeyVault.SecretChanged'] }),
    });
    expect(res.statusCode).toBe(400);
    const body = (await res.body.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('BadRequest');
    expect(body.error.message).toContain('eventTypes[0]');
    expect(body.error.message).toContain('Microsoft.KeyVault.SecretNewVersionCreated');
  });
});

describe('SecretNewVersionCreated', () => {
  test('SecretClient.setSecret emits one event per new version, with the version the SDK got back', async () => {
    const appId = randomUUID();
    await azure().seed({
      apps: [{ displayName: 'writer', appId, secrets: [{ value: 'writer-client-secret-1' }] }],
      vaults: [
        { name: 'kv-set', roleAssignments: [{ principal: appId, role: 'Key Vault Secrets Officer' }] },
      ],
    });
    subscribe({ eventTypes: ['Microsoft.KeyVault.SecretNewVersionCreated'] });
    const client = new SecretClient(
      azure().vaultUrl('kv-set'),
      appCredential(azure(), appId, 'writer-client-secret-1'),
      {
        disableChallengeResourceVerification: true,
      },
    );

    const exp = new Date((azure().clock.nowSeconds() + 90 * DAY) * 1000);
    const first = await client.setSecret('db-token', 'first-value', { expiresOn: exp });
    const second = await client.setSecret('db-token', 'second-value');
    await azure().events.idle();

    const events = await Promise.all(
      subscriber.received.map(async (r) => (await deserializer.deserializeEventGridEvents(r.body))[0]!),
    );
    expect(events.every((e) => isSystemEvent('Microsoft.KeyVault.SecretNewVersionCreated', e))).toBe(true);
    expect(events.map((e) => e.data)).toEqual([
      {
        Id: first.properties.id,
        VaultName: 'kv-set',
        ObjectType: 'Secret',
        ObjectName: 'db-token',
        Version: first.properties.version,
        NBF: null,
        EXP: Math.floor(exp.getTime() / 1000),
      },
      {
        Id: second.properties.id,
        VaultName: 'kv-set',
        ObjectType: 'Secret',
        ObjectName: 'db-token',
        Version: second.properties.version,
        NBF: null,
        EXP: null,
      },
    ]);
    // No value ever travels in an event.
    expect(subscriber.received.map((r) => r.body).join()).not.toMatch(/first-value|second-value/);
  });
});
