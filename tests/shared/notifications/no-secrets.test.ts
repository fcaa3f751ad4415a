import { randomBytes } from 'node:crypto';
import { NOTIFICATION_KINDS, type Notification } from '../../../shared/notifications/notification';
import { deliver } from '../../../shared/notifications/deliver';
import { routeNotification } from '../../../shared/notifications/routing';
import { redactError, registerSecret } from '../../../shared/redact';
import { useLocalAzure } from '../../support/localAzure';
import { notificationFixture, SIGNING_KEY, TOPIC, type NotificationFixture } from './fixture';

/**
 * "No channel ever receives a secret value" (design section 5), proved end to end: notifications of
 * every kind are built with secret values in their details (bypassing the redaction `notification()`
 * does, and registering one value only after the notification was made, as if it crossed the queue
 * first), routed to all four channels and delivered through the real clients. Every payload that
 * reached local Azure (Teams and webhook bodies and headers, the mail outbox, the topic's events) and
 * every error a failing endpoint produced is scanned for each value in each of its encodings.
 */

const azure = useLocalAzure();
let fx: NotificationFixture;

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const ENTRA_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-';
const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** Secret values, each of which some path could carry into a notification. Test fixtures only. */
const SECRETS = {
  /** A value the service handled and registered before the notification was made. */
  registered: `reg-${hex(16)}`,
  /** Registered only after the notification was made; full of HTML and JSON specials. */
  registeredLate: `late<"&'>${hex(12)}\\x`,
  pat: `dapi${hex(16)}`,
  spSecret: `dose${hex(16)}`,
  entra: `abc8Q~${Array.from(randomBytes(34), (b) => ENTRA_CHARS[b % ENTRA_CHARS.length]).join('')}`,
  jwt: `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url({ aud: 'https://vault.azure.net', exp: 1999999999 })}.${randomBytes(32).toString('base64url')}`,
  bearer: hex(24),
  jsonField: `plain-${hex(12)}`,
  formField: `form-${hex(12)}`,
  sasSig: `${hex(16)}%2B${hex(4)}`,
  signingKey: SIGNING_KEY,
};

/** A notification as a buggy or hostile path might produce it: secrets in values and in keys. */
function leaky(kind: Notification['kind'], i: number): Notification {
  return {
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    kind,
    vault: 'kv-one',
    secret: 'db-token',
    severity: kind === 'rotated' ? 'info' : 'error',
    at: '2026-03-01T12:00:00.000Z',
    recipients: ['owner@contoso.example', 'teams'],
    details: {
      registered: SECRETS.registered,
      late: `value was ${SECRETS.registeredLate} (stored)`,
      reason: `Databricks rejected ${SECRETS.pat}; SP secret ${SECRETS.spSecret}; app secret ${SECRETS.entra}`,
      header: `Authorization: Bearer ${SECRETS.bearer}`,
      token: SECRETS.jwt,
      body: `{"token_value":"${SECRETS.jsonField}","secretText":"${SECRETS.jsonField}"}`,
      form: `grant_type=client_credentials&client_secret=${SECRETS.formField}`,
      url: `https://acct.blob.core.windows.net/c/b?sv=2024&sig=${SECRETS.sasSig}`,
      [`leaked key ${SECRETS.pat}`]: true,
      count: 3,
      none: null,
    },
  };
}

/** The forms a value takes in a payload: raw, inside a JSON string, inside HTML. */
function encodings(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  const html = value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
  return [...new Set([value, json, html])];
}

beforeAll(async () => {
  fx = await notificationFixture(azure());
  registerSecret(SECRETS.registered);
});

test('no secret value reaches any channel, in any payload or error', async () => {
  const notifications = NOTIFICATION_KINDS.map(leaky);
  // The late value is known only now, after the notifications were made (as on the queue's far side).
  registerSecret(SECRETS.registeredLate);

  const messages = notifications.flatMap((n) => {
    const { messages, skipped } = routeNotification(n, fx.settings);
    expect(skipped).toEqual([]);
    return messages;
  });
  expect(new Set(messages.map((m) => m.channel))).toEqual(
    new Set(['teams', 'webhook', 'email', 'eventgrid']),
  );
  for (const m of messages) await deliver(JSON.parse(JSON.stringify(m)), fx.channels);

  // Endpoints that fail and echo the values (in the contexts they appear in) into the error body.
  const echo = `rejected: ${Object.entries(leaky('rotated', 0).details).flat().join(' | ')} ${SECRETS.signingKey}`;
  const errors: string[] = [];
  const failing = [
    { service: 'sink' as const, pathPattern: '^/sink/teams$', status: 400, body: echo },
    { service: 'sink' as const, pathPattern: '^/sink/webhook$', status: 500, body: echo },
    {
      service: 'graph' as const,
      route: '/graph/v1.0/users/:user/sendMail',
      status: 400,
      body: { error: { code: 'ErrorInvalidRequest', message: echo } },
    },
    { service: 'eventgrid' as const, status: 400, body: { error: { code: 'BadRequest', message: echo } } },
  ];
  for (const [i, fault] of failing.entries()) {
    azure().servers.faults.clear();
    azure().servers.faults.add({ method: 'POST', ...fault });
    const m = messages.find((x) => x.channel === ['teams', 'webhook', 'email', 'eventgrid'][i])!;
    const e = await deliver(m, fx.channels).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    expect(e).toBeInstanceOf(Error);
    errors.push(e!.message, redactError(e));
  }
  azure().servers.faults.clear();

  const teams = azure().sink.forChannel('teams');
  const webhooks = azure().sink.forChannel('webhook');
  const mails = azure().state.outbox;
  const events = azure().topics.events(TOPIC);
  // Every kind went out on every channel (the failing round above recorded nothing new).
  for (const list of [teams, webhooks, mails, events]) expect(list).toHaveLength(NOTIFICATION_KINDS.length);

  const payloads: [string, string][] = [
    ...teams.map((d): [string, string] => ['teams', d.rawBody + JSON.stringify(d.headers)]),
    ...webhooks.map((d): [string, string] => ['webhook', d.rawBody + JSON.stringify(d.headers)]),
    ...mails.map((m): [string, string] => ['email', JSON.stringify(m) + m.subject + m.content]),
    ...events.map((e): [string, string] => ['eventgrid', JSON.stringify(e)]),
    ...errors.map((text): [string, string] => ['error', text]),
  ];
  for (const [where, text] of payloads) {
    for (const [name, value] of Object.entries(SECRETS)) {
      for (const form of encodings(value)) {
        if (text.includes(form)) throw new Error(`the ${name} secret reached a ${where} payload`);
      }
    }
  }
  // The values were there to be found: each channel shows the mask where they were.
  for (const channel of ['teams', 'webhook', 'email', 'eventgrid', 'error']) {
    const texts = payloads.filter(([w]) => w === channel).map(([, t]) => t);
    expect(texts.length).toBeGreaterThan(0);
    for (const t of texts) expect(t).toContain('[REDACTED]');
  }
  // …and what is not secret still arrives intact.
  expect(webhooks[0]!.rawBody).toContain('"count":3');
  expect(mails[0]!.to).toEqual(['secops@contoso.example', 'owner@contoso.example']);
});
