import { parseSettings, type Settings } from '../../../shared/config';
import { notification, type Notification } from '../../../shared/notifications/notification';
import {
  notificationMessageSchema,
  routeNotification,
  type NotificationMessage,
} from '../../../shared/notifications/routing';

/** Unit tests: routing is a pure function of the notification and the settings. */

const BASE = {
  KEY_VAULT_URIS: 'https://kv-one.vault.azure.net',
  AZURE_TENANT_ID: '72f988bf-0000-4000-8000-00000000a2ee',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
};
const ALL = {
  TEAMS_WEBHOOK_URL: 'https://contoso.webhook.office.com/webhookb2/abc',
  WEBHOOK_URL: 'https://hooks.contoso.example/kv-rotator',
  WEBHOOK_SIGNING_KEY: 'k'.repeat(40),
  MAIL_SENDER: 'rotation-alerts@contoso.example',
  NOTIFICATION_TOPIC_ENDPOINT: 'https://kv-rotator.westeurope-1.eventgrid.azure.net/api/events',
  NOTIFY_ALLOWED_DOMAINS: 'contoso.example',
};

const settings = (env: Record<string, string>): Settings => parseSettings({ ...BASE, ...env });
const made = (recipients: string[]): Notification =>
  notification(
    'rotated',
    { vault: 'kv-one', secret: 'db-token', recipients },
    { credentialId: '123' },
    new Date('2026-01-01T00:00:00Z'),
  );
const route = (recipients: string[], env: Record<string, string>) =>
  routeNotification(made(recipients), settings(env));
const channelsOf = (messages: NotificationMessage[]) => messages.map((m) => m.channel);

test('the default channels get one message each, in a fixed order', () => {
  const { messages, skipped } = route([], {
    ...ALL,
    MAIL_DEFAULT_TO: 'ops@contoso.example',
    NOTIFY_DEFAULT_CHANNELS: 'eventgrid,teams,email,webhook',
  });
  expect(channelsOf(messages)).toEqual(['teams', 'webhook', 'email', 'eventgrid']);
  expect(skipped).toEqual([]);
  // Email to the defaults carries no `to`: the channel sends to MAIL_DEFAULT_TO.
  expect(messages.find((m) => m.channel === 'email')?.to).toBeUndefined();
  // Every message is what the queue worker accepts.
  for (const m of messages) expect(notificationMessageSchema.parse(JSON.parse(JSON.stringify(m)))).toEqual(m);
});

test('no default channels and no notify tag: nothing to send', () => {
  expect(route([], ALL)).toEqual({ messages: [], skipped: [] });
});

test('a channel named in the tag adds that channel; repeats are de-duplicated', () => {
  const { messages, skipped } = route(['teams', ' webhook ', 'teams'], {
    ...ALL,
    NOTIFY_DEFAULT_CHANNELS: 'webhook',
  });
  expect(channelsOf(messages)).toEqual(['teams', 'webhook']);
  expect(skipped).toEqual([]);
  expect(messages[0]!.notification.recipients).toEqual(['teams', 'webhook']);
});

test('email addresses in the tag add the email channel, merged with MAIL_DEFAULT_TO without duplicates', () => {
  const { messages } = route(['Owner@Contoso.example', 'ops@contoso.example', 'owner@contoso.example'], {
    ...ALL,
    MAIL_DEFAULT_TO: 'ops@contoso.example,sec@contoso.example',
  });
  expect(messages).toHaveLength(1);
  expect(messages[0]).toMatchObject({
    channel: 'email',
    to: ['ops@contoso.example', 'sec@contoso.example', 'Owner@Contoso.example'],
  });
});

test('email as a default channel and addresses in the tag make one email message, not two', () => {
  const { messages } = route(['owner@contoso.example', 'email'], {
    ...ALL,
    MAIL_DEFAULT_TO: 'ops@contoso.example',
    NOTIFY_DEFAULT_CHANNELS: 'email',
  });
  expect(messages).toEqual([
    expect.objectContaining({ channel: 'email', to: ['ops@contoso.example', 'owner@contoso.example'] }),
  ]);
});

test('a tag naming a channel that is not configured is skipped with the setting it needs, never thrown', () => {
  const { messages, skipped } = route(['teams', 'eventgrid', 'webhook'], {
    WEBHOOK_URL: ALL.WEBHOOK_URL,
    WEBHOOK_SIGNING_KEY: ALL.WEBHOOK_SIGNING_KEY,
  });
  expect(channelsOf(messages)).toEqual(['webhook']);
  expect(skipped).toEqual([
    { channel: 'teams', reason: 'the teams channel is not configured (TEAMS_WEBHOOK_URL is not set)' },
    {
      channel: 'eventgrid',
      reason: 'the eventgrid channel is not configured (NOTIFICATION_TOPIC_ENDPOINT is not set)',
    },
  ]);
});

test('an email address without MAIL_SENDER is skipped, not sent', () => {
  const { messages, skipped } = route(['owner@contoso.example'], {
    NOTIFY_ALLOWED_DOMAINS: 'contoso.example',
  });
  expect(messages).toEqual([]);
  expect(skipped).toEqual([
    { channel: 'email', reason: 'the email channel is not configured (MAIL_SENDER is not set)' },
  ]);
});

test('email named in the tag with no address anywhere is skipped for want of recipients', () => {
  const { messages, skipped } = route(['email'], { MAIL_SENDER: ALL.MAIL_SENDER });
  expect(messages).toEqual([]);
  expect(skipped).toEqual([
    {
      channel: 'email',
      reason: 'no email recipients: MAIL_DEFAULT_TO is empty and the notify tag names no address',
    },
  ]);
});

test('a URL in the tag is never used (SSRF): it is skipped and reported, and the URLs come from settings', () => {
  const { messages, skipped } = route(
    ['https://attacker.example/hook', 'http://169.254.169.254/metadata', 'not-a-channel'],
    { ...ALL, NOTIFY_DEFAULT_CHANNELS: 'teams' },
  );
  expect(channelsOf(messages)).toEqual(['teams']);
  expect(skipped.map((s) => s.channel)).toEqual([
    'https://attacker.example/hook',
    'http://169.254.169.254/metadata',
    'not-a-channel',
  ]);
  for (const s of skipped) expect(s.reason).toMatch(/neither a channel .* nor an email address/);
  // Nothing a message carries says where to send it (only the channel name and mail recipients), and
  // rejected entries do not travel on to receivers either.
  expect(JSON.stringify(messages)).not.toContain('attacker.example');
  expect(messages[0]!.notification.recipients).toEqual([]);
  expect(Object.keys(messages[0]!)).toEqual(['notification', 'channel']);
});

test('tag addresses outside NOTIFY_ALLOWED_DOMAINS are skipped; empty admits none (attack 6)', () => {
  const outside = route(['admin@attacker.example', 'ops@mail.contoso.example', 'x@contoso.example.evil'], {
    ...ALL,
    NOTIFY_DEFAULT_CHANNELS: 'webhook',
  });
  expect(outside.messages).toEqual([
    expect.objectContaining({ channel: 'webhook' }),
    expect.objectContaining({ channel: 'email', to: ['ops@mail.contoso.example'] }),
  ]);
  expect(outside.skipped).toEqual([
    {
      channel: 'email',
      reason: expect.stringMatching(/outside NOTIFY_ALLOWED_DOMAINS \(contoso\.example\)/),
    },
    { channel: 'email', reason: expect.stringMatching(/outside NOTIFY_ALLOWED_DOMAINS/) },
  ]);
  expect(JSON.stringify(outside.messages)).not.toContain('attacker.example');
  const none = route(['owner@contoso.example'], {
    ...ALL,
    NOTIFY_ALLOWED_DOMAINS: '',
    NOTIFY_DEFAULT_CHANNELS: 'teams',
  });
  expect(channelsOf(none.messages)).toEqual(['teams']);
  expect(none.skipped).toEqual([
    {
      channel: 'email',
      reason: expect.stringMatching(/NOTIFY_ALLOWED_DOMAINS is empty: no recipients are taken from tags/),
    },
  ]);
});

test('an email address is never turned into a URL, even one that looks like a host', () => {
  const { messages } = route(['admin@attacker.example'], {
    ...ALL,
    NOTIFY_ALLOWED_DOMAINS: 'attacker.example',
    NOTIFY_DEFAULT_CHANNELS: 'webhook',
  });
  expect(messages).toEqual([
    expect.objectContaining({ channel: 'webhook' }),
    expect.objectContaining({ channel: 'email', to: ['admin@attacker.example'] }),
  ]);
  expect(messages[0]).not.toHaveProperty('to');
});

test('the message schema rejects what the queue could carry wrongly', () => {
  const good = routeNotification(made([]), settings({ ...ALL, NOTIFY_DEFAULT_CHANNELS: 'teams' }))
    .messages[0]!;
  const bad = [
    { ...good, channel: 'slack' },
    { ...good, to: ['https://attacker.example'] },
    { ...good, to: [] },
    { ...good, notification: { ...good.notification, kind: 'unknown' } },
    { ...good, notification: { ...good.notification, details: { nested: { a: 1 } } } },
    { channel: 'teams' },
  ];
  for (const m of bad) expect(notificationMessageSchema.safeParse(m).success).toBe(false);
});
