/**
 * The Event Grid trigger of the local Functions host, answering as the real Event Grid extension does
 * (`/runtime/webhooks/eventgrid?functionName=…&code=…`):
 * - `aeg-event-type`: `SubscriptionValidation` answers the handshake; `Notification` invokes the
 *   function once per event; `Unsubscribe` is acknowledged with 202; missing or unknown is 400.
 * - the `code` query parameter must be the host's Event Grid system key (401 otherwise);
 * - a body over the limit is 413; a body that is not JSON is 400;
 * - a batch entry that is not an object is rejected on its own (logged, not invoked) without failing
 *   the batch; the answer is 200 when every invocation succeeded, 500 otherwise (Event Grid retries).
 * - CloudEvents webhook validation (OPTIONS with `WebHook-Request-Origin`) is answered too.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The extension's request limit (the Functions host refuses larger bodies). */
export const EVENT_GRID_MAX_BODY_BYTES = 1024 * 1024;

export interface EventGridEndpoint {
  /** The host's `eventgrid_extension` system key, required as `code=`. */
  systemKey: string;
  /** Whether an Event Grid function of this name is registered. */
  has(functionName: string): boolean;
  /** Invokes the function with one event; resolves to whether it succeeded. */
  invoke(functionName: string, event: Record<string, unknown>, type: string): Promise<boolean>;
  log(level: 'warning' | 'error', message: string): void;
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

const text = (res: ServerResponse, status: number, body: string): void =>
  void res.writeHead(status, { 'content-type': 'text/plain' }).end(body);

export async function handleEventGridRequest(
  endpoint: EventGridEndpoint,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  if (url.pathname.toLowerCase() !== '/runtime/webhooks/eventgrid') return void res.writeHead(404).end();
  if (url.searchParams.get('code') !== endpoint.systemKey) return text(res, 401, 'Unauthorized');
  if (req.method === 'OPTIONS') {
    const origin = req.headers['webhook-request-origin'];
    res.writeHead(
      200,
      origin ? { 'WebHook-Allowed-Origin': String(origin), 'WebHook-Allowed-Rate': '*' } : {},
    );
    return void res.end();
  }
  if (req.method !== 'POST') return void res.writeHead(405).end();
  const name = url.searchParams.get('functionName') ?? '';
  if (!endpoint.has(name)) return text(res, 404, `No Event Grid function named '${name}'`);
  const type = req.headers['aeg-event-type'];
  if (type === 'Unsubscribe') return void res.writeHead(202).end();
  if (type !== 'Notification' && type !== 'SubscriptionValidation')
    return text(
      res,
      400,
      `The aeg-event-type header must be Notification, SubscriptionValidation or Unsubscribe`,
    );
  const raw = await readBody(req, EVENT_GRID_MAX_BODY_BYTES);
  if (!raw) return text(res, 413, `The request body exceeds ${EVENT_GRID_MAX_BODY_BYTES} bytes`);
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    return text(res, 400, 'The request body is not JSON');
  }
  const entries = Array.isArray(body) ? body : [body];
  const isObject = (e: unknown): e is Record<string, unknown> =>
    e !== null && typeof e === 'object' && !Array.isArray(e);
  if (type === 'SubscriptionValidation') {
    const first = entries[0];
    const data = isObject(first) && isObject(first.data) ? first.data : undefined;
    if (typeof data?.validationCode !== 'string') return text(res, 400, 'No validationCode in the event');
    return void res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ validationResponse: data.validationCode }));
  }
  let failed = 0;
  for (const [i, event] of entries.entries()) {
    if (!isObject(event)) {
      endpoint.log('warning', `Event Grid batch entry ${i} is not an object; it was rejected`);
      continue;
    }
    const eventType = String(event.eventType ?? event.type ?? 'event');
    if (!(await endpoint.invoke(name, event, eventType))) failed++;
  }
  res.writeHead(failed ? 500 : 200).end();
}
