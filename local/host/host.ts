/**
 * A local stand-in for the Azure Functions host, for machines without Core Tools: it loads the same
 * bundle the real host loads (package.json `main`, built by local/build.mjs), captures the functions it
 * registers through a `@azure/functions-core` stand-in, and drives them as the host's triggers do:
 * timer ticks, an Event Grid webhook, queue polling with host.json's retry and poison rules, and queue
 * output bindings written after each successful invocation.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { format, promisify } from 'node:util';
import type * as Functions from '@azure/functions';
import { DefaultAzureCredential } from '@azure/identity';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import {
  FunctionsCoreStandIn,
  installFunctionsCore,
  nativeRequire,
  type BindingInfo,
  type Registration,
  type RetryOptions,
  type RpcDuration,
} from './core';
import { handleEventGridRequest, type EventGridEndpoint } from './eventgrid';
import { nextOccurrence, parseNcrontab, resolveAppSettings, type Schedule } from './ncrontab';
import { parseTelemetryLine, type TelemetryEvent } from './telemetry';

const ROOT = path.resolve(__dirname, '..', '..');

export type LogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical';

export interface HostLogEntry {
  /** `function`: the invocation's logger; `console`: console.* during an invocation; `host`: this runner. */
  category: 'function' | 'console' | 'host';
  level: LogLevel;
  message: string;
  functionName?: string;
  invocationId?: string;
}

export interface InvocationRecord {
  functionName: string;
  invocationId: string;
  trigger: 'timer' | 'eventGrid' | 'queue';
  /** Why the host invoked it, in the host's words (`Timer fired`, `New queue message detected on 'x'`). */
  reason: string;
  status: 'succeeded' | 'failed';
  error?: string;
  durationMs: number;
  /** Messages written per output queue. */
  outputs: Record<string, number>;
}

/** host.json `extensions.queues`, with the host's defaults. */
export interface QueueSettings {
  batchSize: number;
  newBatchThreshold: number;
  maxDequeueCount: number;
  /** Delay before a message whose invocation failed becomes visible again. */
  visibilityTimeoutMs: number;
  maxPollingIntervalMs: number;
  messageEncoding: 'base64' | 'none';
}

export interface HostSettings {
  queues: QueueSettings;
  functionTimeoutMs: number;
}

export interface LocalFunctionHostOptions {
  /** The project root (package.json, host.json, local/build.mjs); defaults to this repository. */
  root?: string;
  /** `always` rebuilds, `auto` rebuilds when a source is newer than the bundle, `never` uses what is there. */
  build?: 'always' | 'auto' | 'never';
  /** App settings, applied to the process environment before the bundle loads (restored on stop). */
  env?: Record<string, string | undefined>;
  /** Port of the Event Grid webhook on 127.0.0.1; 0 (default) picks a free one. */
  eventGridPort?: number;
  /** Fastest queue poll when idle (the host backs off from here up to host.json maxPollingInterval). */
  minPollingIntervalMs?: number;
  /** Start polling the trigger queues at once (default true). */
  listen?: boolean;
  /** Overrides of host.json `extensions.queues` (tests shorten the retry delay). */
  queues?: Partial<QueueSettings>;
  /** Overrides host.json functionTimeout (also how long a received message stays invisible). */
  functionTimeoutMs?: number;
  onLog?(entry: HostLogEntry): void;
  onEvent?(event: TelemetryEvent): void;
  onInvocation?(record: InvocationRecord): void;
}

/** `hh:mm:ss` (optionally `d.hh:mm:ss`) TimeSpan text, as host.json writes durations. */
export function parseTimeSpan(text: string | undefined, fallbackMs: number): number {
  if (text === undefined) return fallbackMs;
  const m = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(text.trim());
  if (!m) throw new Error(`host.json: "${text}" is not a TimeSpan (hh:mm:ss)`);
  const [, d = '0', h = '0', min = '0', s = '0', frac = '0'] = m;
  return (
    ((Number(d) * 24 + Number(h)) * 60 + Number(min)) * 60_000 +
    Number(s) * 1000 +
    Math.round(Number(`0.${frac}`) * 1000)
  );
}

export function readHostJson(root: string): HostSettings {
  const json = JSON.parse(readFileSync(path.join(root, 'host.json'), 'utf8')) as {
    functionTimeout?: string;
    extensions?: { queues?: Record<string, unknown> };
  };
  const q = json.extensions?.queues ?? {};
  const num = (key: string, fallback: number) => (typeof q[key] === 'number' ? (q[key] as number) : fallback);
  const str = (key: string) => (typeof q[key] === 'string' ? (q[key] as string) : undefined);
  return {
    queues: {
      batchSize: num('batchSize', 16),
      newBatchThreshold: num('newBatchThreshold', Math.floor(num('batchSize', 16) / 2)),
      maxDequeueCount: num('maxDequeueCount', 5),
      visibilityTimeoutMs: parseTimeSpan(str('visibilityTimeout'), 0),
      maxPollingIntervalMs: parseTimeSpan(str('maxPollingInterval'), 60_000),
      messageEncoding: str('messageEncoding') === 'none' ? 'none' : 'base64',
    },
    functionTimeoutMs: parseTimeSpan(json.functionTimeout, 30 * 60_000),
  };
}

const run = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The newest modification time under `dir` (TypeScript and build inputs). */
function newestSource(dir: string): number {
  if (!existsSync(dir)) return 0;
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (/\.(ts|mjs|json)$/.test(entry.name)) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * Serialises build-and-load across processes (test files run in parallel workers and all load
 * dist/main.js): esbuild does not write atomically, so a reader could see half a bundle.
 */
async function withBuildLock<T>(root: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(root, '.local', 'build.lock');
  mkdirSync(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock left by a killed process is stale after two minutes.
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 120_000)
        rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`could not take ${lock} within 2 minutes`);
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function durationMs(d: RpcDuration | undefined): number {
  if (!d) return 0;
  const seconds = typeof d.seconds === 'object' ? d.seconds.toNumber() : (d.seconds ?? 0);
  return seconds * 1000 + Math.round((d.nanos ?? 0) / 1e6);
}

/** The host's delay before retry number `retry` (0-based) of a failed invocation. */
export function retryDelayMs(options: RetryOptions, retry: number): number {
  if (options.retryStrategy === 'fixedDelay') return durationMs(options.delayInterval);
  const min = durationMs(options.minimumInterval);
  const max = durationMs(options.maximumInterval) || Number.MAX_SAFE_INTEGER;
  return Math.min(max, min * 2 ** retry);
}

/** A sleep that `wake()` ends early; a wake while not sleeping ends the next sleep at once. */
class Waker {
  private wakeUp?: () => void;
  private pending = false;

  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.pending = true;
  }
}

interface QueueListener {
  registration: Registration;
  queueName: string;
  client: QueueClient;
  waker: Waker;
  inFlight: number;
  loop?: Promise<void>;
}

export interface LoadedFunctionApp {
  /** The stand-in the bundle registered with: `registrations`, `programmingModel`. */
  core: FunctionsCoreStandIn;
  /** The copy of @azure/functions the bundle uses (its InvocationContext). */
  lib: typeof Functions;
  /** The bundle's path (package.json `main`). */
  bundle: string;
  /** Uninstalls the core stand-in. */
  unload(): void;
}

/**
 * Builds the bundle package.json `main` names (always, when a source is newer, or never) and loads it
 * with the `@azure/functions-core` stand-in installed, as the host's worker would load it.
 */
export async function loadFunctionApp(
  options: {
    root?: string;
    build?: LocalFunctionHostOptions['build'];
    log?: (level: LogLevel, message: string) => void;
  } = {},
): Promise<LoadedFunctionApp> {
  const root = options.root ?? ROOT;
  const log = options.log ?? (() => undefined);
  const core = new FunctionsCoreStandIn((level, category, message) =>
    log(/error|critical/i.test(level) ? 'error' : 'debug', `[${category}] ${message}`),
  );
  let uninstall: (() => void) | undefined;
  try {
    return await withBuildLock(root, async () => {
      const main = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { main: string })
        .main;
      const bundle = path.resolve(root, main);
      const mode = options.build ?? 'auto';
      const stale =
        !existsSync(bundle) ||
        Math.max(newestSource(path.join(root, 'functions')), newestSource(path.join(root, 'shared'))) >
          statSync(bundle).mtimeMs;
      if (mode === 'always' || (mode === 'auto' && stale)) {
        log('information', `building ${main} (npm run build)`);
        await run(process.execPath, [path.join(root, 'local', 'build.mjs')], { cwd: root });
      } else if (!existsSync(bundle)) {
        throw new Error(`${main} does not exist; run npm run build`);
      }
      const req = nativeRequire(bundle);
      // A fresh copy of the bundle and of @azure/functions, whose module state remembers whether it
      // found the core module (it looks once).
      const libDir = path.dirname(req.resolve('@azure/functions/package.json')) + path.sep;
      for (const key of Object.keys(req.cache))
        if (key === bundle || key.startsWith(libDir)) delete req.cache[key];
      const remove = installFunctionsCore(core);
      uninstall = remove;
      req(bundle);
      core.started();
      return { core, lib: req('@azure/functions') as typeof Functions, bundle, unload: remove };
    });
  } catch (e) {
    uninstall?.();
    throw e;
  }
}

const LEVELS: Record<string, LogLevel> = {
  log: 'information',
  info: 'information',
  debug: 'debug',
  trace: 'trace',
  warn: 'warning',
  error: 'error',
};

export class LocalFunctionHost {
  readonly registrations: Registration[];
  readonly settings: HostSettings;
  readonly invocations: InvocationRecord[] = [];
  readonly events: TelemetryEvent[] = [];
  readonly logs: HostLogEntry[] = [];
  /** The schedule of each timer function, `%NAME%` resolved and validated. */
  readonly schedules = new Map<string, Schedule>();
  /** Each function's bindings with `%NAME%` resolved (the registrations stay as registered). */
  private readonly resolved = new Map<string, Record<string, BindingInfo>>();

  private server?: Server;
  private readonly listeners: QueueListener[] = [];
  private readonly queueClients = new Map<string, QueueClient>();
  private readonly services = new Map<string, QueueServiceClient>();
  private readonly running = new Set<Promise<unknown>>();
  /** Receive calls under way: their messages are invisible but not yet in `running`. */
  private receiving = 0;
  private readonly current = new AsyncLocalStorage<{ functionName: string; invocationId: string }>();
  private timerLoop?: { waker: Waker; done: Promise<void> };
  private timerChain: Promise<unknown> = Promise.resolve();
  /** Ends a retry delay early when the host stops. */
  private readonly retryWaker = new Waker();
  private stopped = false;
  private cleanups: (() => void)[] = [];
  /** The Event Grid extension's system key (`code=` on the webhook), new for every host. */
  readonly eventGridKey = randomBytes(32).toString('base64url');

  private constructor(
    private readonly options: LocalFunctionHostOptions,
    private readonly lib: typeof Functions,
    core: FunctionsCoreStandIn,
    settings: HostSettings,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.registrations = core.registrations;
    this.settings = settings;
  }

  /**
   * Builds (or reuses) the bundle, loads it with the core stand-in installed, resolves and validates
   * the bindings, opens the Event Grid webhook and starts polling the trigger queues.
   */
  static async start(options: LocalFunctionHostOptions = {}): Promise<LocalFunctionHost> {
    const root = options.root ?? ROOT;
    const fromFile = readHostJson(root);
    const settings = {
      ...fromFile,
      queues: { ...fromFile.queues, ...options.queues },
      functionTimeoutMs: options.functionTimeoutMs ?? fromFile.functionTimeoutMs,
    };
    // The real process, even under a test runner whose `process` is a sandboxed copy: the bundle is
    // loaded with Node's own require and reads this one.
    const proc = nativeRequire(__filename)('node:process') as NodeJS.Process;
    const previousEnv = new Map<string, string | undefined>();
    for (const [k, v] of Object.entries(options.env ?? {})) {
      previousEnv.set(k, proc.env[k]);
      if (v === undefined) delete proc.env[k];
      else proc.env[k] = v;
    }
    const restoreEnv = () => {
      for (const [k, v] of previousEnv) {
        if (v === undefined) delete proc.env[k];
        else proc.env[k] = v;
      }
    };

    let app: LoadedFunctionApp;
    try {
      app = await loadFunctionApp({
        root,
        build: options.build,
        log: (level, message) => LocalFunctionHost.emit(options, [], { category: 'host', level, message }),
      });
    } catch (e) {
      restoreEnv();
      throw e;
    }

    const host = new LocalFunctionHost(options, app.lib, app.core, settings, proc.env);
    host.cleanups.push(app.unload, restoreEnv);
    try {
      host.validate();
      host.interceptConsole();
      await host.listenEventGrid(options.eventGridPort ?? 0);
      if (options.listen !== false) host.listenQueues();
    } catch (e) {
      await host.stop();
      throw e;
    }
    return host;
  }

  private static emit(options: LocalFunctionHostOptions, logs: HostLogEntry[], entry: HostLogEntry): void {
    logs.push(entry);
    options.onLog?.(entry);
  }

  /** Runs a caller's callback outside any invocation, so its own console output is not captured. */
  private outside(fn: () => void): void {
    this.current.exit(fn);
  }

  private log(level: LogLevel, message: string): void {
    this.outside(() => LocalFunctionHost.emit(this.options, this.logs, { category: 'host', level, message }));
  }

  /** The function names by trigger type (`timerTrigger`, `eventGridTrigger`, `queueTrigger`). */
  functionsOf(triggerType: string): Registration[] {
    return this.registrations.filter((r) => this.triggerOf(r)[1].type === triggerType);
  }

  /** The Event Grid webhook URL for a function, the path the host serves. */
  eventGridUrl(functionName?: string): string {
    const name = functionName ?? this.functionsOf('eventGridTrigger')[0]?.metadata.name;
    if (!name) throw new Error('no Event Grid function is registered');
    if (!this.server) throw new Error('the Event Grid webhook is not listening');
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/runtime/webhooks/eventgrid?functionName=${encodeURIComponent(name)}&code=${this.eventGridKey}`;
  }

  /** Resolves `%NAME%` in every binding and checks what the host checks at indexing time. */
  private validate(): void {
    for (const r of this.registrations) {
      const fail = (what: string, e: unknown) =>
        new Error(`Error indexing method 'Functions.${r.metadata.name}': ${what}${(e as Error).message}`, {
          cause: e,
        });
      const bindings: Record<string, BindingInfo> = {};
      for (const [name, binding] of Object.entries(r.metadata.bindings)) {
        const copy: BindingInfo = { ...binding };
        for (const [k, v] of Object.entries(copy)) {
          if (typeof v !== 'string' || !v.includes('%')) continue;
          try {
            copy[k] = resolveAppSettings(v, this.env);
          } catch (e) {
            throw fail('', e);
          }
        }
        bindings[name] = copy;
      }
      this.resolved.set(r.metadata.name, bindings);
      const [, trigger] = this.triggerOf(r);
      if (trigger.type === 'timerTrigger') {
        try {
          this.schedules.set(r.metadata.name, parseNcrontab(String(trigger.schedule)));
        } catch (e) {
          throw fail('the schedule is invalid: ', e);
        }
      } else if (!['eventGridTrigger', 'queueTrigger'].includes(trigger.type)) {
        this.log('warning', `${r.metadata.name}: ${trigger.type} is not driven by the local host`);
      }
    }
  }

  /** A function's bindings, `%NAME%` resolved. */
  private bindingsOf(r: Registration): Record<string, BindingInfo> {
    return this.resolved.get(r.metadata.name) ?? r.metadata.bindings;
  }

  /** The trigger binding: its name and info. */
  private triggerOf(r: Registration): [string, BindingInfo] {
    const found = Object.entries(this.bindingsOf(r)).find(
      ([, b]) => b.direction === 'in' && /Trigger$/i.test(b.type),
    );
    if (!found) throw new Error(`function ${r.metadata.name} has no trigger binding`);
    return found;
  }

  /**
   * The Node worker forwards console output written during an invocation to the host's log, tagged
   * with the invocation; outside an invocation it goes to the console as usual.
   */
  private interceptConsole(): void {
    const console = nativeRequire(__filename)('node:console') as Console;
    for (const method of Object.keys(LEVELS) as (keyof typeof LEVELS & keyof Console)[]) {
      const original = console[method] as (...args: unknown[]) => void;
      (console[method] as unknown) = (...args: unknown[]) => {
        const inv = this.current.getStore();
        if (!inv) return original.apply(console, args);
        this.functionLog(inv, 'console', LEVELS[method] as LogLevel, format(...args));
      };
      this.cleanups.push(() => {
        (console[method] as unknown) = original;
      });
    }
  }

  private functionLog(
    inv: { functionName: string; invocationId: string },
    category: 'function' | 'console',
    level: LogLevel,
    message: string,
  ): void {
    this.outside(() => {
      LocalFunctionHost.emit(this.options, this.logs, { category, level, message, ...inv });
      const event = parseTelemetryLine(message);
      if (event) {
        const e = {
          ...event,
          functionName: inv.functionName,
          invocationId: event.invocationId ?? inv.invocationId,
        };
        this.events.push(e);
        this.options.onEvent?.(e);
      }
    });
  }

  // ---- invocation -------------------------------------------------------------------------------

  private invoke(...args: Parameters<LocalFunctionHost['invokeOnce']>): Promise<InvocationRecord> {
    const work = this.invokeOnce(...args);
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
    return work;
  }

  private async invokeOnce(
    registration: Registration,
    kind: InvocationRecord['trigger'],
    reason: string,
    triggerValue: unknown,
    triggerMetadata: Record<string, unknown>,
    retryContext?: Functions.RetryContext,
  ): Promise<InvocationRecord> {
    const { name } = registration.metadata;
    const invocationId = randomUUID();
    const inv = { functionName: name, invocationId };
    const [triggerName, trigger] = this.triggerOf(registration);
    const outs = Object.entries(this.bindingsOf(registration)).filter(([, b]) => b.direction === 'out');
    const context = new this.lib.InvocationContext({
      invocationId,
      functionName: name,
      triggerMetadata,
      retryContext,
      options: {
        trigger: { ...trigger, name: triggerName } as Functions.FunctionTrigger,
        extraOutputs: outs
          .filter(([n]) => n !== '$return')
          .map(([n, b]) => ({ ...b, name: n }) as Functions.FunctionOutput),
        return: outs.find(([n]) => n === '$return')?.[1] as Functions.FunctionOutput | undefined,
      },
      logHandler: (level, ...args) => this.functionLog(inv, 'function', level as LogLevel, format(...args)),
    });
    this.log('information', `Executing 'Functions.${name}' (Reason='${reason}', Id=${invocationId})`);
    const started = Date.now();
    const record: InvocationRecord = {
      functionName: name,
      invocationId,
      trigger: kind,
      reason,
      status: 'succeeded',
      durationMs: 0,
      outputs: {},
    };
    try {
      const result = await this.current.run(inv, () =>
        withTimeout(
          Promise.resolve().then(() => registration.handler(triggerValue, context)),
          this.settings.functionTimeoutMs,
          `Timeout value of ${this.settings.functionTimeoutMs / 1000} seconds exceeded by function 'Functions.${name}'`,
        ),
      );
      // Outputs are written only when the function succeeded; a failed write fails the invocation.
      record.outputs = await this.writeOutputs(registration, context, result);
    } catch (e) {
      record.status = 'failed';
      record.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    }
    record.durationMs = Date.now() - started;
    this.log(
      record.status === 'failed' ? 'error' : 'information',
      `Executed 'Functions.${name}' (${record.status === 'failed' ? 'Failed' : 'Succeeded'}, Id=${invocationId}, Duration=${record.durationMs}ms)` +
        (record.error ? `: ${record.error}` : ''),
    );
    this.invocations.push(record);
    this.outside(() => this.options.onInvocation?.(record));
    return record;
  }

  /** Every `out` queue binding with a value: one message per array element, JSON, encoded per host.json. */
  private async writeOutputs(
    registration: Registration,
    context: Functions.InvocationContext,
    result: unknown,
  ): Promise<Record<string, number>> {
    const written: Record<string, number> = {};
    for (const [name, binding] of Object.entries(this.bindingsOf(registration))) {
      if (binding.direction !== 'out') continue;
      const value = name === '$return' ? result : context.extraOutputs.get(name);
      if (value === undefined || value === null) continue;
      if (binding.type !== 'queue') {
        this.log(
          'warning',
          `${registration.metadata.name}: output ${name} (${binding.type}) is not written locally`,
        );
        continue;
      }
      const items = Array.isArray(value) ? value : [value];
      if (items.length === 0) continue;
      const queueName = String(binding.queueName);
      const client = await this.queueClient(binding, true);
      for (const item of items) await client.sendMessage(this.encode(item));
      written[queueName] = (written[queueName] ?? 0) + items.length;
      // The host notices its own writes at once instead of waiting for the next poll.
      for (const l of this.listeners) if (l.queueName === queueName) l.waker.wake();
    }
    return written;
  }

  private encode(item: unknown): string {
    const text = Buffer.isBuffer(item)
      ? item
      : Buffer.from(typeof item === 'string' ? item : JSON.stringify(item), 'utf8');
    return this.settings.queues.messageEncoding === 'base64'
      ? text.toString('base64')
      : text.toString('utf8');
  }

  private decode(text: string): string {
    return this.settings.queues.messageEncoding === 'base64'
      ? Buffer.from(text, 'base64').toString('utf8')
      : text;
  }

  private queueService(connection: string): QueueServiceClient {
    let service = this.services.get(connection);
    if (service) return service;
    const setting = this.env[connection] ?? this.env[`AzureWebJobs${connection}`];
    const uri =
      this.env[`${connection}__queueServiceUri`] ??
      (this.env[`${connection}__accountName`]
        ? `https://${this.env[`${connection}__accountName`]}.queue.core.windows.net`
        : undefined);
    if (setting) service = QueueServiceClient.fromConnectionString(setting);
    else if (uri)
      // Identity-based connection, as in Azure: the managed identity (or the developer's az login).
      service = new QueueServiceClient(
        uri,
        new DefaultAzureCredential({ managedIdentityClientId: this.env[`${connection}__clientId`] }),
      );
    else
      throw new Error(
        `Storage account connection string '${connection}' does not exist. Make sure that it is a defined App Setting.`,
      );
    this.services.set(connection, service);
    return service;
  }

  private async queueClient(binding: BindingInfo, create: boolean): Promise<QueueClient> {
    const connection = String(binding.connection || 'AzureWebJobsStorage');
    const key = `${connection}/${String(binding.queueName)}`;
    let client = this.queueClients.get(key);
    if (!client) {
      client = this.queueService(connection).getQueueClient(String(binding.queueName));
      if (create) await client.createIfNotExists();
      this.queueClients.set(key, client);
    }
    return client;
  }

  // ---- timer ------------------------------------------------------------------------------------

  /**
   * Fires the timer function(s) now, as the schedule would, with the registration's retry policy.
   * Ticks never overlap (the host runs a timer function as a singleton).
   */
  tick(functionName?: string): Promise<InvocationRecord[]> {
    const timers = this.functionsOf('timerTrigger').filter(
      (r) => functionName === undefined || r.metadata.name === functionName,
    );
    if (this.stopped) return Promise.reject(new Error('the host has stopped'));
    if (timers.length === 0) throw new Error(`no timer function ${functionName ?? ''} is registered`.trim());
    const next = this.timerChain.then(async () => {
      const records: InvocationRecord[] = [];
      for (const r of timers) records.push(await this.runTimer(r));
      return records;
    });
    this.timerChain = next.catch(() => undefined);
    return next;
  }

  private async runTimer(registration: Registration): Promise<InvocationRecord> {
    const retry = registration.metadata.retryOptions;
    const max = retry?.maxRetryCount ?? 0;
    const schedule = this.schedules.get(registration.metadata.name);
    for (let attempt = 0; ; attempt++) {
      const now = new Date();
      const timer: Functions.Timer = {
        isPastDue: false,
        schedule: { adjustForDST: true },
        scheduleStatus: {
          last: now.toISOString(),
          next: (schedule && nextOccurrence(schedule, now)?.toISOString()) ?? '',
          lastUpdated: now.toISOString(),
        },
      };
      const record = await this.invoke(
        registration,
        'timer',
        attempt === 0 ? 'Timer fired' : `Retry ${attempt} of ${max}`,
        timer,
        {},
        retry ? { retryCount: attempt, maxRetryCount: max } : undefined,
      );
      if (record.status === 'succeeded' || !retry || this.stopped || (max !== -1 && attempt >= max))
        return record;
      const delay = retryDelayMs(retry, attempt);
      this.log('warning', `retrying 'Functions.${registration.metadata.name}' in ${delay / 1000} s`);
      await this.retryWaker.wait(delay);
      if (this.stopped) return record;
    }
  }

  /**
   * Ticks every `intervalMs`, or on each function's own NCRONTAB schedule when no interval is given.
   * Returns when the first wait starts; stop() ends it.
   */
  startTimerLoop(intervalMs?: number): void {
    if (this.timerLoop) throw new Error('the timer loop is already running');
    const waker = new Waker();
    const schedule = [...this.schedules.values()][0];
    const nextDelay = () =>
      intervalMs ??
      Math.max(0, (schedule && nextOccurrence(schedule, new Date())?.getTime()) ?? 0) - Date.now();
    const done = (async () => {
      while (!this.stopped) {
        await waker.wait(nextDelay());
        if (this.stopped) break;
        await this.tick().catch((e: unknown) => this.log('error', `timer tick failed: ${String(e)}`));
      }
    })();
    this.timerLoop = { waker, done };
  }

  /** When the next scheduled tick is due under the NCRONTAB schedule (for people). */
  nextScheduled(functionName?: string): Date | undefined {
    const schedule = functionName ? this.schedules.get(functionName) : [...this.schedules.values()][0];
    return schedule && nextOccurrence(schedule, new Date());
  }

  // ---- Event Grid -------------------------------------------------------------------------------

  private async listenEventGrid(port: number): Promise<void> {
    if (this.functionsOf('eventGridTrigger').length === 0) return;
    const endpoint: EventGridEndpoint = {
      systemKey: this.eventGridKey,
      has: (name) => this.functionsOf('eventGridTrigger').some((r) => r.metadata.name === name),
      invoke: async (name, event, type) => {
        const registration = this.functionsOf('eventGridTrigger').find((r) => r.metadata.name === name);
        if (!registration) return false;
        const record = await this.invoke(
          registration,
          'eventGrid',
          `EventGrid trigger fired (${type})`,
          event,
          {},
        );
        return record.status === 'succeeded';
      },
      log: (level, message) => this.log(level, message),
    };
    const server = createServer((req, res) => {
      void handleEventGridRequest(endpoint, req, res).catch((e: unknown) => {
        this.log('error', `Event Grid request failed: ${String(e)}`);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  // ---- queues -----------------------------------------------------------------------------------

  private listenQueues(): void {
    for (const registration of this.functionsOf('queueTrigger')) {
      const [, trigger] = this.triggerOf(registration);
      const queueName = String(trigger.queueName);
      const listener: QueueListener = {
        registration,
        queueName,
        client: this.queueService(String(trigger.connection || 'AzureWebJobsStorage')).getQueueClient(
          queueName,
        ),
        waker: new Waker(),
        inFlight: 0,
      };
      listener.loop = this.poll(listener);
      this.listeners.push(listener);
    }
  }

  /**
   * The host's queue listener: fetch a batch, process it concurrently, fetch the next when the number
   * in flight falls to newBatchThreshold; when the queue is empty, back off up to maxPollingInterval.
   */
  private async poll(l: QueueListener): Promise<void> {
    const q = this.settings.queues;
    const minDelay = this.options.minPollingIntervalMs ?? 100;
    let delay = minDelay;
    let created = false;
    while (!this.stopped) {
      let received = 0;
      try {
        if (!created) {
          await l.client.createIfNotExists();
          created = true;
        }
        if (l.inFlight <= q.newBatchThreshold) {
          // Invisible while it is processed; on failure it is made visible again after visibilityTimeout.
          this.receiving++;
          try {
            const batch = await l.client.receiveMessages({
              numberOfMessages: q.batchSize,
              visibilityTimeout: Math.ceil(this.settings.functionTimeoutMs / 1000),
            });
            received = batch.receivedMessageItems.length;
            for (const message of batch.receivedMessageItems) {
              l.inFlight++;
              const work = this.process(l, message).finally(() => {
                l.inFlight--;
                l.waker.wake();
              });
              this.running.add(work);
              void work.finally(() => this.running.delete(work));
            }
          } finally {
            // Only now: until the messages are in `running`, drain() must not call the queue idle.
            this.receiving--;
          }
        }
      } catch (e) {
        if (this.stopped) break;
        this.log(
          'error',
          `polling queue '${l.queueName}' failed: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
      if (this.stopped) break;
      const full = l.inFlight > q.newBatchThreshold;
      if (received > 0) delay = minDelay;
      else if (!full) delay = Math.min(delay * 2, q.maxPollingIntervalMs);
      // A full batch waits for a completion (which wakes it); a productive poll goes again at once.
      await l.waker.wait(full ? q.maxPollingIntervalMs : received > 0 ? 0 : delay);
    }
  }

  private async process(
    l: QueueListener,
    message: {
      messageId: string;
      popReceipt: string;
      messageText: string;
      dequeueCount: number;
      insertedOn: Date;
      expiresOn: Date;
      nextVisibleOn: Date;
    },
  ): Promise<void> {
    const q = this.settings.queues;
    if (message.dequeueCount > q.maxDequeueCount) {
      await this.poison(l, message);
      return;
    }
    const text = this.decode(message.messageText);
    const record = await this.invoke(
      l.registration,
      'queue',
      `New queue message detected on '${l.queueName}'.`,
      tryJsonParse(text),
      {
        id: message.messageId,
        queueTrigger: text,
        dequeueCount: message.dequeueCount,
        insertionTime: message.insertedOn.toISOString(),
        expirationTime: message.expiresOn.toISOString(),
        nextVisibleTime: message.nextVisibleOn.toISOString(),
        popReceipt: message.popReceipt,
      },
    );
    try {
      if (record.status === 'succeeded') {
        await l.client.deleteMessage(message.messageId, message.popReceipt);
      } else if (message.dequeueCount >= q.maxDequeueCount) {
        await this.poison(l, message);
      } else {
        await l.client.updateMessage(
          message.messageId,
          message.popReceipt,
          undefined,
          Math.ceil(q.visibilityTimeoutMs / 1000),
        );
      }
    } catch (e) {
      this.log('error', `completing message ${message.messageId} on '${l.queueName}' failed: ${String(e)}`);
    }
  }

  private async poison(
    l: QueueListener,
    message: { messageId: string; popReceipt: string; messageText: string },
  ): Promise<void> {
    const poisonName = `${l.queueName}-poison`;
    this.log(
      'warning',
      `Message has reached MaxDequeueCount of ${this.settings.queues.maxDequeueCount}. Moving message to queue '${poisonName}'.`,
    );
    const [, trigger] = this.triggerOf(l.registration);
    const poison = await this.queueClient({ ...trigger, queueName: poisonName }, true);
    await poison.sendMessage(message.messageText);
    await l.client.deleteMessage(message.messageId, message.popReceipt);
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  /** Invocations under way (timer, Event Grid, queue). */
  get busy(): number {
    return this.running.size;
  }

  /**
   * Resolves once no trigger queue has a visible message and no invocation is running, twice in a row
   * (a message written by the last invocation is seen by the second look). Messages waiting out a
   * visibility timeout after a failure do not count.
   */
  async drain(options: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 300_000);
    let quiet = 0;
    while (quiet < 2) {
      if (Date.now() > deadline) throw new Error('the queues did not drain in time');
      while (this.running.size > 0) await Promise.allSettled([...this.running]);
      let visible = false;
      for (const l of this.listeners) {
        const peek = await l.client.peekMessages({ numberOfMessages: 1 }).catch(() => undefined);
        if (peek && peek.peekedMessageItems.length > 0) {
          visible = true;
          l.waker.wake();
        }
      }
      quiet = visible || this.running.size > 0 || this.receiving > 0 ? 0 : quiet + 1;
      await sleep(visible ? 50 : 100);
    }
  }

  /** Stops the timer loop, the Event Grid webhook and the queue pollers; waits for running invocations. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timerLoop?.waker.wake();
    this.retryWaker.wake();
    for (const l of this.listeners) l.waker.wake();
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await Promise.allSettled([this.timerLoop?.done, ...this.listeners.map((l) => l.loop)]);
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    for (const cleanup of this.cleanups.reverse()) cleanup();
    this.cleanups = [];
  }
}

/** As the library reads a string trigger: JSON when it parses, the string otherwise. */
function tryJsonParse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
