import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AzuriteHandle } from '../azurite';
import { RequestCounts, type Faults, type RequestKey } from './faults';

/**
 * A fault point in front of Azurite: one plain-HTTP proxy per Storage service (blob, queue) that
 * forwards every request and applies the local Azure's fault rules first (service `blob` or `queue`).
 * Routes, as rules and counts name them: blob `lease` (comp=lease), `list`, `container`, `blob`;
 * queue `messages` (get, put, update, delete a message), `queue`.
 */
export interface StorageFaultPoint extends AzuriteHandle {
  readonly counts: RequestCounts;
}

function routeOf(service: 'blob' | 'queue', url: URL): string {
  const comp = url.searchParams.get('comp');
  if (service === 'queue') return /\/messages(\/|$)/.test(url.pathname) ? 'messages' : 'queue';
  if (comp === 'lease') return 'lease';
  if (comp === 'list') return 'list';
  if (url.searchParams.get('restype') === 'container') return 'container';
  return 'blob';
}

/** Storage's own error shape: XML body and the x-ms-error-code header. */
function storageError(res: ServerResponse, status: number, retryAfter?: number): void {
  const code = status === 503 ? 'ServerBusy' : status === 500 ? 'InternalError' : `Fault${status}`;
  const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>Injected fault.</Message></Error>`;
  res.writeHead(status, {
    'content-type': 'application/xml',
    'x-ms-error-code': code,
    'content-length': String(Buffer.byteLength(body)),
    ...(retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : {}),
  });
  res.end(body);
}

async function proxyOne(
  service: 'blob' | 'queue',
  target: URL,
  faults: Faults,
  counts: RequestCounts,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const url = new URL(req.url ?? '/', target);
  const method = (req.method ?? 'GET').toUpperCase();
  const key: RequestKey = { service, method, route: routeOf(service, url), path: url.pathname };
  counts.record(key);
  const fault = faults.take(key);
  if (fault?.latencyMs) await sleep(fault.latencyMs);
  if (fault?.drop) return void req.socket.destroy();
  if (fault?.status !== undefined) return storageError(res, fault.status, fault.retryAfterSeconds);

  const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
    const out = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method,
        path: `${url.pathname}${url.search}`,
        headers: req.headers,
      },
      resolve,
    );
    out.once('error', reject);
    out.end(Buffer.concat(chunks));
  });
  const body: Buffer[] = [];
  for await (const chunk of upstream) body.push(chunk as Buffer);
  if (fault?.answerDelayMs) await sleep(fault.answerDelayMs);
  if (fault?.lostAnswer) return void req.socket.destroy();
  res.writeHead(upstream.statusCode ?? 502, upstream.headers);
  res.end(Buffer.concat(body));
}

async function listen(
  service: 'blob' | 'queue',
  targetUrl: string,
  faults: Faults,
  counts: RequestCounts,
): Promise<{ url: string; close(): Promise<void> }> {
  const target = new URL(targetUrl);
  const server = createServer((req, res) => {
    proxyOne(service, target, faults, counts, req, res).catch(() => res.destroy());
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    // Same account path as Azurite's: only the port differs.
    url: `http://127.0.0.1:${port}${target.pathname}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Puts a fault point in front of a running Azurite; its connection string goes through the proxy. */
export async function startStorageFaultPoint(
  azurite: AzuriteHandle,
  faults: Faults,
): Promise<StorageFaultPoint> {
  const counts = new RequestCounts();
  const [blob, queue] = await Promise.all([
    listen('blob', azurite.blobUrl, faults, counts),
    listen('queue', azurite.queueUrl, faults, counts),
  ]);
  return {
    blobUrl: blob.url,
    queueUrl: queue.url,
    connectionString: azurite.connectionString
      .replace(`BlobEndpoint=${azurite.blobUrl};`, `BlobEndpoint=${blob.url};`)
      .replace(`QueueEndpoint=${azurite.queueUrl};`, `QueueEndpoint=${queue.url};`),
    counts,
    stop: async () => {
      await Promise.all([blob.close(), queue.close()]);
    },
  };
}
