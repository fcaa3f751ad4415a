import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { ChannelError, postJson, snippet, type Channel } from '../channel';
import { redactDeep } from '../render';

export const SIGNATURE_HEADERS = {
  timestamp: 'x-kv-rotator-timestamp',
  signature: 'x-kv-rotator-signature',
} as const;

/** Receivers should reject deliveries whose timestamp is further than this from their clock (replays). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** `sha256=` + hex HMAC-SHA256 of `{timestamp}.{body}` with the signing key. */
export function sign(body: string, key: string, timestamp: number): string {
  return `sha256=${createHmac('sha256', key).update(`${timestamp}.${body}`).digest('hex')}`;
}

export type VerifyResult =
  | { ok: true; timestamp: number }
  | { ok: false; reason: 'missing-headers' | 'bad-timestamp' | 'stale' | 'mismatch' };

type HeaderBag = Record<string, string | string[] | undefined> | Headers;

function header(headers: HeaderBag, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const bag = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(bag).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : bag[key];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * For receivers: checks a delivery's signature over the exact bytes received (verify before parsing)
 * and that its timestamp is within `toleranceSeconds` of now. Constant-time comparison.
 */
export function verifySignature(
  body: string | Buffer,
  headers: HeaderBag,
  key: string,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
  nowSeconds = Math.floor(Date.now() / 1000),
): VerifyResult {
  const ts = header(headers, SIGNATURE_HEADERS.timestamp);
  const sig = header(headers, SIGNATURE_HEADERS.signature);
  if (!ts || !sig) return { ok: false, reason: 'missing-headers' };
  if (!/^\d{1,12}$/.test(ts)) return { ok: false, reason: 'bad-timestamp' };
  const timestamp = Number(ts);
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return { ok: false, reason: 'stale' };
  const expected = Buffer.from(sign(typeof body === 'string' ? body : body.toString('utf8'), key, timestamp));
  const given = Buffer.from(sig);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: 'mismatch' };
  return { ok: true, timestamp };
}

/**
 * JSON that stays inert wherever a receiver pastes it: `<`, `>`, `&` and the JavaScript line
 * separators are written as \\u escapes (still the same JSON value).
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * POSTs `{notification}` as JSON to WEBHOOK_URL (from settings only), signed with WEBHOOK_SIGNING_KEY.
 * 2xx is success; redirects are not followed (the receiver's URL is configured, not discovered).
 */
export function webhookChannel(url: string, key: string, dispatcher?: Dispatcher): Channel {
  return {
    name: 'webhook',
    async send(message) {
      const body = safeJson({ notification: redactDeep(message.notification) });
      const timestamp = Math.floor(Date.now() / 1000);
      const { status, text } = await postJson(
        'webhook',
        url,
        body,
        {
          [SIGNATURE_HEADERS.timestamp]: String(timestamp),
          [SIGNATURE_HEADERS.signature]: sign(body, key, timestamp),
        },
        dispatcher,
      );
      if (status >= 300 && status < 400) {
        throw new ChannelError(
          'webhook',
          status,
          `the webhook answered HTTP ${status}; redirects are not followed`,
        );
      }
      if (status < 200 || status >= 300) {
        throw new ChannelError('webhook', status, `the webhook answered HTTP ${status}: ${snippet(text)}`);
      }
    },
  };
}
