import { request } from 'undici';
import { createGraphApi } from '../../../shared/clients/graph';
import { PermanentError, TransientError } from '../../../shared/errors';
import { createChannels } from '../../../shared/notifications/channels';
import { eventType } from '../../../shared/notifications/channels/eventgrid';
import { deliver } from '../../../shared/notifications/deliver';
import { routeNotification, type NotificationMessage } from '../../../shared/notifications/routing';
import { verifySignature } from '../../../shared/notifications/channels/webhook';
import { useLocalAzure } from '../../support/localAzure';
import {
  DEFAULT_TO,
  notificationFixture,
  sampleNotification,
  SENDER,
  SIGNING_KEY,
  TOPIC,
  type NotificationFixture,
} from './fixture';

/**
 * Each channel against local Azure with the real clients: Teams and webhook over undici to the
 * webhook sink, email through the Graph SDK's sendMail, Event Grid through EventGridPublisherClient
 * with the managed identity. Failures are injected on the routes and mapped by `deliver`.
 */

const azure = useLocalAzure();
let fx: NotificationFixture;

beforeAll(async () => {
  fx = await notificationFixture(azure());
});
beforeEach(() => azure().sink.reset());
afterEach(() => azure().servers.faults.clear());

/** The queue message for one channel, as the functions enqueue it (routed, then JSON on the queue). */
function messageFor(channel: NotificationMessage['channel'], recipients: string[] = []): NotificationMessage {
  const routed = routeNotification(sampleNotification(undefined, recipients), fx.settings).messages;
  const m = routed.find((r) => r.channel === channel);
  if (!m) throw new Error(`not routed to ${channel}`);
  return JSON.parse(JSON.stringify(m)) as NotificationMessage;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(outcome instanceof Error)) throw new Error('expected the delivery to fail');
  return outcome;
}

const sinkFault = (channel: string, fault: Record<string, unknown>) =>
  azure().servers.faults.add({
    service: 'sink',
    method: 'POST',
    pathPattern: `^/sink/${channel}$`,
    ...fault,
  });

describe('teams', () => {
  test('posts an Adaptive Card message to the configured webhook', async () => {
    const m = messageFor('teams');
    await deliver(m, fx.channels);
    const [d, ...more] = azure().sink.forChannel('teams');
    expect(more).toEqual([]);
    expect(d?.headers['content-type']).toMatch(/^application\/json/);
    expect(d?.body).toEqual({
      type: 'message',
      attachments: [
        {
          contentType: 'application/vnd.microsoft.card.adaptive',
          contentUrl: null,
          content: expect.objectContaining({ type: 'AdaptiveCard', version: '1.4' }),
        },
      ],
    });
    const card = (d?.body as { attachments: { content: { body: unknown[] } }[] }).attachments[0]!.content;
    expect(card.body[0]).toMatchObject({ type: 'TextBlock', text: 'Secret rotated: kv-one/db-token' });
    expect(card.body[1]).toEqual({
      type: 'FactSet',
      facts: [
        { title: 'Vault', value: 'kv-one' },
        { title: 'Secret', value: 'db-token' },
        { title: 'Event', value: 'rotated' },
        { title: 'Severity', value: 'info' },
        { title: 'At', value: '2026-03-01T12:00:00.000Z' },
        { title: 'credentialId', value: '4711' },
        { title: 'target', value: 'workspace adb-1' },
      ],
    });
  });

  test.each([
    [500, 'transient', TransientError],
    [503, 'transient', TransientError],
    [429, 'transient', TransientError],
    [408, 'transient', TransientError],
    [400, 'permanent', PermanentError],
    [404, 'permanent', PermanentError],
  ])('HTTP %i from the webhook is %s', async (status, _kind, type) => {
    sinkFault('teams', { status, body: 'nope' });
    const e = await failure(deliver(messageFor('teams'), fx.channels));
    expect(e).toBeInstanceOf(type);
    expect(e.message).toContain(`(HTTP ${status})`);
  });

  test('a classic webhook that wraps a Teams 429 in a 200 is still a transient failure', async () => {
    sinkFault('teams', {
      status: 200,
      body: 'Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi-production-weu-azsc1-1-17,cv=abc.0..',
    });
    const e = await failure(deliver(messageFor('teams'), fx.channels));
    expect(e).toBeInstanceOf(TransientError);
    expect(e.message).toContain('HTTP 429 behind a 200');
  });

  test('a wrapped 400 (a channel that was removed) is permanent', async () => {
    sinkFault('teams', {
      status: 200,
      body: 'Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 400 with ContextId tcid=1..',
    });
    expect(await failure(deliver(messageFor('teams'), fx.channels))).toBeInstanceOf(PermanentError);
  });

  test('a Workflows webhook answering 202 with no body is success', async () => {
    sinkFault('teams', { status: 202, times: 1 });
    await expect(deliver(messageFor('teams'), fx.channels)).resolves.toMatchObject({ channel: 'teams' });
  });

  test('a dropped connection is transient', async () => {
    sinkFault('teams', { drop: true });
    const e = await failure(deliver(messageFor('teams'), fx.channels));
    expect(e).toBeInstanceOf(TransientError);
    expect(e.message).toContain('did not answer');
    // The webhook URL is a credential: it is not in the error.
    expect(e.message).not.toContain('/sink/teams');
  });
});

test('when the step before sending fails (the announcement record), nothing is sent', async () => {
  const before = azure().sink.forChannel('webhook').length;
  const refused = new Error('Storage answered 500');
  const e = await failure(
    deliver(messageFor('webhook'), fx.channels, async () => {
      throw refused;
    }),
  );
  expect(e).toBe(refused);
  expect(azure().sink.forChannel('webhook')).toHaveLength(before);
  // And once it succeeds, the message goes out.
  const seen: string[] = [];
  await deliver(messageFor('webhook'), fx.channels, async (m) => void seen.push(m.notification.id));
  expect(seen).toHaveLength(1);
  expect(azure().sink.forChannel('webhook')).toHaveLength(before + 1);
});

describe('webhook', () => {
  test('posts {notification} with a signature the receiver can verify', async () => {
    const m = messageFor('webhook');
    await deliver(m, fx.channels);
    const [d] = azure().sink.forChannel('webhook');
    expect(d?.body).toEqual({ notification: m.notification });
    const ts = Number(d?.headers['x-kv-rotator-timestamp']);
    expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(120);
    expect(d?.headers['x-kv-rotator-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifySignature(d!.rawBody, d!.headers, SIGNING_KEY)).toEqual({ ok: true, timestamp: ts });
  });

  test('a tampered body, a wrong key, a replayed or unsigned delivery fail verification', async () => {
    await deliver(messageFor('webhook'), fx.channels);
    const [d] = azure().sink.forChannel('webhook');
    const tampered = d!.rawBody.replace('"kv-one"', '"kv-two"');
    expect(tampered).not.toBe(d!.rawBody);
    expect(verifySignature(tampered, d!.headers, SIGNING_KEY)).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifySignature(d!.rawBody, d!.headers, `${SIGNING_KEY}x`)).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    const ts = Number(d!.headers['x-kv-rotator-timestamp']);
    expect(verifySignature(d!.rawBody, d!.headers, SIGNING_KEY, 300, ts + 301)).toEqual({
      ok: false,
      reason: 'stale',
    });
    expect(verifySignature(d!.rawBody, d!.headers, SIGNING_KEY, 300, ts + 300)).toMatchObject({ ok: true });
    // A signature for another timestamp does not carry over.
    const moved = { ...d!.headers, 'x-kv-rotator-timestamp': String(ts + 1) };
    expect(verifySignature(d!.rawBody, moved, SIGNING_KEY, 300, ts)).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    const { 'x-kv-rotator-signature': _dropped, ...unsigned } = d!.headers;
    expect(verifySignature(d!.rawBody, unsigned, SIGNING_KEY)).toEqual({
      ok: false,
      reason: 'missing-headers',
    });
    expect(
      verifySignature(d!.rawBody, { ...d!.headers, 'x-kv-rotator-timestamp': '1e9' }, SIGNING_KEY),
    ).toEqual({ ok: false, reason: 'bad-timestamp' });
  });

  test.each([
    [500, 'transient', TransientError],
    [429, 'transient', TransientError],
    [400, 'permanent', PermanentError],
    [401, 'permanent', PermanentError],
  ])('HTTP %i from the receiver is %s', async (status, _kind, type) => {
    sinkFault('webhook', { status, body: { error: 'receiver says no' } });
    const e = await failure(deliver(messageFor('webhook'), fx.channels));
    expect(e).toBeInstanceOf(type);
    expect(e.message).toContain(`(HTTP ${status})`);
    expect(e.message).toContain('receiver says no');
  });

  test('a redirect is not followed, and is permanent', async () => {
    sinkFault('webhook', { status: 307, headers: { location: `${azure().url}/sink/elsewhere` } });
    const e = await failure(deliver(messageFor('webhook'), fx.channels));
    expect(e).toBeInstanceOf(PermanentError);
    expect(e.message).toContain('redirects are not followed');
    expect(azure().sink.forChannel('elsewhere')).toEqual([]);
  });
});

describe('email', () => {
  test('sends through Graph as MAIL_SENDER to MAIL_DEFAULT_TO', async () => {
    const before = azure().state.outbox.length;
    await deliver(messageFor('email'), fx.channels);
    const sent = azure().state.outbox.slice(before);
    expect(sent).toEqual([
      expect.objectContaining({
        from: SENDER,
        to: [DEFAULT_TO],
        subject: '[kv-rotator] Secret rotated: kv-one/db-token',
        contentType: 'HTML',
      }),
    ]);
    expect(sent[0]!.content).toContain(
      '<th align="left" style="padding:2px 12px 2px 0">credentialId</th><td>4711</td>',
    );
  });

  test('sends to the notify tag addresses merged with the defaults', async () => {
    const before = azure().state.outbox.length;
    await deliver(messageFor('email', ['owner@contoso.example']), fx.channels);
    expect(
      azure()
        .state.outbox.slice(before)
        .map((m) => m.to),
    ).toEqual([[DEFAULT_TO, 'owner@contoso.example']]);
  });

  test('every interpolated value is HTML-escaped', async () => {
    const before = azure().state.outbox.length;
    const n = sampleNotification({ reason: '<img src=x onerror="alert(1)"> & <script>x</script>' });
    const m = routeNotification({ ...n, secret: 'db-<b>token</b>' }, fx.settings).messages.find(
      (r) => r.channel === 'email',
    )!;
    await deliver(m, fx.channels);
    const [mail] = azure().state.outbox.slice(before);
    expect(mail!.content).toContain(
      '&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &lt;script&gt;x&lt;/script&gt;',
    );
    expect(mail!.content).toContain('db-&lt;b&gt;token&lt;/b&gt;');
    expect(mail!.content).not.toMatch(/<img|<script|<b>/);
  });

  test('a sender mailbox that does not exist is a permanent failure with Graph’s error', async () => {
    const channels = createChannels(
      { ...fx.settings, MAIL_SENDER: 'nobody@contoso.example' },
      { graph: createGraphApi(fx.credential, fx.settings.GRAPH_BASE_URL), credential: fx.credential },
    );
    const e = await failure(deliver(messageFor('email'), channels));
    expect(e).toBeInstanceOf(PermanentError);
    expect(e.message).toContain('(HTTP 404)');
    expect(e.message).toContain("The requested user 'nobody@contoso.example' is invalid.");
  });

  test('a Graph 500 is transient', async () => {
    azure().servers.faults.add({
      service: 'graph',
      method: 'POST',
      route: '/graph/v1.0/users/:user/sendMail',
      status: 500,
    });
    const e = await failure(deliver(messageFor('email'), fx.channels));
    expect(e).toBeInstanceOf(TransientError);
    expect(e.message).toContain('(HTTP 500)');
  });
});

describe('eventgrid', () => {
  test('publishes KvRotator.{Kind} with the notification as data, as the managed identity', async () => {
    const before = azure().topics.events(TOPIC).length;
    const m = messageFor('eventgrid');
    await deliver(m, fx.channels);
    const received = azure().topics.events(TOPIC).slice(before);
    const mi = azure().state.managedIdentities[0]!;
    expect(received).toEqual([
      expect.objectContaining({
        topic: TOPIC,
        publisher: mi.objectId,
        event: {
          id: m.notification.id,
          topic: azure().topics.resourceId(TOPIC),
          subject: '/vaults/kv-one/secrets/db-token',
          eventType: 'KvRotator.Rotated',
          eventTime: '2026-03-01T12:00:00.000Z',
          data: m.notification,
          dataVersion: '1.0',
          metadataVersion: '1',
        },
      }),
    ]);
    // The same events are readable from the control API.
    const res = await request(`${azure().url}/control/topics/${TOPIC}/events`);
    const body = (await res.body.json()) as { events: unknown[] };
    expect(body.events.slice(before)).toEqual(JSON.parse(JSON.stringify(received)));
  });

  test('every kind maps to its event type', async () => {
    expect(
      ['rotated', 'rotation-failed', 'expiring', 'expired', 'previous-revoked', 'orphan-revoked'].map((k) =>
        eventType(k as never),
      ),
    ).toEqual([
      'KvRotator.Rotated',
      'KvRotator.RotationFailed',
      'KvRotator.Expiring',
      'KvRotator.Expired',
      'KvRotator.PreviousRevoked',
      'KvRotator.OrphanRevoked',
    ]);
  });

  test.each([
    [500, 'transient', TransientError],
    [429, 'transient', TransientError],
    [400, 'permanent', PermanentError],
    [403, 'permanent', PermanentError],
  ])('HTTP %i from the topic is %s', async (status, _kind, type) => {
    azure().servers.faults.add({
      service: 'eventgrid',
      method: 'POST',
      status,
      body: { error: { code: 'Injected', message: `injected ${status}` } },
      ...(status === 429 ? { retryAfterSeconds: 0 } : {}),
    });
    const e = await failure(deliver(messageFor('eventgrid'), fx.channels));
    expect(e).toBeInstanceOf(type);
    expect(e.message).toContain(`(HTTP ${status})`);
  });
});

describe('deliver', () => {
  test('a message that arrives as a JSON string is delivered', async () => {
    await deliver(JSON.stringify(messageFor('webhook')), fx.channels);
    expect(azure().sink.forChannel('webhook')).toHaveLength(1);
  });

  test.each([
    ['not JSON at all', () => 'hello'],
    ['an unknown channel', () => ({ ...messageFor('webhook'), channel: 'slack' })],
    ['no notification', () => ({ channel: 'webhook' })],
    [
      'a notification without a vault',
      () => {
        const m = messageFor('webhook');
        return { ...m, notification: { ...m.notification, vault: undefined } };
      },
    ],
  ])('a malformed message (%s) is permanent, says why, and sends nothing', async (_what, make) => {
    const message: unknown = make();
    const e = await failure(deliver(message, fx.channels));
    expect(e).toBeInstanceOf(PermanentError);
    expect(e.message).toMatch(/^malformed notification message:\n/);
    expect(azure().sink.deliveries).toEqual([]);
  });

  test('the reason names the field', async () => {
    const m = messageFor('webhook');
    const e = await failure(
      deliver({ ...m, notification: { ...m.notification, kind: 'exploded' } }, fx.channels),
    );
    expect(e.message).toContain('notification.kind');
  });

  test('a channel that is not configured here is permanent', async () => {
    const channels = createChannels(
      { ...fx.settings, TEAMS_WEBHOOK_URL: undefined },
      { graph: {} as never, credential: fx.credential },
    );
    const e = await failure(deliver(messageFor('teams'), channels));
    expect(e).toBeInstanceOf(PermanentError);
    expect(e.message).toContain('the teams channel is not configured');
  });
});
