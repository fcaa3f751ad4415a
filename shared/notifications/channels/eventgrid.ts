import type { TokenCredential } from '@azure/core-auth';
import { EventGridPublisherClient } from '@azure/eventgrid';
import type { Notification, NotificationKind } from '../notification';
import { ChannelError, type Channel } from '../channel';
import { redactDeep } from '../render';

/** `rotation-failed` → `KvRotator.RotationFailed`. */
export function eventType(kind: NotificationKind): string {
  return `KvRotator.${kind
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('')}`;
}

export function eventSubject(n: Notification): string {
  return `/vaults/${n.vault}/secrets/${n.secret}`;
}

/**
 * Publishes to the notification topic (Event Grid schema) with the service's Entra identity: the topic
 * has local (key) auth disabled, and the identity holds "EventGrid Data Sender" on it. The event id is
 * the notification id, so a subscriber can drop the duplicate a queue retry may cause.
 */
export function eventGridChannel(endpoint: string, credential: TokenCredential): Channel {
  let client: EventGridPublisherClient<'EventGrid'> | undefined;
  return {
    name: 'eventgrid',
    async send(message) {
      // The queue retries failed deliveries; one quick retry here only smooths over a blip.
      client ??= new EventGridPublisherClient(endpoint, 'EventGrid', credential, {
        retryOptions: { maxRetries: 1, retryDelayInMs: 500, maxRetryDelayInMs: 2_000 },
      });
      const n = redactDeep(message.notification);
      try {
        await client.send([
          {
            id: n.id,
            eventType: eventType(n.kind),
            subject: eventSubject(n),
            eventTime: new Date(n.at),
            dataVersion: '1.0',
            data: n,
          },
        ]);
      } catch (e) {
        // RestError (an answer, or a network failure without a status); credential errors pass through.
        if (!(e instanceof Error) || e.name !== 'RestError') throw e;
        const status = (e as { statusCode?: number }).statusCode;
        throw new ChannelError('eventgrid', status, `publishing to Event Grid failed: ${e.message}`, {
          cause: e,
        });
      }
    },
  };
}
