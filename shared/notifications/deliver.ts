import { z } from 'zod';
import { isTransient, MalformedMessageError, PermanentError, TransientError } from '../errors';
import { redact, redactError } from '../redact';
import type { Channels } from './channels';
import { notificationMessageSchema, type NotificationMessage } from './routing';

/** Queue messages normally arrive parsed; a string is parsed here (a message written as plain text). */
function parseBody(message: unknown): unknown {
  if (typeof message !== 'string') return message;
  try {
    return JSON.parse(message) as unknown;
  } catch {
    return message;
  }
}

/** The HTTP status behind an error, wherever the client library put it. */
function statusOf(error: unknown): number | undefined {
  const e = error as { status?: unknown; statusCode?: unknown } | null;
  const status = e?.status ?? e?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/**
 * Sends one queue message on its one channel. A malformed message or an unconfigured channel is a
 * PermanentError (retrying cannot help); a failed send is a TransientError for 408, 429, 5xx and no
 * answer at all (the queue retries it, then moves it to `notifications-poison`), a PermanentError for
 * any other 4xx. Error messages are redacted. `beforeSend` runs once the message is known good and
 * before anything is sent: if it throws, nothing is.
 */
export async function deliver(
  message: unknown,
  channels: Channels,
  beforeSend?: (m: NotificationMessage) => Promise<void>,
): Promise<NotificationMessage> {
  const parsed = notificationMessageSchema.safeParse(parseBody(message));
  if (!parsed.success) {
    throw new MalformedMessageError(
      redact(`malformed notification message:\n${z.prettifyError(parsed.error)}`),
    );
  }
  const m = parsed.data;
  const channel = channels.get(m.channel);
  if (!channel) {
    throw new PermanentError(
      `the ${m.channel} channel is not configured here; notification ${m.notification.id} cannot be delivered`,
    );
  }
  await beforeSend?.(m);
  try {
    await channel.send(m);
  } catch (e) {
    if (e instanceof TransientError || e instanceof PermanentError) throw e;
    const status = statusOf(e);
    const text = `${m.channel} delivery of notification ${m.notification.id} failed${
      status === undefined ? '' : ` (HTTP ${status})`
    }: ${redactError(e)}`;
    throw isTransient(e) ? new TransientError(text, { cause: e }) : new PermanentError(text, { cause: e });
  }
  return m;
}
