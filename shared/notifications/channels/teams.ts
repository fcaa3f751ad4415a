import type { Dispatcher } from 'undici';
import type { Notification } from '../notification';
import { ChannelError, postJson, snippet, type Channel } from '../channel';
import { escapeMarkdown, facts, title } from '../render';

const COLOR = { info: 'Good', warning: 'Warning', error: 'Attention' } as const;

/**
 * The Teams message: one Adaptive Card as an attachment. Both Teams Workflows ("when a Teams webhook
 * request is received") and classic incoming webhooks accept this shape.
 */
export function teamsMessage(n: Notification): Record<string, unknown> {
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body: [
            {
              type: 'TextBlock',
              text: escapeMarkdown(title(n)),
              weight: 'Bolder',
              size: 'Medium',
              wrap: true,
              color: COLOR[n.severity],
            },
            {
              type: 'FactSet',
              facts: facts(n).map((f) => ({
                title: escapeMarkdown(f.title),
                value: escapeMarkdown(f.value),
              })),
            },
          ],
        },
      },
    ],
  };
}

/**
 * Classic incoming webhooks answer 200 even when Teams refused the message, with the real status in
 * the text ("Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error
 * 429 with ContextId …"), so the text is checked too.
 */
const WRAPPED_FAILURE = /^Webhook message delivery failed/i;
const WRAPPED_STATUS = /returned HTTP error (\d{3})/i;

/** POSTs the card to TEAMS_WEBHOOK_URL (from settings only). 2xx is success (Workflows answer 202, classic "1"). */
export function teamsChannel(url: string, dispatcher?: Dispatcher): Channel {
  return {
    name: 'teams',
    async send(message) {
      const { status, text } = await postJson(
        'teams',
        url,
        JSON.stringify(teamsMessage(message.notification)),
        {},
        dispatcher,
      );
      if (status < 200 || status >= 300) {
        throw new ChannelError('teams', status, `Teams answered HTTP ${status}: ${snippet(text)}`);
      }
      if (WRAPPED_FAILURE.test(text.trim())) {
        // No status in the text means Teams could not be reached behind the connector: worth a retry.
        const inner = Number(WRAPPED_STATUS.exec(text)?.[1] ?? 502);
        throw new ChannelError(
          'teams',
          inner,
          `Teams refused the message (HTTP ${inner} behind a 200): ${snippet(text)}`,
        );
      }
    },
  };
}
