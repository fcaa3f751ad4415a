/**
 * Part 3: rotations per second through the queue worker, with the host's concurrency against the
 * same number of rotations one at a time. Databricks PATs: each secret's current token creates its
 * successor in one emulated workspace; locks are blob leases on Azurite, as in Azure.
 *
 * Drivers, the first that works: the local Functions host (local/host) polling the rotation queue on
 * Azurite; else the rotateSecret handler called per item; else the engine called per item.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { QueueServiceClient } from '@azure/storage-queue';
import { parseSettings, type Settings } from '../../shared/config';
import { STORAGE } from '../../shared/constants';
import { createServices } from '../../shared/services';
import type { WorkItem } from '../../shared/work';
import type { Vault } from '../azure/state';
import { createVaults, DAY_SECONDS, settingsEnv, version, type BenchEnv } from './fixtures';
import { atMost } from './pool';
import { scanAll } from './scan';

const WORKSPACE = 'bench-ws';
const OWNER = 'bench@contoso.com';
/** Rotations that check a driver works (and warm it) before anything is timed. */
const PROBE = 8;
/** Rotations that warm each new host instance (a fresh copy of the bundle, its own runtime). */
const WARM_PER_HOST = 2;
/** The timed rotations run in this many interleaved rounds per mode. */
const ROUNDS = 4;
/** A batch that has not finished by then fails the bench (bounded in time). */
const BATCH_TIMEOUT_MS = 3 * 60_000;

/** What the Functions host runs at once per instance: batchSize + newBatchThreshold (host.json). */
export function hostConcurrency(): { concurrency: number; batchSize: number; newBatchThreshold: number } {
  const host = JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'host.json'), 'utf8')) as {
    extensions?: { queues?: { batchSize?: number; newBatchThreshold?: number } };
  };
  // The host's defaults when host.json does not say: 16, and half of it.
  const batchSize = host.extensions?.queues?.batchSize ?? 16;
  const newBatchThreshold = host.extensions?.queues?.newBatchThreshold ?? Math.floor(batchSize / 2);
  return { concurrency: batchSize + newBatchThreshold, batchSize, newBatchThreshold };
}

type Status = 'rotated' | 'failed' | 'skipped' | 'other';
type Statuses = Partial<Record<Status, number>>;
type Mode = 'sequential' | 'concurrent';

interface Measured {
  ms: number;
  cpuMicros: number;
  requests: Record<string, number>;
}
/** Wraps the part of a batch that is timed (not a host's start or warm-up). */
type Measure = (work: () => Promise<void>) => Promise<Measured>;

interface Driver {
  name: string;
  /** How many rotations run at once in each mode, in words. */
  concurrency: Record<Mode, string>;
  /** Runs the items one at a time or as the host would; times only them. */
  run(items: WorkItem[], mode: Mode, measure: Measure): Promise<{ measured: Measured; statuses: Statuses }>;
}

const statusOf = (eventName: string | undefined): Status =>
  eventName === 'SecretRotated'
    ? 'rotated'
    : eventName === 'SecretRotationFailed'
      ? 'failed'
      : eventName === 'SecretRotationSkipped'
        ? 'skipped'
        : 'other';

const count = (statuses: Statuses, status: Status) => (statuses[status] = (statuses[status] ?? 0) + 1);

function withTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not finish within ${BATCH_TIMEOUT_MS / 1000} s`)),
      BATCH_TIMEOUT_MS,
    );
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The local Functions host on the real bundle: the work items go on the rotation queue (JSON, base64
 * as host.json says) and the host's queue listener runs them. Each batch gets a host of its own,
 * configured for its mode: host.json as is, or batchSize 1 / newBatchThreshold 0 for one at a time.
 */
async function hostDriver(settings: Record<string, string>, warm: () => WorkItem[]): Promise<Driver> {
  const { LocalFunctionHost } = await import('../host/host');
  const storage = settings.AzureWebJobsStorage as string;
  const queue = QueueServiceClient.fromConnectionString(storage).getQueueClient(STORAGE.rotationQueue);
  await queue.createIfNotExists();
  const { batchSize, newBatchThreshold } = hostConcurrency();

  const run: Driver['run'] = async (items, mode, measure) => {
    const events = new Map<string, string>();
    let statuses: Statuses = {};
    let done = 0;
    let wanted = 0;
    let wake: (() => void) | undefined;
    const host = await LocalFunctionHost.start({
      env: settings,
      // Idle polling is not what is measured: poll often so a batch starts at once.
      minPollingIntervalMs: 10,
      queues: {
        maxPollingIntervalMs: 50,
        ...(mode === 'sequential' ? { batchSize: 1, newBatchThreshold: 0 } : {}),
      },
      onLog: () => undefined,
      onEvent: (e) => {
        if (e.invocationId && e.name.startsWith('Secret')) events.set(e.invocationId, e.name);
      },
      onInvocation: (r) => {
        if (r.functionName !== 'rotateSecret') return;
        count(statuses, r.status === 'failed' ? 'failed' : statusOf(events.get(r.invocationId)));
        if (++done >= wanted) wake?.();
      },
    });
    const through = async (batch: WorkItem[]) => {
      done = 0;
      wanted = batch.length;
      const finished = new Promise<void>((resolve) => (wake = resolve));
      await Promise.all(
        batch.map((item) => queue.sendMessage(Buffer.from(JSON.stringify(item)).toString('base64'))),
      );
      await withTimeout(finished, `the host's ${mode} batch of ${batch.length}`);
    };
    try {
      await through(warm());
      statuses = {};
      // Timed from the first message sent to the last invocation finished.
      const measured = await measure(() => through(items));
      return { measured, statuses };
    } finally {
      await host.stop();
    }
  };
  return {
    name: 'local Functions host (local/host) on the built bundle, rotation queue on Azurite',
    concurrency: {
      sequential: 'host with batchSize 1, newBatchThreshold 0',
      concurrent: `host.json: batchSize ${batchSize}, newBatchThreshold ${newBatchThreshold} (≤ ${batchSize + newBatchThreshold} at once)`,
    },
    run,
  };
}

/** A per-item function run with at most `concurrency` in flight, like the host's queue listener. */
function perItemDriver(name: string, concurrency: number, one: (item: WorkItem) => Promise<Status>): Driver {
  return {
    name,
    concurrency: { sequential: '1', concurrent: `${concurrency} (host.json batchSize + newBatchThreshold)` },
    run: async (items, mode, measure) => {
      const statuses: Statuses = {};
      const measured = await measure(() =>
        atMost(mode === 'sequential' ? 1 : concurrency, items, async (item) =>
          count(statuses, await one(item)),
        ),
      );
      return { measured, statuses };
    },
  };
}

/** The rotateSecret handler called as the host would call it, with a test-mode InvocationContext. */
async function handlerDriver(settings: Record<string, string>, concurrency: number): Promise<Driver> {
  // The handler builds its runtime from process.env on first use, as in the Functions host.
  Object.assign(process.env, settings);
  const { rotateSecret } = await import('../../functions/rotateSecret');
  const { InvocationContext } = await import('@azure/functions');
  return perItemDriver(
    'functions/rotateSecret handler per item (test-mode InvocationContext, no host, no queue)',
    concurrency,
    async (item) => {
      const lines: string[] = [];
      const context = new InvocationContext({
        invocationId: randomUUID(),
        functionName: 'rotateSecret',
        triggerMetadata: { dequeueCount: 1 },
        logHandler: (_level, ...args) => lines.push(args.map(String).join(' ')),
      });
      try {
        await rotateSecret(item, context);
      } catch {
        return 'failed';
      }
      return statusOf(lines.map((l) => /^\[(Secret\w+)\]/.exec(l)?.[1]).find(Boolean));
    },
  );
}

function engineDriver(env: BenchEnv, settings: Settings, concurrency: number): Driver {
  const { engine } = createServices(settings, { credential: env.credential });
  return perItemDriver(
    'RotationEngine.rotate per item (createServices, real clients)',
    concurrency,
    async (item) => {
      const { outcome } = await engine.rotate({ vault: item.vault, secret: item.secret });
      return outcome.status === 'rotated' || outcome.status === 'failed' || outcome.status === 'skipped'
        ? outcome.status
        : 'other';
    },
  );
}

/** The first driver that rotates every probe item; why the others were passed over goes in `notes`. */
async function chooseDriver(
  env: BenchEnv,
  settings: Record<string, string>,
  concurrency: number,
  probe: () => WorkItem[],
  warm: () => WorkItem[],
  notes: string[],
): Promise<Driver> {
  const candidates: [string, () => Promise<Driver>][] = [
    ['local/host', () => hostDriver(settings, warm)],
    ['functions/rotateSecret', () => handlerDriver(settings, concurrency)],
    ['engine', async () => engineDriver(env, parseSettings(settings), concurrency)],
  ];
  for (const [label, create] of candidates) {
    try {
      const driver = await create();
      const { statuses } = await driver.run(probe(), 'concurrent', async (work) => {
        await work();
        return { ms: 0, cpuMicros: 0, requests: {} };
      });
      if (statuses.rotated === PROBE) return driver;
      notes.push(`${label} did not rotate its ${PROBE} probe items: ${JSON.stringify(statuses)}`);
    } catch (e) {
      notes.push(`${label} could not be used: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`no rotation driver works: ${notes.join('; ')}`);
}

/** Secrets with a new version (the rotation stored one), per the emulator's state. */
const rotatedInVault = (vault: Vault): number =>
  [...vault.secrets.values()].filter((versions) => versions.length >= 2).length;

export interface Phase {
  concurrency: string;
  ms: number;
  perSecond: number;
  statuses: Statuses;
  rotatedInVault: number;
  /** CPU of this process per rotation (the worker, the host and local Azure share it; Azurite does not). */
  cpuMsPerRotation: number;
  /** Requests local Azure served per rotation, by service (Azurite's lock and queue requests are not counted). */
  requestsPerRotation: Record<string, number>;
}

/** One mode's totals over its rounds. */
interface Tally extends Measured {
  items: number;
  statuses: Statuses;
}

const newTally = (): Tally => ({ ms: 0, cpuMicros: 0, items: 0, statuses: {}, requests: {} });

async function round(
  env: BenchEnv,
  driver: Driver,
  tally: Tally,
  items: WorkItem[],
  mode: Mode,
): Promise<void> {
  const measure: Measure = async (work) => {
    env.azure.servers.counts.reset();
    const cpu = process.cpuUsage();
    const started = performance.now();
    await work();
    const ms = performance.now() - started;
    const used = process.cpuUsage(cpu);
    const requests: Record<string, number> = {};
    for (const [label, n] of Object.entries(env.azure.servers.counts.snapshot())) {
      const service = label.split(/[ /]/)[0] as string;
      requests[service] = (requests[service] ?? 0) + n;
    }
    return { ms, cpuMicros: used.user + used.system, requests };
  };
  const { measured, statuses } = await driver.run(items, mode, measure);
  tally.ms += measured.ms;
  tally.cpuMicros += measured.cpuMicros;
  tally.items += items.length;
  for (const [status, n] of Object.entries(statuses) as [Status, number][])
    tally.statuses[status] = (tally.statuses[status] ?? 0) + n;
  for (const [service, n] of Object.entries(measured.requests))
    tally.requests[service] = (tally.requests[service] ?? 0) + n;
}

function toPhase(tally: Tally, vault: Vault, concurrency: string): Phase {
  const per = (n: number) => Number((n / tally.items).toFixed(2));
  return {
    concurrency,
    ms: Math.round(tally.ms),
    perSecond: Number(((tally.items * 1000) / tally.ms).toFixed(2)),
    statuses: tally.statuses,
    rotatedInVault: rotatedInVault(vault),
    cpuMsPerRotation: per(tally.cpuMicros / 1000),
    requestsPerRotation: Object.fromEntries(Object.entries(tally.requests).map(([k, n]) => [k, per(n)])),
  };
}

export interface RotationRun {
  kind: 'databricks-pat';
  secrets: number;
  rounds: number;
  driver: string;
  /** Why drivers before the one used were passed over. */
  driverNotes: string[];
  planned: number;
  concurrent: Phase;
  sequential: Phase;
}

export async function benchRotations(
  env: BenchEnv,
  secrets: number,
  concurrency: number,
): Promise<RotationRun> {
  const { azure } = env;
  // Probe items for each driver tried, and warm-up items for each host instance.
  const spare = 3 * PROBE + (2 * ROUNDS + 1) * WARM_PER_HOST;
  const pats = Array.from({ length: spare + 2 * secrets }, () => `dapi${randomBytes(16).toString('hex')}`);
  const [warm, seq, par] = await createVaults(env, ['rot-warm', 'rot-seq', 'rot-par']);
  if (!warm || !seq || !par) throw new Error('rotation vaults were not created');
  const seed = await azure.seed({
    workspaces: [
      {
        name: WORKSPACE,
        principals: [{ userName: OWNER }],
        // One owner holds every bench PAT: lift Databricks' per-user quota (600), which is not measured here.
        maxTokensPerUser: 1_000_000,
        tokens: pats.map((value) => ({ owner: OWNER, value })),
      },
    ],
  });
  const ws = seed.workspaces[WORKSPACE];
  if (!ws) throw new Error('the bench workspace was not seeded');
  const host = new URL(ws.url).host;
  const now = azure.clock.nowSeconds();
  // Due (20 days left, 30-day window) but not below the window, so the planner sends no notices.
  const exp = now + 20 * DAY_SECONDS;
  pats.forEach((value, i) => {
    const vault = i < spare ? warm : i < spare + secrets ? seq : par;
    const tags = {
      'rotation-kind': 'databricks-pat',
      'databricks-host': host,
      'credential-id': ws.tokenIds[i] ?? '',
    };
    vault.secrets.set(`pat-${String(i).padStart(4, '0')}`, [version(value, tags, exp, now)]);
  });

  const settings = {
    ...settingsEnv(env, [warm, seq, par], {
      DATABRICKS_ALLOWED_HOSTS: host,
      // The host resolves the timer's %SCAN_SCHEDULE% when it indexes the functions, as Azure does.
      SCAN_SCHEDULE: '0 0 */6 * * *',
    }),
    ...env.identityEnv,
  };
  const parsed = parseSettings(settings);
  // The work items come from the real planner, as the timer would enqueue them.
  const { vaults } = createServices(parsed, { credential: env.credential });
  const planned = (await scanAll(parsed, vaults, { concurrency: parsed.SCAN_CONCURRENCY })).work.filter(
    (w) => w.op === 'rotate',
  );
  const itemsOf = (vault: Vault) => planned.filter((w) => w.vault === vault.name);
  const spares = itemsOf(warm);
  const take = (n: number) => () => {
    if (spares.length < n) throw new Error('the bench ran out of warm-up secrets');
    return spares.splice(0, n);
  };

  const driverNotes: string[] = [];
  const driver = await chooseDriver(
    env,
    settings,
    concurrency,
    take(PROBE),
    take(WARM_PER_HOST),
    driverNotes,
  );
  // Interleaved rounds, the order flipping each round: the machine's load and anything that grows
  // with the process (tokens, caches, registered secret values) then weigh on both modes alike.
  const seqTally = newTally();
  const parTally = newTally();
  const seqItems = itemsOf(seq);
  const parItems = itemsOf(par);
  const size = Math.ceil(secrets / ROUNDS);
  for (let r = 0; r < ROUNDS; r++) {
    const runSeq = () => round(env, driver, seqTally, seqItems.slice(r * size, (r + 1) * size), 'sequential');
    const runPar = () => round(env, driver, parTally, parItems.slice(r * size, (r + 1) * size), 'concurrent');
    if (r % 2 === 0) {
      await runSeq();
      await runPar();
    } else {
      await runPar();
      await runSeq();
    }
  }
  return {
    kind: 'databricks-pat',
    secrets,
    rounds: ROUNDS,
    driver: driver.name,
    driverNotes,
    planned: planned.length,
    concurrent: toPhase(parTally, par, driver.concurrency.concurrent),
    sequential: toPhase(seqTally, seq, driver.concurrency.sequential),
  };
}
