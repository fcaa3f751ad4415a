import { request, type Dispatcher } from 'undici';
import { ProviderError } from '../errors';
import { redact } from '../redact';
import type { ChannelName, NotificationMessage } from './routing';

/** One way out for notifications. `send` throws on failure; `deliver` decides transient or permanent. */
export interface Channel {
  readonly name: ChannelName;
  send(message: NotificationMessage): Promise<void>;
}

/**
 * A channel's endpoint refused or failed a delivery. `status` is the HTTP status (absent when no answer
 * came back); as a ProviderError it is transient for 408, 429, 5xx and no answer, permanent otherwise.
 * Messages never carry the endpoint URL: a Teams webhook URL is itself a credential.
 */
export class ChannelError extends ProviderError {
  override name = 'ChannelError';
  constructor(
    readonly channel: ChannelName,
    status: number | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(channel, status, status === undefined ? undefined : `HTTP${status}`, redact(message), options);
  }
}

const TIMEOUTS = { headersMs: 30_000, bodyMs: 30_000 } as const;
/** How much of an error response body is kept in the error message. */
const SNIPPET_CHARS = 300;

export const snippet = (text: string): string =>
  redact(text.length > SNIPPET_CHARS ? `${text.slice(0, SNIPPET_CHARS)}…` : text).trim();

/**
 * POSTs a JSON body with undici and returns the status and the body text. Redirects are not followed
 * (undici's default): a 3xx comes back as is. A request that gets no answer is a ChannelError without
 * a status.
 */
export async function postJson(
  channel: ChannelName,
  url: string,
  body: string,
  headers: Record<string, string>,
  dispatcher?: Dispatcher,
): Promise<{ status: number; text: string }> {
  try {
    const res = await request(url, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'user-agent': 'kv-credential-rotator',
        ...headers,
      },
      headersTimeout: TIMEOUTS.headersMs,
      bodyTimeout: TIMEOUTS.bodyMs,
      ...(dispatcher ? { dispatcher } : {}),
    });
    // The body is always read: undici keeps the connection busy until it is consumed.
    return { status: res.statusCode, text: await res.body.text() };
  } catch (e) {
    const reason = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    throw new ChannelError(channel, undefined, `the ${channel} endpoint did not answer (${reason})`, {
      cause: e,
    });
  }
}
