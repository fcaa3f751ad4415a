/**
 * A stand-in for `@azure/functions-core`, the module the Functions host's Node worker injects into the
 * process. `@azure/functions` requires it on the first `app.timer(...)`/`app.storageQueue(...)` call and
 * hands it the programming model and one registration per function; outside the host the require fails
 * and the library switches to "test mode" (nothing is registered). Installing this stand-in before the
 * bundle is required captures every registration exactly as the worker would receive it.
 */
import NodeModule from 'node:module';

/** One binding as `toCoreFunctionMetadata` builds it (`RpcBindingInfo` plus the option fields). */
export interface BindingInfo {
  type: string;
  direction: 'in' | 'out' | 'inout';
  name?: string;
  dataType?: string;
  schedule?: string;
  queueName?: string;
  connection?: string;
  [property: string]: unknown;
}

export interface RpcDuration {
  seconds?: number | Long;
  nanos?: number;
}
type Long = { toNumber(): number };

export interface RetryOptions {
  maxRetryCount?: number;
  retryStrategy?: 'exponentialBackoff' | 'fixedDelay' | string;
  delayInterval?: RpcDuration;
  minimumInterval?: RpcDuration;
  maximumInterval?: RpcDuration;
  [property: string]: unknown;
}

export interface FunctionMetadata {
  name: string;
  bindings: Record<string, BindingInfo>;
  retryOptions?: RetryOptions;
  [property: string]: unknown;
}

export type FunctionHandler = (trigger: unknown, context: unknown) => unknown;

export interface Registration {
  metadata: FunctionMetadata;
  handler: FunctionHandler;
}

/** The worker's `Disposable`: `dispose()` undoes a registration or a hook. */
export class Disposable {
  static from(...items: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => items.forEach((i) => i.dispose()));
  }
  #callOnDispose?: () => unknown;
  constructor(callOnDispose: () => unknown) {
    this.#callOnDispose = callOnDispose;
  }
  dispose(): unknown {
    const call = this.#callOnDispose;
    this.#callOnDispose = undefined;
    return call?.();
  }
}

export type WorkerLog = (level: string, category: string, message: string) => void;

/**
 * The API object `require('@azure/functions-core')` returns. Registration follows the worker's rules:
 * a programming model first, unique function names, and only while the app is starting (loading).
 */
export class FunctionsCoreStandIn {
  readonly registrations: Registration[] = [];
  readonly hooks: { name: string; callback: (...args: unknown[]) => unknown }[] = [];
  programmingModel?: { name?: string; version?: string };
  private starting = true;

  constructor(private readonly onLog: WorkerLog = () => undefined) {}

  /** What the bundle sees as the module's exports. */
  readonly api = {
    Disposable,
    setProgrammingModel: (model: { name?: string; version?: string }): void => {
      this.programmingModel = model;
    },
    getProgrammingModel: (): unknown => {
      if (!this.programmingModel) throw new Error('The programming model has not been set.');
      return this.programmingModel;
    },
    registerFunction: (metadata: FunctionMetadata, handler: FunctionHandler): Disposable => {
      if (!this.starting) throw new Error('A function can only be registered during app startup.');
      if (!this.programmingModel)
        throw new Error('A programming model must be set before registering a function.');
      if (this.registrations.some((r) => r.metadata.name.toLowerCase() === metadata.name.toLowerCase()))
        throw new Error(`A function with name "${metadata.name}" has already been registered.`);
      const registration: Registration = { metadata, handler };
      this.registrations.push(registration);
      return new Disposable(() => {
        const i = this.registrations.indexOf(registration);
        if (i >= 0) this.registrations.splice(i, 1);
      });
    },
    registerHook: (name: string, callback: (...args: unknown[]) => unknown): Disposable => {
      const hook = { name, callback };
      this.hooks.push(hook);
      return new Disposable(() => {
        const i = this.hooks.indexOf(hook);
        if (i >= 0) this.hooks.splice(i, 1);
      });
    },
    log: (level: string, category: string, message: string): void => this.onLog(level, category, message),
  };

  /** The app has started: later registrations are refused, as the worker refuses them. */
  started(): void {
    this.starting = false;
  }
}

export const CORE_MODULE = '@azure/functions-core';

interface ModuleInternals {
  _load(request: string, parent: unknown, isMain: boolean): unknown;
  _resolveFilename(request: string, parent: unknown, isMain: boolean, options?: unknown): string;
  createRequire(filename: string): NodeJS.Require;
}

/**
 * Node's own Module class. Under Jest, `require('node:module')` is a subclass whose static functions
 * are copies, and its `createRequire` loads through Jest's registry; hooks have to go on the real
 * class, and the bundle has to be loaded with the real `createRequire`.
 */
export function nodeModule(): ModuleInternals {
  // Walk up while the parent is a Module class too (Function.prototype differs between Jest's realm
  // and Node's, so it cannot be the stop condition).
  let m = NodeModule as unknown as ModuleInternals;
  for (
    let parent = Object.getPrototypeOf(m) as Partial<ModuleInternals> | null;
    typeof parent?._load === 'function';
    parent = Object.getPrototypeOf(parent) as Partial<ModuleInternals> | null
  )
    m = parent as ModuleInternals;
  return m;
}

/** A plain Node `require` (outside any test runner's sandbox), relative to `filename`. */
export function nativeRequire(filename: string): NodeJS.Require {
  return nodeModule().createRequire(filename);
}

let installed: FunctionsCoreStandIn | undefined;

/**
 * Makes `require('@azure/functions-core')` return the stand-in's API, as the worker does for the
 * process's lifetime. One stand-in at a time; the returned function uninstalls it.
 */
export function installFunctionsCore(core: FunctionsCoreStandIn): () => void {
  if (installed) throw new Error('a @azure/functions-core stand-in is already installed in this process');
  const Module = nodeModule();
  const load = Module._load;
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, parent, isMain, options) {
    return request === CORE_MODULE ? CORE_MODULE : resolve.call(this, request, parent, isMain, options);
  };
  Module._load = function (request, parent, isMain) {
    return request === CORE_MODULE ? core.api : load.call(this, request, parent, isMain);
  };
  installed = core;
  return () => {
    if (installed !== core) return;
    Module._load = load;
    Module._resolveFilename = resolve;
    installed = undefined;
  };
}
