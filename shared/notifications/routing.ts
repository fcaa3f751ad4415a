import { z } from 'zod';
import { NOTIFICATION_CHANNELS, type Settings } from '../config';
import { redact } from '../redact';
import { NOTIFICATION_KINDS, type Notification } from './notification';

export type ChannelName = (typeof NOTIFICATION_CHANNELS)[number];

/** The setting that makes each channel usable; a channel without it is never routed to. */
export const CHANNEL_SETTINGS = {
  teams: 'TEAMS_WEBHOOK_URL',
  webhook: 'WEBHOOK_URL',
  email: 'MAIL_SENDER',
  eventgrid: 'NOTIFICATION_TOPIC_ENDPOINT',
} as const satisfies Record<ChannelName, keyof Settings>;

const email = z.email();

/** Whether a tag's address is in a domain NOTIFY_ALLOWED_DOMAINS names (or a subdomain of one). */
export function isAllowedRecipient(address: string, settings: Settings): boolean {
  const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  return settings.NOTIFY_ALLOWED_DOMAINS.some((d) => domain === d || domain.endsWith(`.${d}`));
}
const isEmail = (s: string) => email.safeParse(s).success;
const isChannel = (s: string): s is ChannelName => (NOTIFICATION_CHANNELS as readonly string[]).includes(s);

/** A notification as it travels on the queue; checked again on the way out (queue messages are input). */
export const notificationSchema = z.object({
  id: z.string().min(1),
  kind: z.enum(NOTIFICATION_KINDS),
  vault: z.string().min(1),
  secret: z.string().min(1),
  severity: z.enum(['info', 'warning', 'error']),
  at: z.iso.datetime({ offset: true }),
  recipients: z.array(z.string()).default([]),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
});

/** One message per (notification, channel) on the `notifications` queue, so each channel retries alone. */
export const notificationMessageSchema = z.object({
  notification: notificationSchema,
  channel: z.enum(NOTIFICATION_CHANNELS),
  /** Email only: recipients from the `notify` tag merged with MAIL_DEFAULT_TO; absent means MAIL_DEFAULT_TO. */
  to: z.array(z.email()).min(1).optional(),
});

export type NotificationMessage = z.output<typeof notificationMessageSchema>;

/** A route that was asked for (by settings or the `notify` tag) but cannot be used, and why. */
export interface SkippedRoute {
  channel: string;
  reason: string;
}

export function isConfigured(channel: ChannelName, settings: Settings): boolean {
  if (channel === 'webhook') return Boolean(settings.WEBHOOK_URL && settings.WEBHOOK_SIGNING_KEY);
  return Boolean(settings[CHANNEL_SETTINGS[channel]]);
}

/** Case-insensitive de-duplication of addresses, keeping the first spelling. */
function uniqueAddresses(addresses: string[]): string[] {
  const seen = new Map<string, string>();
  for (const a of addresses) if (!seen.has(a.toLowerCase())) seen.set(a.toLowerCase(), a);
  return [...seen.values()];
}

/**
 * Decides where a notification goes: the default channels from settings, plus the `notify` tag's
 * entries (a channel name adds that channel; an email address adds the email channel with that
 * recipient, merged with MAIL_DEFAULT_TO). Tag entries are untrusted: they can only pick among the
 * channels configured in settings and name mail recipients within NOTIFY_ALLOWED_DOMAINS. No URL ever comes from a tag, so a tag
 * cannot make the service call an address of its choosing (SSRF). Never throws: what cannot be
 * routed is returned in `skipped` with the reason.
 */
export function routeNotification(
  n: Notification,
  settings: Settings,
): { messages: NotificationMessage[]; skipped: SkippedRoute[] } {
  const wanted = new Set<ChannelName>(settings.NOTIFY_DEFAULT_CHANNELS);
  const tagAddresses: string[] = [];
  const accepted: string[] = [];
  const skipped: SkippedRoute[] = [];

  for (const raw of n.recipients) {
    const entry = raw.trim();
    if (!entry) continue;
    if (isChannel(entry)) {
      wanted.add(entry);
      if (!accepted.includes(entry)) accepted.push(entry);
    } else if (isEmail(entry) && !isAllowedRecipient(entry, settings)) {
      skipped.push({
        channel: 'email',
        reason: settings.NOTIFY_ALLOWED_DOMAINS.length
          ? `the notify tag's address is outside NOTIFY_ALLOWED_DOMAINS (${settings.NOTIFY_ALLOWED_DOMAINS.join(', ')})`
          : 'the notify tag names an address, but NOTIFY_ALLOWED_DOMAINS is empty: no recipients are taken from tags',
      });
    } else if (isEmail(entry)) {
      tagAddresses.push(entry);
      if (!accepted.includes(entry)) accepted.push(entry);
    } else
      skipped.push({
        channel: redact(entry),
        reason: `the notify entry is neither a channel (${NOTIFICATION_CHANNELS.join(', ')}) nor an email address; URLs are never taken from tags`,
      });
  }
  if (tagAddresses.length) wanted.add('email');

  // What cannot be routed does not travel on either: receivers see only the entries that were used.
  const notification: Notification = { ...n, recipients: accepted };
  const messages: NotificationMessage[] = [];
  // In the fixed channel order, so the same notification always yields the same messages.
  for (const channel of NOTIFICATION_CHANNELS) {
    if (!wanted.has(channel)) continue;
    if (!isConfigured(channel, settings)) {
      const setting = CHANNEL_SETTINGS[channel];
      skipped.push({
        channel,
        reason:
          channel === 'webhook' && settings.WEBHOOK_URL
            ? 'the webhook channel needs WEBHOOK_SIGNING_KEY (deliveries are signed)'
            : `the ${channel} channel is not configured (${setting} is not set)`,
      });
      continue;
    }
    if (channel !== 'email') {
      messages.push({ notification, channel });
      continue;
    }
    if (tagAddresses.length === 0) {
      if (settings.MAIL_DEFAULT_TO.length === 0) {
        skipped.push({
          channel,
          reason: 'no email recipients: MAIL_DEFAULT_TO is empty and the notify tag names no address',
        });
      } else {
        messages.push({ notification, channel });
      }
      continue;
    }
    messages.push({
      notification,
      channel,
      to: uniqueAddresses([...settings.MAIL_DEFAULT_TO, ...tagAddresses]),
    });
  }
  return { messages, skipped };
}
