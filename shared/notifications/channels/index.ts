import type { TokenCredential } from '@azure/core-auth';
import type { Dispatcher } from 'undici';
import { NOTIFICATION_CHANNELS, type Settings } from '../../config';
import type { GraphApi } from '../../clients/graph';
import { registerSecret } from '../../redact';
import type { Channel } from '../channel';
import { isConfigured, type ChannelName } from '../routing';
import { emailChannel } from './email';
import { eventGridChannel } from './eventgrid';
import { teamsChannel } from './teams';
import { webhookChannel } from './webhook';

export type { Channel } from '../channel';

/** The configured channels, each created on first use and then reused. */
export interface Channels {
  /** The channel, or undefined when its settings are missing. */
  get(name: ChannelName): Channel | undefined;
  /** Names of the channels the settings configure. */
  readonly configured: readonly ChannelName[];
}

export interface ChannelDeps {
  graph: GraphApi;
  /** The service's identity (Event Grid publishing). */
  credential: TokenCredential;
  /** undici dispatcher for Teams and webhook POSTs (tests, proxies); the global one otherwise. */
  dispatcher?: Dispatcher;
}

/**
 * Builds the channels from settings. URLs come from settings only, never from a message or a tag.
 * The Teams URL and the signing key are registered with redaction: a Teams webhook URL is a bearer
 * credential, and neither may show up in a log line.
 */
export function createChannels(settings: Settings, deps: ChannelDeps): Channels {
  registerSecret(settings.TEAMS_WEBHOOK_URL);
  registerSecret(settings.WEBHOOK_SIGNING_KEY);
  const factories: Record<ChannelName, () => Channel> = {
    teams: () => teamsChannel(settings.TEAMS_WEBHOOK_URL as string, deps.dispatcher),
    webhook: () =>
      webhookChannel(settings.WEBHOOK_URL as string, settings.WEBHOOK_SIGNING_KEY as string, deps.dispatcher),
    email: () => emailChannel(deps.graph, settings.MAIL_SENDER as string, settings.MAIL_DEFAULT_TO),
    eventgrid: () => eventGridChannel(settings.NOTIFICATION_TOPIC_ENDPOINT as string, deps.credential),
  };
  const configured = NOTIFICATION_CHANNELS.filter((c) => isConfigured(c, settings));
  const made = new Map<ChannelName, Channel>();
  return {
    configured,
    get(name) {
      if (!configured.includes(name)) return undefined;
      let channel = made.get(name);
      if (!channel) {
        channel = factories[name]();
        made.set(name, channel);
      }
      return channel;
    },
  };
}
