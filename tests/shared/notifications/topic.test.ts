import { randomUUID } from 'node:crypto';
import { AzureKeyCredential, EventGridPublisherClient } from '@azure/eventgrid';
import { ClientSecretCredential, ManagedIdentityCredential } from '@azure/identity';
import { request } from 'undici';
import { useLocalAzure, useManagedIdentityEnv } from '../../support/localAzure';

/**
 * The Event Grid custom topic emulator (local/azure/services/topic.ts), through the real
 * EventGridPublisherClient where the SDK can produce the request, and raw HTTPS for the inputs the SDK
 * would never send. Local auth is disabled: only Entra tokens for https://eventgrid.azure.net work.
 */

const azure = useLocalAzure();
const TOPIC = 'kv-rotator-notifications';
const APP_SECRET = 'app~secret-0123456789abcdefghijklmnop';
const appId = randomUUID();
let endpoint: string;

beforeAll(async () => {
  await azure().seed({
    managedIdentities: [{ name: 'kv-rotator-func' }],
    apps: [{ displayName: 'publisher', appId, secrets: [{ value: APP_SECRET }] }],
  });
  endpoint = azure().addTopic(TOPIC);
  useManagedIdentityEnv(azure());
});
afterEach(() => azure().servers.faults.clear());

const event = (over: Record<string, unknown> = {}) => ({
  id: randomUUID(),
  eventType: 'KvRotator.Rotated',
  subject: '/vaults/kv-one/secrets/db-token',
  eventTime: new Date().toISOString(),
  data: { hello: 'world' },
  dataVersion: '1.0',
  ...over,
});

/** The same, as the SDK takes it (eventTime a Date). */
const sdkEvent = (over: Record<string, unknown> = {}) => ({ ...event(over), eventTime: new Date() });

async function rejection(promise: Promise<unknown>): Promise<Error & { statusCode?: number; code?: string }> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(outcome instanceof Error)) throw new Error('expected a rejection');
  return outcome;
}

/** A raw publish with the managed identity's token: for bodies the SDK would never send. */
async function rawPublish(body: string, { url = `${endpoint}?api-version=2018-01-01`, token = true } = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) {
    const t = await new ManagedIdentityCredential().getToken('https://eventgrid.azure.net/.default');
    headers.authorization = `Bearer ${t.token}`;
  }
  const res = await request(url, { method: 'POST', body, headers });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    error: text
      ? (JSON.parse(text) as { error: { code: string; message: string; details: { code: string }[] } }).error
      : undefined,
  };
}

test('the endpoint is on the main origin; the SDK publishes with a managed identity token', async () => {
  expect(endpoint).toBe(`${azure().url}/topics/${TOPIC}/api/events`);
  const before = azure().topics.events(TOPIC).length;
  const client = new EventGridPublisherClient(endpoint, 'EventGrid', new ManagedIdentityCredential());
  const sent = [event(), event({ subject: '/vaults/kv-one/secrets/other' })];
  await client.send(sent.map((e) => ({ ...e, eventTime: new Date(e.eventTime) })));
  const received = azure().topics.events(TOPIC).slice(before);
  expect(received.map((r) => r.event.id)).toEqual(sent.map((e) => e.id));
  expect(received[0]).toMatchObject({
    topic: TOPIC,
    publisher: azure().state.managedIdentities[0]!.objectId,
    event: {
      subject: '/vaults/kv-one/secrets/db-token',
      eventType: 'KvRotator.Rotated',
      data: { hello: 'world' },
    },
  });
  expect(azure().servers.counts.total('eventgrid POST /topics/:name/api/events')).toBeGreaterThanOrEqual(1);
});

test('any Entra principal with a token for Event Grid can publish (an app with a client secret)', async () => {
  const credential = new ClientSecretCredential(azure().state.tenantId, appId, APP_SECRET, {
    authorityHost: azure().authorityHost,
    disableInstanceDiscovery: true,
  });
  const before = azure().topics.events(TOPIC).length;
  await new EventGridPublisherClient(endpoint, 'EventGrid', credential).send([sdkEvent()]);
  expect(azure().topics.events(TOPIC).slice(before)[0]?.publisher).toBe(
    azure().state.apps.find((a) => a.appId === appId)!.servicePrincipal.objectId,
  );
});

test('an access key is refused: local auth is disabled on the topic', async () => {
  const client = new EventGridPublisherClient(
    endpoint,
    'EventGrid',
    new AzureKeyCredential('a2V5LWZvci10ZXN0cw=='),
  );
  const e = await rejection(client.send([sdkEvent()]));
  expect(e).toMatchObject({ name: 'RestError', statusCode: 401, code: 'Unauthorized' });
  expect(e.message).toContain('local authentication (access keys and SAS tokens) is disabled for this topic');
  expect(e.message).toMatch(
    /Report '[0-9a-f-]{36}:1:\d+\/\d+\/\d{4} \d+:\d{2}:\d{2} [AP]M \(UTC\)' to our forums/,
  );
});

test('no token at all is a 401 naming the accepted authorizations', async () => {
  const res = await rawPublish(JSON.stringify([event()]), { token: false });
  expect(res.status).toBe(401);
  expect(res.error).toMatchObject({
    code: 'Unauthorized',
    details: [{ code: 'Unauthorized' }],
  });
  expect(res.error?.message).toMatch(
    /^Request must contain one of the following authorization signature: aeg-sas-token, aeg-sas-key\./,
  );
});

test('a token for another resource is refused', async () => {
  const vaultToken = await new ManagedIdentityCredential().getToken('https://vault.azure.net/.default');
  const res = await request(`${endpoint}?api-version=2018-01-01`, {
    method: 'POST',
    body: JSON.stringify([event()]),
    headers: { 'content-type': 'application/json', authorization: `Bearer ${vaultToken.token}` },
  });
  const body = (await res.body.json()) as { error: { code: string; message: string } };
  expect(res.statusCode).toBe(401);
  expect(body.error.code).toBe('Unauthorized');
  expect(body.error.message).toContain('audience');
});

test('an event without a subject is refused through the SDK with the schema error', async () => {
  const client = new EventGridPublisherClient(endpoint, 'EventGrid', new ManagedIdentityCredential());
  const e = await rejection(
    client.send([{ eventType: 'KvRotator.Rotated', subject: '', dataVersion: '1.0', data: {} }]),
  );
  expect(e).toMatchObject({ statusCode: 400, code: 'BadRequest' });
  expect(e.message).toMatch(
    /^This resource is configured for 'EventGridEvent' schema and requires 'subject' property to be set\. Report '/,
  );
});

test.each([
  [
    'a single object instead of an array',
    JSON.stringify(event()),
    'Unexpected token when reading JSON. Expected: StartArray, actual: StartObject.',
  ],
  [
    'an empty array',
    '[]',
    "This resource is configured to receive event in 'EventGridEvent' schema. The JSON received does not conform to the expected schema.",
  ],
  [
    'not JSON',
    'hello',
    "Unexpected character encountered while parsing value: h. Path '', line 1, position 1.",
  ],
  ['an empty body', '', 'Unexpected end when reading JSON.'],
  [
    'an array of strings',
    '["x"]',
    "This resource is configured to receive event in 'EventGridEvent' schema. The JSON received does not conform to the expected schema.",
  ],
  [
    'no id',
    JSON.stringify([event({ id: undefined })]),
    "This resource is configured for 'EventGridEvent' schema and requires 'id' property to be set.",
  ],
  [
    'no eventType',
    JSON.stringify([event({ eventType: undefined })]),
    "This resource is configured for 'EventGridEvent' schema and requires 'eventType' property to be set.",
  ],
  [
    'no eventTime',
    JSON.stringify([event({ eventTime: undefined })]),
    "This resource is configured for 'EventGridEvent' schema and requires 'eventTime' property to be set.",
  ],
  [
    'a bad eventTime',
    JSON.stringify([event(), event({ eventTime: 'yesterday' })]),
    "Could not convert string to DateTimeOffset: yesterday. Path '[1].eventTime'.",
  ],
])('%s is a 400 InputJsonInvalid, and nothing is recorded', async (_what, body, message) => {
  const before = azure().topics.events(TOPIC).length;
  const res = await rawPublish(body);
  expect(res.status).toBe(400);
  expect(res.headers['api-supported-versions']).toBe('2018-01-01');
  expect(res.error).toMatchObject({ code: 'BadRequest', details: [{ code: 'InputJsonInvalid' }] });
  expect(
    res.error?.message.startsWith(`${message} Report '${String(res.headers['x-ms-request-id'])}:1:`),
  ).toBe(true);
  expect(azure().topics.events(TOPIC)).toHaveLength(before);
});

test('a missing or unknown api-version is a 400', async () => {
  const missing = await rawPublish(JSON.stringify([event()]), { url: endpoint });
  expect(missing.status).toBe(400);
  expect(missing.error?.message).toMatch(/^The api-version query parameter \(\?api-version=\) is required/);
  const wrong = await rawPublish(JSON.stringify([event()]), { url: `${endpoint}?api-version=2099-01-01` });
  expect(wrong.error?.message).toMatch(/^The api-version '2099-01-01' is invalid\./);
});

test('an unknown topic is a 404 through the SDK', async () => {
  const client = new EventGridPublisherClient(
    `${azure().url}/topics/no-such-topic/api/events`,
    'EventGrid',
    new ManagedIdentityCredential(),
  );
  const e = await rejection(client.send([sdkEvent()]));
  expect(e).toMatchObject({ statusCode: 404, code: 'NotFound' });
  expect(e.message).toContain('No HTTP resource was found that matches the request URI');
});

test('the control API lists a topic’s events, and 404s for an unknown topic', async () => {
  const res = await request(`${azure().url}/control/topics/${TOPIC}/events`);
  const body = (await res.body.json()) as { events: { event: { id: string } }[] };
  expect(res.statusCode).toBe(200);
  expect(body.events.map((e) => e.event.id)).toEqual(
    azure()
      .topics.events(TOPIC)
      .map((e) => e.event.id),
  );
  expect(body.events.length).toBeGreaterThan(0);
  const missing = await request(`${azure().url}/control/topics/nope/events`);
  await missing.body.dump();
  expect(missing.statusCode).toBe(404);
});

test('reset removes the topics', async () => {
  await azure().reset();
  expect(azure().topics.has(TOPIC)).toBe(false);
  expect(() => azure().topics.events(TOPIC)).toThrow(`no topic named ${TOPIC}`);
});
