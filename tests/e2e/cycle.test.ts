/**
 * The cycle `npm start -- --once` runs, in-process: local Azure with the demo tenant, the shared
 * Azurite, the function app's real bundle in the local Functions host. One timer tick, queues drained,
 * then the outcome is checked where it lands: the vaults, the providers, the webhook sink, the outbox.
 * Then the Event Grid path: Key Vault events pushed to the host's webhook (Event Grid schema with a
 * retried 500, and CloudEvents).
 *
 * This file owns the function app's queues (scan-requests, rotation-requests, notifications and their
 * -poison queues) in the shared Azurite; no other test may use those names.
 */
import { randomBytes } from 'node:crypto';
import { SecretClient } from '@azure/keyvault-secrets';
import { QueueServiceClient } from '@azure/storage-queue';
import {
  DEMO_MAIL,
  DEMO_ROTATOR,
  DEMO_SECRETS,
  DEMO_TOPIC,
  DEMO_VAULTS,
  seedDemo,
  seedDemoPat,
  type Demo,
  type DemoSecretKey,
} from '../../local/demo';
import { LocalFunctionHost, type InvocationRecord } from '../../local/host/host';
import { HANDLED_EVENT_TYPES, STORAGE } from '../../shared/constants';
import { verifySignature } from '../../shared/notifications/channels/webhook';
import { appCredential, useLocalAzure } from '../support/localAzure';
import { readInfra } from '../infra/bicep';
import { alertQueries, eventFilter } from '../infra/kql';
import { appSecretWorks, patWorks, spSecretWorks, type Probe } from '../support/probes';

const DAY = 86_400_000;
const azure = useLocalAzure();
const storage = () => {
  const cs = process.env.AZURITE_CONNECTION_STRING;
  if (!cs) throw new Error('AZURITE_CONNECTION_STRING is not set (tests/support/globalSetup.ts)');
  return cs;
};
const QUEUES = [STORAGE.scanQueue, STORAGE.rotationQueue, STORAGE.notificationQueue].flatMap((q) => [
  q,
  `${q}-poison`,
]);

let demo: Demo;
let host: LocalFunctionHost;
let readers: Record<string, SecretClient>;
/** The current version of each demo secret before the tick, by key. */
let versionsBefore: Record<DemoSecretKey, string>;
let cycleInvocations: InvocationRecord[];
/** The telemetry events of the tick (scan, rotations, notifications), as the host captured them. */
let cycleEvents: LocalFunctionHost['events'];
/** Every secret value that exists in this test, for the leak check. */
const values = new Set<string>();

const currentVersion = (vault: string, secret: string) =>
  azure().state.vaults.get(vault)?.secrets.get(secret)?.at(-1);

async function until(what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  const queues = QueueServiceClient.fromConnectionString(storage());
  for (const name of QUEUES) await queues.getQueueClient(name).deleteIfExists();

  demo = await seedDemo(azure(), { storage: storage() });
  for (const v of Object.values(demo.initial)) values.add(v);
  values.add(demo.reader.secret);
  values.add(demo.env.WEBHOOK_SIGNING_KEY as string);
  readers = Object.fromEntries(
    Object.values(DEMO_VAULTS).map((v) => [
      v,
      new SecretClient(
        demo.vaultUrls[v] as string,
        appCredential(azure(), demo.reader.appId, demo.reader.secret),
        {
          disableChallengeResourceVerification: true,
        },
      ),
    ]),
  );
  versionsBefore = Object.fromEntries(
    Object.entries(DEMO_SECRETS).map(([k, s]) => [k, currentVersion(s.vault, s.name)!.version]),
  ) as Record<DemoSecretKey, string>;

  // host.json as is, except that a failed message is retried at once instead of after 30 s.
  host = await LocalFunctionHost.start({
    env: demo.env,
    minPollingIntervalMs: 50,
    queues: { visibilityTimeoutMs: 0 },
  });
  // As the Bicep subscribes the function: the handled types only. One vault per envelope schema.
  azure().events.subscribe({
    url: host.eventGridUrl(),
    eventTypes: [...HANDLED_EVENT_TYPES],
    vaults: [DEMO_VAULTS.apps],
  });
  azure().events.subscribe({
    url: host.eventGridUrl(),
    eventTypes: [...HANDLED_EVENT_TYPES],
    vaults: [DEMO_VAULTS.dataPlatform],
    schema: 'CloudEventSchemaV1_0',
  });

  await host.tick();
  await host.drain();
  await azure().events.idle();
  cycleInvocations = [...host.invocations];
  cycleEvents = [...host.events];
}, 120_000);

/** The events an event alert of infra/app/monitoring.bicep counts, its filter read from the query text. */
function alerted(rule: 'rotationFailedAlert' | 'poisonedAlert', events: LocalFunctionHost['events']) {
  const query = alertQueries(readInfra('app/monitoring.bicep')).find((q) => q.id === `alert:${rule}`);
  if (!query) throw new Error(`no alert ${rule}`);
  return events.filter(eventFilter(query.text)).map((e) => e.dimensions);
}

afterAll(async () => {
  await host?.stop();
});

describe('one timer tick, queues drained', () => {
  test('every invocation succeeded: the vault scans planned three rotations and two notices for four channels', () => {
    expect(cycleInvocations.filter((i) => i.status === 'failed')).toEqual([]);
    const ticks = cycleInvocations.filter((i) => i.functionName === 'scanVaults');
    expect(ticks).toHaveLength(1);
    // The timer fans out: one scan request per vault, each vault scanned by an invocation of its own.
    expect(ticks[0]!.outputs).toEqual({ [STORAGE.scanQueue]: 2 });
    const scans = cycleInvocations.filter((i) => i.functionName === 'scanVault');
    expect(scans).toHaveLength(2);
    // They enqueue as they page (not through output bindings): one ScanCompleted per vault says what.
    for (const s of scans) expect(s.outputs).toEqual({});
    const completed = host.events.filter((e) => e.name === 'ScanCompleted');
    expect(completed.map((e) => e.dimensions.vault).sort()).toEqual(Object.values(DEMO_VAULTS).sort());
    expect(completed.map((e) => e.invocationId).sort()).toEqual(scans.map((s) => s.invocationId).sort());
    expect(completed.every((e) => e.dimensions.outcome === 'completed')).toBe(true);
    expect(completed.reduce((n, e) => n + Number(e.dimensions.enqueued), 0)).toBe(3);
    const rotations = cycleInvocations.filter((i) => i.functionName === 'rotateSecret');
    expect(rotations).toHaveLength(3);
    // Each rotation enqueued its `rotated` notice for teams, webhook, email and the Event Grid topic.
    for (const r of rotations) expect(r.outputs).toEqual({ [STORAGE.notificationQueue]: 4 });
    expect(cycleInvocations.filter((i) => i.functionName === 'sendNotifications')).toHaveLength(20);
    const published = azure().topics.events(DEMO_TOPIC);
    expect(published.map((e) => e.event.eventType).sort()).toEqual(
      [...Array(3).fill('KvRotator.Rotated'), 'KvRotator.Expiring', 'KvRotator.RotationFailed'].sort(),
    );
  });

  const probe: Record<'pat' | 'sp' | 'app', (value: string) => Promise<Probe>> = {
    pat: (v) => patWorks(demo.workspaceUrl, v),
    sp: (v) => spSecretWorks(azure().accountsUrl, demo.accountId, demo.spApplicationId, v),
    app: (v) => appSecretWorks(azure().authorityHost, azure().state.tenantId, demo.appIds.reporting, v),
  };

  test.each(['pat', 'sp', 'app'] as const)(
    '%s: a new version that works at the provider; the previous credential still works (grace)',
    async (key) => {
      const { vault, name, kind } = DEMO_SECRETS[key];
      const latest = await readers[vault]!.getSecret(name);
      const value = latest.value as string;
      values.add(value);
      expect(latest.properties.version).not.toBe(versionsBefore[key]);
      expect(value).not.toBe(demo.initial[key]);
      const tags = latest.properties.tags ?? {};
      expect(tags['rotation-kind']).toBe(kind);
      expect(tags['previous-credential-id']).toBe(demo.credentialIds[key]);
      expect(tags['credential-id']).toBeTruthy();
      expect(tags['credential-id']).not.toBe(demo.credentialIds[key]);
      // Default validity 90 days, default grace 24 hours.
      const expires = latest.properties.expiresOn!.getTime();
      expect(expires).toBeGreaterThan(Date.now() + 89 * DAY);
      expect(expires).toBeLessThan(Date.now() + 91 * DAY);
      const revokeAfter = Date.parse(tags['revoke-previous-after'] ?? '');
      expect(revokeAfter).toBeGreaterThan(Date.now() + 23 * 3_600_000);
      expect(revokeAfter).toBeLessThan(Date.now() + 25 * 3_600_000);

      const [fresh, previous] = await Promise.all([probe[key](value), probe[key](demo.initial[key])]);
      expect({ fresh, previous }).toMatchObject({ fresh: { works: true }, previous: { works: true } });
    },
  );

  test('the secret that is not opted in is untouched', async () => {
    const { vault, name } = DEMO_SECRETS.notOptedIn;
    expect(currentVersion(vault, name)?.version).toBe(versionsBefore.notOptedIn);
    expect((await readers[vault]!.getSecret(name)).value).toBe(demo.initial.notOptedIn);
  });

  test('the secret with a bad tag is untouched and its finding is recorded', () => {
    const { vault, name } = DEMO_SECRETS.badTag;
    expect(currentVersion(vault, name)?.version).toBe(versionsBefore.badTag);
    expect(
      host.events.find((e) => e.name === 'SecretPolicyInvalid' && e.dimensions.secret === name)?.dimensions,
    ).toMatchObject({
      vault,
      kind: 'entra-app-secret',
      reason: expect.stringContaining('rotation-validity-days'),
    });
  });

  /** `kind vault/secret` of each notification a channel received. */
  const EXPECTED = [
    `expiring ${DEMO_SECRETS.notOptedIn.vault}/${DEMO_SECRETS.notOptedIn.name}`,
    `rotation-failed ${DEMO_SECRETS.badTag.vault}/${DEMO_SECRETS.badTag.name}`,
    ...(['pat', 'sp', 'app'] as const).map((k) => `rotated ${DEMO_SECRETS[k].vault}/${DEMO_SECRETS[k].name}`),
  ].sort();

  test('the webhook channel: one signed delivery per notification, verified with WEBHOOK_SIGNING_KEY', () => {
    const deliveries = azure().sink.forChannel('webhook');
    const seen = deliveries.map((d) => {
      const check = verifySignature(d.rawBody, d.headers, demo.env.WEBHOOK_SIGNING_KEY as string);
      expect(check).toMatchObject({ ok: true });
      const n = (d.body as { notification: { kind: string; vault: string; secret: string } }).notification;
      return `${n.kind} ${n.vault}/${n.secret}`;
    });
    expect(seen.sort()).toEqual(EXPECTED);
    // A different key does not verify: the check above is not vacuous.
    expect(verifySignature(deliveries[0]!.rawBody, deliveries[0]!.headers, 'x'.repeat(40))).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    const failed = deliveries.find((d) => JSON.stringify(d.body).includes('rotation-failed'));
    expect(JSON.stringify(failed?.body)).toContain('rotation-validity-days');
  });

  test('the teams channel: one Adaptive Card per notification', () => {
    const seen = azure()
      .sink.forChannel('teams')
      .map((d) => {
        const card = (
          d.body as { attachments: { content: { body: { facts?: { title: string; value: string }[] }[] } }[] }
        ).attachments[0]!.content;
        const facts = Object.fromEntries((card.body[1]?.facts ?? []).map((f) => [f.title, f.value]));
        return `${facts.Event} ${facts.Vault}/${facts.Secret}`;
      });
    expect(seen.sort()).toEqual(EXPECTED);
  });

  test('the email channel: one mail per notification from MAIL_SENDER; the notify tag adds a recipient', () => {
    const outbox = azure().state.outbox;
    expect(outbox).toHaveLength(EXPECTED.length);
    for (const m of outbox) expect(m.from).toBe(DEMO_MAIL.sender);
    const pat = `${DEMO_SECRETS.pat.vault}/${DEMO_SECRETS.pat.name}`;
    const patMail = outbox.find((m) => m.subject.includes(pat));
    expect(patMail?.subject).toBe(`[kv-rotator] Secret rotated: ${pat}`);
    expect([...(patMail?.to ?? [])].sort()).toEqual([DEMO_MAIL.owner, DEMO_MAIL.defaultTo].sort());
    const expiring = outbox.find((m) => m.subject.includes(DEMO_SECRETS.notOptedIn.name));
    expect(expiring?.subject).toMatch(/Secret expiring/);
    expect(expiring?.to).toEqual([DEMO_MAIL.defaultTo]);
  });

  test('the telemetry of the tick: no alert fires; each vault completed a scan, under its invocation', () => {
    expect(alerted('rotationFailedAlert', cycleEvents)).toEqual([]);
    expect(alerted('poisonedAlert', cycleEvents)).toEqual([]);
    // "No completed scan" reads, per vault, the latest ScanCompleted with outcome completed.
    const scans = cycleEvents.filter((e) => e.name === 'ScanCompleted');
    expect(scans.map((e) => e.dimensions.vault).sort()).toEqual(Object.values(DEMO_VAULTS).sort());
    // The timer fans out; each vault is scanned by its own scanVault invocation.
    const vaultScans = cycleInvocations
      .filter((i) => i.functionName === 'scanVault')
      .map((i) => i.invocationId);
    expect(new Set(scans.map((e) => e.dimensions.invocationId)).size).toBe(scans.length);
    for (const e of scans) {
      expect(e.dimensions).toMatchObject({ outcome: 'completed' });
      expect(vaultScans).toContain(e.dimensions.invocationId);
      expect(Object.keys(JSON.parse(e.dimensions.byState ?? '{}') as object).length).toBeGreaterThan(0);
    }
    // The backlog alert and tile read one QueueBacklog per queue and the dead-letter container: all 0.
    const backlog = cycleEvents.filter((e) => e.name === 'QueueBacklog').map((e) => e.dimensions);
    expect(backlog.map((d) => [d.queue, d.messages]).sort()).toEqual(
      [...QUEUES, STORAGE.deadLetterContainer].map((q) => [q, '0']).sort(),
    );
  });

  test('nothing was poisoned', async () => {
    const queues = QueueServiceClient.fromConnectionString(storage());
    for (const name of QUEUES) {
      const q = queues.getQueueClient(name);
      if (!(await q.exists())) continue;
      expect({ name, messages: (await q.peekMessages({ numberOfMessages: 1 })).peekedMessageItems }).toEqual({
        name,
        messages: [],
      });
    }
  });
});

describe('Event Grid pushes Key Vault events to the host', () => {
  test('Event Grid schema: SecretNearExpiry after a clock advance; a 500 is retried and then it rotates', async () => {
    // A new Entra app and an opted-in secret 35 days from expiry: no event yet (Key Vault says "near"
    // at 30 days). Its window (60 days) makes it due for the engine, which runs on real time.
    const value = `ops8Q~${randomBytes(17).toString('hex')}`;
    values.add(value);
    const name = 'ops-app-secret';
    const vault = DEMO_VAULTS.apps;
    const seeded = await azure().seed({
      apps: [
        {
          displayName: 'ops-app',
          owners: [DEMO_ROTATOR],
          secrets: [{ value }],
          tags: [`kv-rotator:${vault}/${name}`],
        },
      ],
    });
    const app = seeded.apps.find((a) => a.displayName === 'ops-app')!;
    await azure().seed({
      vaults: [
        {
          name: vault,
          secrets: [
            {
              name,
              value,
              exp: Math.floor((azure().clock.now() + 35 * DAY) / 1000),
              tags: {
                'rotation-kind': 'entra-app-secret',
                'entra-app-id': app.appId,
                'credential-id': app.keyIds[0]!,
                'rotation-window-days': '60',
              },
            },
          ],
        },
      ],
    });
    const before = currentVersion(vault, name)!.version;
    // Every Key Vault read of it fails (503, Retry-After: 0) until the SDK's retries are used up once.
    azure().servers.faults.add({
      service: 'keyvault',
      instance: vault,
      method: 'GET',
      pathPattern: `^/secrets/${name}/?$`,
      status: 503,
      retryAfterSeconds: 0,
      times: 4,
    });
    const from = host.invocations.length;

    azure().clock.advance(6 * DAY);
    const event = azure().events.published.find(
      (e) => e.subject === name && e.eventType === 'Microsoft.KeyVault.SecretNearExpiry',
    );
    expect(event).toBeDefined();
    await until('the event to be delivered', () =>
      azure().events.deliveries.some((d) => d.eventId === event!.id && d.status === 200),
    );
    await azure().events.idle();
    await host.drain();

    const attempts = azure().events.deliveries.filter((d) => d.eventId === event!.id);
    expect(attempts[0]?.status).toBe(500);
    expect(attempts.at(-1)?.status).toBe(200);
    // The failed delivery was an attempt Event Grid retried, not a final failure: no alert.
    const failed = host.events.filter(
      (e) => e.name === 'SecretRotationFailed' && e.dimensions.secret === name,
    );
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.map((e) => e.dimensions.final)).toEqual(failed.map(() => 'false'));
    expect(alerted('rotationFailedAlert', failed)).toEqual([]);
    const mine = host.invocations.slice(from).filter((i) => i.functionName === 'onKeyVaultEvent');
    expect(mine[0]).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/Event Grid will retry/),
    });
    expect(mine.at(-1)).toMatchObject({
      status: 'succeeded',
      reason: expect.stringContaining('SecretNearExpiry'),
    });

    const latest = await readers[vault]!.getSecret(name);
    values.add(latest.value as string);
    expect(latest.properties.version).not.toBe(before);
    expect(latest.properties.tags?.['previous-credential-id']).toBe(app.keyIds[0]);
    const works = await appSecretWorks(
      azure().authorityHost,
      azure().state.tenantId,
      app.appId,
      latest.value!,
    );
    expect(works).toMatchObject({ works: true });
    expect(
      azure()
        .sink.forChannel('webhook')
        .some((d) => {
          const n = (d.body as { notification: { kind: string; secret: string } }).notification;
          return n.kind === 'rotated' && n.secret === name;
        }),
    ).toBe(true);
  }, 60_000);

  test('CloudEvents: a new version already near expiry is announced at once and rotated', async () => {
    const name = 'jobs-databricks-pat';
    const vault = DEMO_VAULTS.dataPlatform;
    const from = host.invocations.length;
    const { value, tokenId } = await seedDemoPat(azure(), demo, {
      vault,
      name,
      expiresInDays: 20,
      tags: { 'rotation-window-days': '60' },
    });
    values.add(value);
    await until('SecretNearExpiry for the new version', () =>
      azure().events.published.some((e) => e.subject === name),
    );
    const event = azure().events.published.find((e) => e.subject === name)!;
    await until('the CloudEvents delivery', () =>
      azure().events.deliveries.some((d) => d.eventId === event.id && d.status === 200),
    );
    await azure().events.idle();
    await host.drain();

    const subscription = azure()
      .events.listSubscriptions()
      .find((s) => s.schema === 'CloudEventSchemaV1_0');
    expect(azure().events.deliveries.filter((d) => d.eventId === event.id)).toEqual([
      expect.objectContaining({ subscriptionId: subscription?.id, attempt: 1, status: 200 }),
    ]);
    expect(host.invocations.slice(from)).toContainEqual(
      expect.objectContaining({
        functionName: 'onKeyVaultEvent',
        status: 'succeeded',
        reason: expect.stringContaining('Microsoft.KeyVault.SecretNearExpiry'),
      }),
    );
    const latest = await readers[vault]!.getSecret(name);
    values.add(latest.value as string);
    expect(latest.properties.tags?.['previous-credential-id']).toBe(tokenId);
    expect(await patWorks(demo.workspaceUrl, latest.value!)).toMatchObject({ works: true });
  }, 60_000);

  test('a malformed body is refused with 400 (not retried); an unknown function is 404', async () => {
    const bad = await fetch(host.eventGridUrl(), { method: 'POST', body: '{not json' });
    expect(bad.status).toBe(400);
    const unknown = await fetch(host.eventGridUrl().replace('onKeyVaultEvent', 'nope'), {
      method: 'POST',
      body: '[]',
    });
    expect(unknown.status).toBe(404);
  });
});

describe('a rotation that keeps failing transiently', () => {
  test('is retried maxDequeueCount times, then parked in rotation-requests-poison, and owners are told', async () => {
    const { vault, name } = DEMO_SECRETS.app;
    const item = { op: 'rotate', vault, secret: name, reason: 'e2e-poison', force: true };
    // Every read of the secret fails with 503 (Retry-After: 0, so the SDK's own retries are quick).
    azure().servers.faults.add({
      service: 'keyvault',
      instance: vault,
      method: 'GET',
      pathPattern: `^/secrets/${name}/?$`,
      status: 503,
      retryAfterSeconds: 0,
    });
    const from = host.invocations.length;
    const sinkFrom = azure().sink.deliveries.length;
    const queues = QueueServiceClient.fromConnectionString(storage());
    // As the scan writes it: JSON, base64 (host.json messageEncoding).
    await queues
      .getQueueClient(STORAGE.rotationQueue)
      .sendMessage(Buffer.from(JSON.stringify(item)).toString('base64'));
    const poison = queues.getQueueClient(`${STORAGE.rotationQueue}-poison`);
    try {
      await until(
        'the message in the poison queue',
        () =>
          host.invocations.slice(from).filter((i) => i.functionName === 'rotateSecret').length >= 5 &&
          host.busy === 0,
        60_000,
      );
      await host.drain();
    } finally {
      azure().servers.faults.clear();
    }

    const attempts = host.invocations.slice(from).filter((i) => i.functionName === 'rotateSecret');
    expect(attempts).toHaveLength(5);
    expect(attempts.slice(0, 4).every((a) => a.status === 'failed')).toBe(true);
    const parked = (await poison.receiveMessages({ numberOfMessages: 32 })).receivedMessageItems;
    expect(parked.map((m) => JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')))).toEqual([
      item,
    ]);
    for (const m of parked) await poison.deleteMessage(m.messageId, m.popReceipt);
    expect(
      host.events.find((e) => e.name === 'SecretRotationFailed' && e.dimensions.attempt === '5')?.dimensions,
    ).toMatchObject({ secret: name, step: 'read', transient: 'true', poisoned: 'true' });
    // Five attempts, one alert each: rotation failed (the last, final) and poison (retries used up).
    const events = host.events.filter((e) => e.dimensions.secret === name);
    expect(events.filter((e) => e.name === 'SecretRotationFailed').map((e) => e.dimensions.final)).toEqual([
      'false',
      'false',
      'false',
      'false',
      'true',
    ]);
    expect(alerted('rotationFailedAlert', events)).toEqual([
      expect.objectContaining({ secret: name, attempt: '5' }),
    ]);
    expect(alerted('poisonedAlert', events)).toEqual([
      expect.objectContaining({
        secret: name,
        cause: 'retries-exhausted',
        poisonQueue: `${STORAGE.rotationQueue}-poison`,
      }),
    ]);
    // The last attempt's notice must reach the owners: outputs of a failed invocation are discarded.
    const notices = azure()
      .sink.deliveries.slice(sinkFrom)
      .filter((d) => d.channel === 'webhook')
      .map((d) => (d.body as { notification: { kind: string; secret: string } }).notification);
    expect(notices).toEqual([expect.objectContaining({ kind: 'rotation-failed', secret: name })]);
  }, 90_000);
});

describe('malformed messages', () => {
  test.each([
    [STORAGE.rotationQueue, { op: 'explode', vault: DEMO_VAULTS.apps, secret: 'x' }],
    [STORAGE.notificationQueue, { channel: 'webhook' }],
  ])(
    'on %s: parked in its -poison queue at once, and the poison alert hears of it',
    async (queue, body) => {
      const from = host.events.length;
      const queues = QueueServiceClient.fromConnectionString(storage());
      await queues.getQueueClient(queue).sendMessage(Buffer.from(JSON.stringify(body)).toString('base64'));
      const poison = queues.getQueueClient(`${queue}-poison`);
      await until('the function to run', () =>
        host.events.slice(from).some((e) => e.name === 'MessagePoisoned'),
      );
      await host.drain();
      const parked = (await poison.receiveMessages({ numberOfMessages: 32 })).receivedMessageItems;
      for (const m of parked) await poison.deleteMessage(m.messageId, m.popReceipt);
      expect(parked.map((m) => JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')))).toEqual([
        body,
      ]);
      expect(alerted('poisonedAlert', host.events.slice(from))).toEqual([
        expect.objectContaining({ queue, poisonQueue: `${queue}-poison`, cause: 'malformed', attempt: '1' }),
      ]);
    },
    60_000,
  );
});

test('no secret value appears in any sink payload, mail, log line or function log', () => {
  const haystacks: [string, string][] = [
    ...azure().sink.deliveries.map((d, i): [string, string] => [
      `sink ${d.channel} #${i}`,
      d.rawBody + JSON.stringify(d.headers),
    ]),
    ...azure().state.outbox.map((m, i): [string, string] => [`mail #${i}`, JSON.stringify(m)]),
    ...host.logs.map((l, i): [string, string] => [`log #${i} ${l.functionName ?? 'host'}`, l.message]),
  ];
  expect(host.logs.length).toBeGreaterThan(50);
  expect(values.size).toBeGreaterThanOrEqual(14);
  const leaks = haystacks.flatMap(([where, text]) =>
    [...values].filter((v) => text.includes(v)).map(() => where),
  );
  expect(leaks).toEqual([]);
});
