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
import {
  FunctionsCoreStandIn,
  installFunctionsCore,
  nativeRequire,
  type BindingInfo,
  type Registration,
} from './core';
import { handleEventGridRequest, type EventGridEndpoint } from './eventgrid';
import { parseNcrontab, resolveAppSettings, type Schedule } from './ncrontab';
import { QueueTriggers } from './queues';
import { TimerTrigger } from './timer';
import { parseTelemetryLine, type TelemetryEvent } from './telemetry';

const ROOT = path.resolve(__dirname, '..', '..');

export { retryDelayMs } from './waker';

export type LogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical';

export interface HostLogEntry {
  /** `function`: the invocation's logger; `console`: console.* during an invocation; `host`: this runner. */
  category: 'function' | 'console' | 'host';
  level: LogLevel;
  message: string;
  functionName?: string;
  invocationId?: string;
}

/** What every trigger (timer, queues) needs of the host: its functions, an invocation, the log. */
export interface TriggerHost {
  isStopped(): boolean;
  functionsOf(triggerType: string): Registration[];
  invoke(
    registration: Registration,
    kind: InvocationRecord['trigger'],
    reason: string,
    triggerValue: unknown,
    triggerMetadata: Record<string, unknown>,
    retryContext?: Functions.RetryContext,
  ): Promise<InvocationRecord>;
  log(level: LogLevel, message: string): void;
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
  /**
   * How long a received message stays invisible, renewed at half of it while its invocation runs: the
   * real host's fixed 10 minutes (not in host.json). It only shows when an instance dies: its messages
   * come back this long after their last renewal.
   */
  messageLeaseMs: number;
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
  /** Overrides host.json functionTimeout. */
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
      messageLeaseMs: 10 * 60_000,
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
      // A fresh copy of the bundle (main.js and the handlers it requires on the first invocation) and
      // of @azure/functions, whose module state remembers whether it found the core module (it looks once).
      const libDir = path.dirname(req.resolve('@azure/functions/package.json')) + path.sep;
      const bundleDir = path.dirname(bundle) + path.sep;
      for (const key of Object.keys(req.cache))
        if (key.startsWith(bundleDir) || key.startsWith(libDir)) delete req.cache[key];
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
  private readonly running = new Set<Promise<unknown>>();
  private readonly current = new AsyncLocalStorage<{ functionName: string; invocationId: string }>();
  private stoppedFlag = false;
  private readonly timers: TimerTrigger;
  private readonly queues: QueueTriggers;
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
    const host = {
      isStopped: () => this.stoppedFlag,
      schedules: this.schedules,
      settings,
      env,
      minPollingIntervalMs: options.minPollingIntervalMs,
      functionsOf: (type: string) => this.functionsOf(type),
      triggerOf: (r: Registration) => this.triggerOf(r),
      invoke: (...args: Parameters<LocalFunctionHost['invokeOnce']>) => this.invoke(...args),
      track: (work: Promise<unknown>) => this.track(work),
      log: (level: LogLevel, message: string) => this.log(level, message),
    };
    this.timers = new TimerTrigger(host);
    this.queues = new QueueTriggers(host);
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
      if (options.listen !== false) host.queues.listen();
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
    this.track(work);
    return work;
  }

  private track(work: Promise<unknown>): void {
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
  }

  // ---- timer (local/host/timer.ts) ---------------------------------------------------------------

  /** Fires the timer function(s) now, as the schedule would (see TimerTrigger.tick). */
  tick(functionName?: string): Promise<InvocationRecord[]> {
    return this.timers.tick(functionName);
  }

  /** Ticks every `intervalMs`, or on the NCRONTAB schedule; stop() ends it. */
  startTimerLoop(intervalMs?: number): void {
    this.timers.startTimerLoop(intervalMs);
  }

  /** When the next scheduled tick is due (for people). */
  nextScheduled(functionName?: string): Date | undefined {
    return this.timers.nextScheduled(functionName);
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
      const client = await this.queues.queueClient(binding, true);
      for (const item of items) await client.sendMessage(this.queues.encode(item));
      written[queueName] = (written[queueName] ?? 0) + items.length;
      // The host notices its own writes at once instead of waiting for the next poll.
      this.queues.wake(queueName);
    }
    return written;
  }

  // ---- Event Grid (local/host/eventgrid.ts) -------------------------------------------------------------------------------

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
      const visible = await this.queues.anyVisible();
      quiet = visible || this.running.size > 0 || this.queues.receiving > 0 ? 0 : quiet + 1;
      await sleep(visible ? 50 : 100);
    }
  }

  /** Stops the timer loop, the Event Grid webhook and the queue pollers; waits for running invocations. */
  async stop(): Promise<void> {
    if (this.stoppedFlag) return;
    this.stoppedFlag = true;
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await Promise.allSettled([this.timers.stop(), this.queues.stop()]);
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    for (const cleanup of this.cleanups.reverse()) cleanup();
    this.cleanups = [];
  }
}

/** As the library reads a string trigger: JSON when it parses, the string otherwise. */

function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
