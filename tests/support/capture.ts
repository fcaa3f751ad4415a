import diagnostics from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import type { LocalAzure } from '../../local/azure';

/**
 * Captures of what a test run printed and where it sent requests, to prove that no secret value
 * reaches any output and that no request reaches a host it must not.
 */

const CONSOLE_METHODS = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;

export interface OutputCapture {
  /** Every console call (arguments formatted as console would) and every stdout/stderr write. */
  readonly lines: string[];
  /** Stops capturing and restores console and the streams. */
  stop(): void;
}

const text = (chunk: unknown): string =>
  typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);

/**
 * Records console.* calls and process.stdout/stderr writes. Recorded output is not printed (a value
 * that leaked must not end up in the CI log either); pass `passThrough` to print it too.
 */
export function captureOutput(options: { passThrough?: boolean } = {}): OutputCapture {
  const lines: string[] = [];
  const restore: (() => void)[] = [];
  for (const method of CONSOLE_METHODS) {
    const original = console[method];
    console[method] = (...args: unknown[]) => {
      lines.push(args.map((a) => (typeof a === 'string' ? a : safeJson(a))).join(' '));
      if (options.passThrough) original.apply(console, args);
    };
    restore.push(() => (console[method] = original));
  }
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      lines.push(text(chunk));
      return options.passThrough
        ? (original as (...a: unknown[]) => boolean).call(stream, chunk, ...rest)
        : true;
    }) as typeof stream.write;
    restore.push(() => (stream.write = original));
  }
  return {
    lines,
    stop: () => {
      for (const r of restore.splice(0).reverse()) r();
    },
  };
}

function safeJson(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}\n${value.stack ?? ''}`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export interface OutgoingRequest {
  client: 'undici' | 'http';
  method: string;
  /** `scheme://host[:port]` as the request was addressed. */
  origin: string;
  path: string;
}

export interface RequestCapture {
  readonly requests: OutgoingRequest[];
  stop(): void;
}

/**
 * Every HTTP request this process starts, seen through Node's diagnostics channels: undici's (the
 * Databricks client, fetch) and node:http's (the Azure SDKs). It observes only; nothing is changed.
 * Unlike the emulator's request counts it also sees requests to hosts the emulator does not serve.
 */
export function captureRequests(): RequestCapture {
  const requests: OutgoingRequest[] = [];
  const onUndici = (message: unknown) => {
    const { request } = message as { request: { origin: unknown; method: string; path: string } };
    requests.push({
      client: 'undici',
      method: request.method,
      origin: String(request.origin),
      path: request.path,
    });
  };
  const onHttp = (message: unknown) => {
    const { request } = message as { request: ClientRequest };
    const host = request.getHeader('host') ?? request.host;
    requests.push({
      client: 'http',
      method: request.method,
      origin: `${request.protocol}//${host}`,
      path: request.path,
    });
  };
  diagnostics.subscribe('undici:request:create', onUndici);
  diagnostics.subscribe('http.client.request.start', onHttp);
  return {
    requests,
    stop: () => {
      diagnostics.unsubscribe('undici:request:create', onUndici);
      diagnostics.unsubscribe('http.client.request.start', onHttp);
    },
  };
}

/** A value that must never be printed, with where it came from (the description holds no value). */
export interface KnownValue {
  value: string;
  source: string;
}

/** Every value stored in any vault of this local Azure, deleted ones included, all versions. */
export function vaultValues(azure: LocalAzure): KnownValue[] {
  const out: KnownValue[] = [];
  for (const vault of azure.state.vaults.values()) {
    for (const [name, versions] of vault.secrets)
      for (const v of versions) out.push({ value: v.value, source: `${vault.name}/${name}/${v.version}` });
    for (const [name, deleted] of vault.deleted)
      for (const v of deleted.versions)
        out.push({ value: v.value, source: `${vault.name}/${name}/${v.version} (deleted)` });
  }
  return out;
}

/**
 * Credential shapes this service handles (as the emulator and the real services issue them): a
 * value of any of these shapes in an output is a leak even if the test never learned the value
 * (e.g. a new credential that was revoked before it reached the vault).
 */
export const CREDENTIAL_SHAPES = {
  databricksPat: /dapi[0-9a-f]{32}/i,
  databricksSpSecret: /dose[0-9a-f]{32}/i,
  entraClientSecret: /[A-Za-z0-9_.-]{3}\d[Qq]~[A-Za-z0-9_.~-]{30,}/,
  jwt: /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}/,
} as const;

export interface Leak {
  /** Which output: e.g. `log line 12`, `notification 3`. */
  where: string;
  /** Which value (its source) or which shape; never the value itself. */
  what: string;
}

/**
 * The known values and credential-shaped strings found in the outputs. Values shorter than 8
 * characters are ignored (they would match ordinary words; no credential here is that short).
 */
export function findLeaks(outputs: { where: string; text: string }[], known: readonly KnownValue[]): Leak[] {
  const leaks: Leak[] = [];
  const values = known.filter((k) => k.value.length >= 8);
  for (const { where, text: t } of outputs) {
    for (const k of values) if (t.includes(k.value)) leaks.push({ where, what: k.source });
    for (const [shape, pattern] of Object.entries(CREDENTIAL_SHAPES))
      if (pattern.test(t)) leaks.push({ where, what: `something shaped like a ${shape}` });
  }
  return leaks;
}
