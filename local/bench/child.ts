/** Parent side of scan-child.ts: forks the workers, lets them warm up, starts them, collects their answers. */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { BenchEnv } from './fixtures';
import type { ProfileSummary } from './profile';

/** A child that has not answered by then is killed and the bench fails (bounded in time). */
const CHILD_TIMEOUT_MS = 6 * 60_000;

export interface ChildRequest {
  settings: Record<string, string>;
  /** `scan`: the planner over every vault; `naive`: list, then GET each secret (the baseline). */
  mode: 'scan' | 'naive';
  /** Vault scans at once per worker (default: all of its share). */
  concurrency?: number;
  /** Sample memory every 10 ms during the run (peakRss, peakHeapUsed); otherwise only before and after. */
  sampleMemory?: boolean;
  /** Profile the run under this name (.local/{name}.cpuprofile). */
  profile?: string;
  /**
   * `scan` only: scan every vault once before `ready`, untimed, so the timed scan runs on compiled
   * code, as in a worker that has run scans before (the first one compiles the scanner and the SDK).
   */
  warm?: boolean;
}

export interface ChildResult {
  rssBefore: number;
  peakRss: number;
  /** resourceUsage().maxRSS, in bytes: the kernel's high-water mark for the whole process life. */
  maxRss: number;
  peakHeapUsed: number;
  /** heapUsed after a full GC with the scan's summaries still referenced: what the scan keeps. */
  retainedHeap: number;
  heapBefore: number;
  ms: number;
  /** CPU the child used during the run (user + system). */
  cpuMs: number;
  scanned: number;
  optedIn: number;
  due: number;
  listPages: number;
  workItems: number;
  errors: string[];
  profile?: ProfileSummary;
}

interface Worker {
  child: ChildProcess;
  ready: Promise<void>;
  answer: Promise<ChildResult>;
}

function startWorker(env: BenchEnv, request: ChildRequest): Worker {
  const child = fork(path.join(__dirname, 'scan-child.ts'), [], {
    // The child's own loader; not the parent's execArgv, which carries tsx's CLI internals.
    execArgv: ['--import', 'tsx', '--expose-gc'],
    env: { ...process.env, ...env.identityEnv, BENCH_CHILD: JSON.stringify(request) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let ready!: () => void;
  const worker: Worker = {
    child,
    ready: new Promise((resolve) => (ready = resolve)),
    answer: new Promise((resolve, reject) => {
      let answer: ChildResult | undefined;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the scan child did not finish within ${CHILD_TIMEOUT_MS / 1000} s`));
      }, CHILD_TIMEOUT_MS);
      child.on('message', (m) => {
        if (m === 'ready') ready();
        else resolve((answer = m as ChildResult));
      });
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (answer) resolve(answer);
        else reject(new Error(`the scan child exited (${signal ?? code}) without a result`));
      });
    }),
  };
  // A child that dies before it is ready must not leave the parent waiting.
  void worker.answer.catch(() => ready());
  return worker;
}

export interface WorkersResult extends Omit<ChildResult, 'profile'> {
  /** The slowest worker's run (each times its own, from `go`: IPC and process exit are not the scan). */
  wallMs: number;
  /** CPU this process (the emulator) used meanwhile. */
  parentCpuMs: number;
  workers: ChildResult[];
}

/**
 * The vaults in KEY_VAULT_URIS dealt round-robin to `workers` processes, as the fan-out's scan
 * messages are spread over instances; each scans its share. They warm up, then all start at once
 * (after `beforeStart`, e.g. to reset the request counts). `around` wraps the run from the start to
 * the last answer (e.g. the emulator's profile of that window only).
 */
export async function runScanWorkers(
  env: BenchEnv,
  request: ChildRequest,
  workers = 1,
  beforeStart: () => void = () => undefined,
  around: (run: () => Promise<ChildResult[]>) => Promise<ChildResult[]> = (run) => run(),
): Promise<WorkersResult> {
  const entries = request.settings.KEY_VAULT_URIS?.split(',') ?? [];
  const shares = Array.from({ length: Math.min(workers, entries.length) }, (_, w) =>
    entries.filter((_, i) => i % workers === w),
  );
  const started = shares.map((share) =>
    startWorker(env, {
      ...request,
      settings: {
        ...request.settings,
        KEY_VAULT_URIS: share.join(','),
        SCAN_CONCURRENCY: String(request.concurrency ?? share.length),
      },
    }),
  );
  await Promise.all(started.map((w) => w.ready));
  beforeStart();
  const cpu = process.cpuUsage();
  const results = await around(() => {
    for (const w of started) if (w.child.connected) w.child.send('go');
    return Promise.all(started.map((w) => w.answer));
  });
  const used = process.cpuUsage(cpu);
  const wallMs = Math.max(...results.map((r) => r.ms));
  const sum = (f: (r: ChildResult) => number) => results.reduce((s, r) => s + f(r), 0);
  const max = (f: (r: ChildResult) => number) => Math.max(...results.map(f));
  return {
    wallMs,
    parentCpuMs: Math.round((used.user + used.system) / 1000),
    workers: results,
    rssBefore: max((r) => r.rssBefore),
    peakRss: max((r) => r.peakRss),
    maxRss: max((r) => r.maxRss),
    peakHeapUsed: max((r) => r.peakHeapUsed),
    retainedHeap: max((r) => r.retainedHeap),
    heapBefore: max((r) => r.heapBefore),
    ms: max((r) => r.ms),
    cpuMs: sum((r) => r.cpuMs),
    scanned: sum((r) => r.scanned),
    optedIn: sum((r) => r.optedIn),
    due: sum((r) => r.due),
    listPages: sum((r) => r.listPages),
    workItems: sum((r) => r.workItems),
    errors: results.flatMap((r) => r.errors),
  };
}
