import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureCertificates, type Certificates } from './certs';
import { Faults, RequestCounts, type FaultRule, type RequestKey } from './faults';
import type { KeyVaultThrottle } from './services/keyvault-throttle';
import { EmulatorRequest, EmulatorResponse, HttpError, Router } from './http';
import type { State } from './state';
import type { KeyVaultEventGrid } from './services/eventgrid';
import type { TokenService } from './tokens';

/** The emulator's clock: real time plus an offset that the control API advances. */
export class Clock {
  private offsetMs = 0;
  private readonly listeners: (() => void)[] = [];

  now(): number {
    return Date.now() + this.offsetMs;
  }

  nowSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  advance(ms: number): void {
    this.offsetMs += ms;
    for (const listener of this.listeners) listener();
  }

  reset(): void {
    this.offsetMs = 0;
  }

  onAdvance(listener: () => void): void {
    this.listeners.push(listener);
  }
}

/**
 * The service a request belongs to, as request counts and fault rules name it. The main origin hosts
 * several services (see LocalAzure.url), told apart by path.
 */
function serviceOf(listener: Listener, path: string): string {
  if (listener.service !== 'main') return listener.service;
  if (path.startsWith('/graph/')) return 'graph';
  if (path.startsWith('/sink/')) return 'sink';
  if (path.startsWith('/msi/')) return 'msi';
  if (path.startsWith('/control/')) return 'control';
  if (path.startsWith('/topics/')) return 'eventgrid';
  return 'entra';
}

/** One HTTPS origin: the main one, one per vault, one per workspace, and the Databricks account host. */
export interface Listener {
  service: string;
  instance?: string;
  router: Router;
  server: Server;
  url: string;
}

/** What every emulated service gets to work with. */
export interface Emulator {
  readonly state: State;
  readonly clock: Clock;
  readonly tokens: TokenService;
  /** `https://localhost:{port}` of the main origin (Entra, managed identity, Graph, sink, control). */
  readonly url: string;
  /** The vaults' Event Grid system topics. */
  readonly events: KeyVaultEventGrid;
  /** Key Vault's transaction limits, shared by every vault (one subscription). */
  readonly keyVaultThrottle: KeyVaultThrottle;
}

export interface LocalAzureOptions {
  /** Port of the main origin; 0 (default) picks a free one. */
  port?: number;
  host?: string;
  certs?: Certificates;
}

/**
 * The local Azure: one process, many HTTPS origins sharing one certificate. It counts every request
 * per route and applies injected faults before the route's handler runs.
 */
export class LocalServers {
  readonly faults = new Faults();
  readonly counts = new RequestCounts();
  private readonly listeners: Listener[] = [];
  private readonly certs: Certificates;
  private readonly host: string;

  constructor(options: LocalAzureOptions = {}) {
    this.certs = options.certs ?? ensureCertificates();
    this.host = options.host ?? '127.0.0.1';
  }

  async listen(
    service: string,
    router: Router,
    options: { instance?: string; port?: number } = {},
  ): Promise<Listener> {
    const server = createServer({ cert: this.certs.certPem, key: this.certs.keyPem });
    const listener: Listener = { service, instance: options.instance, router, server, url: '' };
    // A client that aborts mid-body rejects the body read; drop that request instead of crashing the process.
    server.on('request', (req, res) => void this.dispatch(listener, req, res).catch(() => res.destroy()));
    // Keep-alive sockets would hold the process open after stop(); close them with the server.
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, this.host, () => resolve());
    });
    listener.url = `https://localhost:${(server.address() as AddressInfo).port}`;
    this.listeners.push(listener);
    return listener;
  }

  async close(listener: Listener): Promise<void> {
    const index = this.listeners.indexOf(listener);
    if (index < 0) return;
    this.listeners.splice(index, 1);
    await new Promise<void>((resolve) => {
      listener.server.close(() => resolve());
      listener.server.closeAllConnections();
    });
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.listeners].map((l) => this.close(l)));
  }

  private async dispatch(listener: Listener, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', listener.url);
    const method = (req.method ?? 'GET').toUpperCase();
    const match = listener.router.match(method, url.pathname);
    const route = typeof match === 'object' ? match.template : '(unmatched)';
    const key: RequestKey = {
      service: serviceOf(listener, url.pathname),
      instance: listener.instance,
      method,
      route,
      path: url.pathname,
    };
    // The control API is not counted nor faulted: tests use it to read counts and set faults.
    const isControl = url.pathname.startsWith('/control/');
    if (!isControl) this.counts.record(key);

    const fault = isControl ? undefined : this.faults.take(key);
    if (fault?.latencyMs) {
      const slept = performance.now();
      await sleep(fault.latencyMs);
      this.counts.recordHeld(key, performance.now() - slept);
    }
    if (fault?.drop) {
      req.socket.destroy();
      return;
    }
    if (fault?.status !== undefined) {
      const headers = { ...fault.headers };
      if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
      this.send(res, { status: fault.status, headers, body: fault.body ?? '' });
      return;
    }

    const request: EmulatorRequest = {
      method,
      path: url.pathname,
      // URLSearchParams decodes the SDK's `api%2Dversion` to `api-version`, so both spellings read the same.
      query: url.searchParams,
      headers: req.headers,
      body: Buffer.concat(chunks),
      params: typeof match === 'object' ? match.params : {},
      origin: listener.url,
    };
    try {
      if (match === undefined)
        throw new HttpError(404, { error: { code: 'NotFound', message: `No route for ${url.pathname}` } });
      if (match === 'method-not-allowed') {
        throw new HttpError(405, {
          error: { code: 'MethodNotAllowed', message: `${method} is not allowed on ${url.pathname}` },
        });
      }
      const response = await match.handler(request);
      if (await this.answerLost(fault, req)) return;
      this.send(res, response);
    } catch (e) {
      if (await this.answerLost(fault, req)) return;
      if (e instanceof HttpError) {
        if (e.status === 429) this.counts.recordThrottled(key);
        this.send(res, { status: e.status, headers: e.headers, body: e.body });
      } else {
        const message = e instanceof Error ? e.message : String(e);
        console.error(`[local-azure] ${listener.service} ${method} ${url.pathname} failed: ${message}`);
        this.send(res, { status: 500, body: { error: { code: 'InternalServerError', message } } });
      }
    }
  }

  /** Faults that act once the handler has run: the answer is delayed, or lost (connection destroyed). */
  private async answerLost(fault: FaultRule | undefined, req: IncomingMessage): Promise<boolean> {
    if (fault?.answerDelayMs) await sleep(fault.answerDelayMs);
    if (!fault?.lostAnswer) return false;
    req.socket.destroy();
    return true;
  }

  private send(res: ServerResponse, response: EmulatorResponse): void {
    if (res.destroyed) return;
    const headers: Record<string, string> = { ...response.headers };
    let payload: Buffer | undefined;
    if (response.body === undefined || response.body === '') {
      payload = undefined;
    } else if (Buffer.isBuffer(response.body)) {
      payload = response.body;
    } else if (typeof response.body === 'string') {
      payload = Buffer.from(response.body);
      headers['content-type'] ??= 'text/plain; charset=utf-8';
    } else {
      payload = Buffer.from(JSON.stringify(response.body));
      headers['content-type'] ??= 'application/json; charset=utf-8';
    }
    headers['x-ms-request-id'] ??= crypto.randomUUID();
    if (payload) headers['content-length'] = String(payload.length);
    res.writeHead(response.status, headers);
    res.end(payload);
  }
}
