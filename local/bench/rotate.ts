/**
 * Part 3: rotations per second through the queue worker's code, with the host's concurrency against
 * the same number of rotations one at a time. Databricks PATs: each secret's current token creates
 * its successor in one emulated workspace; locks are blob leases on Azurite, as in Azure.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseSettings, type Settings } from '../../shared/config';
import { createServices } from '../../shared/services';
import type { WorkItem } from '../../shared/work';
import type { Vault } from '../azure/state';
import { createVaults, DAY_SECONDS, settingsEnv, version, type BenchEnv } from './fixtures';
import { scannerFor } from './scan';

const WORKSPACE = 'bench-ws';
const OWNER = 'bench@contoso.com';
/** Rotations before the timed runs: tokens, TLS sessions, the lock container, JIT. */
const WARM_UP = 8;
const WARM_UP_CONCURRENCY = 4;
/** The timed rotations run in this many interleaved rounds per mode. */
const ROUNDS = 4;

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

interface Driver {
  name: string;
  note?: string;
  run(item: WorkItem): Promise<Status>;
}

/**
 * The queue worker's handler (functions/rotateSecret.ts) called as the host would, with a test-mode
 * InvocationContext; if it cannot be loaded, the engine it calls, per item.
 */
async function loadDriver(
  env: BenchEnv,
  settings: Record<string, string>,
  parsed: Settings,
): Promise<Driver> {
  try {
    // The handler builds its runtime from process.env on first use, like in the Functions host.
    Object.assign(process.env, settings);
    const { rotateSecret } = await import('../../functions/rotateSecret');
    const { InvocationContext } = await import('@azure/functions');
    return {
      name: 'functions/rotateSecret handler (test-mode InvocationContext, no host, no queue)',
      run: async (item) => {
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
        if (lines.some((l) => l.startsWith('[SecretRotated]'))) return 'rotated';
        if (lines.some((l) => l.startsWith('[SecretRotationFailed]'))) return 'failed';
        if (lines.some((l) => l.startsWith('[SecretRotationSkipped]'))) return 'skipped';
        return 'other';
      },
    };
  } catch (e) {
    const { engine } = createServices(parsed, { credential: env.credential });
    return {
      name: 'RotationEngine.rotate per work item (createServices, real clients)',
      note: `functions/rotateSecret could not be loaded: ${(e as Error).message.split('\n')[0]}`,
      run: async (item) => {
        const { outcome } = await engine.rotate({ vault: item.vault, secret: item.secret });
        return outcome.status === 'rotated' || outcome.status === 'failed' || outcome.status === 'skipped'
          ? outcome.status
          : 'other';
      },
    };
  }
}

/** Runs the items with at most `concurrency` in flight, like the host's queue listener. */
async function pool(
  items: readonly WorkItem[],
  concurrency: number,
  run: Driver['run'],
): Promise<{ ms: number; statuses: Partial<Record<Status, number>> }> {
  const statuses: Partial<Record<Status, number>> = {};
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const status = await run(items[next++] as WorkItem);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }),
  );
  return { ms: performance.now() - started, statuses };
}

/** Secrets with a new version (the rotation stored one), per the emulator's state. */
const rotatedInVault = (vault: Vault): number =>
  [...vault.secrets.values()].filter((versions) => versions.length >= 2).length;

export interface Phase {
  ms: number;
  perSecond: number;
  statuses: Partial<Record<Status, number>>;
  rotatedInVault: number;
  /** CPU of this process (the worker and local Azure share it) per rotation; Azurite is not in it. */
  cpuMsPerRotation: number;
  /** Requests local Azure served per rotation, by service (Azurite's lock requests are not counted). */
  requestsPerRotation: Record<string, number>;
}

/** One mode's totals over its chunks. */
interface Tally {
  ms: number;
  cpuMicros: number;
  items: number;
  statuses: Partial<Record<Status, number>>;
  requests: Record<string, number>;
}

const newTally = (): Tally => ({ ms: 0, cpuMicros: 0, items: 0, statuses: {}, requests: {} });

async function chunk(env: BenchEnv, tally: Tally, items: WorkItem[], concurrency: number, driver: Driver) {
  env.azure.servers.counts.reset();
  const cpu = process.cpuUsage();
  const { ms, statuses } = await pool(items, concurrency, driver.run);
  const used = process.cpuUsage(cpu);
  tally.ms += ms;
  tally.cpuMicros += used.user + used.system;
  tally.items += items.length;
  for (const [status, n] of Object.entries(statuses) as [Status, number][])
    tally.statuses[status] = (tally.statuses[status] ?? 0) + n;
  for (const [label, n] of Object.entries(env.azure.servers.counts.snapshot())) {
    const service = label.split(/[ /]/)[0] as string;
    tally.requests[service] = (tally.requests[service] ?? 0) + n;
  }
}

function toPhase(tally: Tally, vault: Vault): Phase {
  const per = (n: number) => Number((n / tally.items).toFixed(2));
  return {
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
  driverNote?: string;
  concurrency: number;
  hostJson: { batchSize: number; newBatchThreshold: number };
  planned: number;
  concurrent: Phase;
  sequential: Phase;
}

export async function benchRotations(
  env: BenchEnv,
  count: number,
  concurrency: number,
): Promise<RotationRun> {
  const { azure } = env;
  const pats = Array.from({ length: WARM_UP + 2 * count }, () => `dapi${randomBytes(16).toString('hex')}`);
  const [warm, seq, par] = await createVaults(env, ['rot-warm', 'rot-seq', 'rot-par']);
  if (!warm || !seq || !par) throw new Error('rotation vaults were not created');
  const seed = await azure.seed({
    workspaces: [
      {
        name: WORKSPACE,
        principals: [{ userName: OWNER }],
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
    const vault = i < WARM_UP ? warm : i < WARM_UP + count ? seq : par;
    const tags = {
      'rotation-kind': 'databricks-pat',
      'databricks-host': host,
      'credential-id': ws.tokenIds[i] ?? '',
    };
    vault.secrets.set(`pat-${String(i).padStart(4, '0')}`, [version(value, tags, exp, now)]);
  });

  const settings = settingsEnv(env, [warm, seq, par], { DATABRICKS_ALLOWED_HOSTS: host });
  const parsed = parseSettings(settings);
  // The work items come from the real planner, as the timer would enqueue them.
  const { vaults } = createServices(parsed, { credential: env.credential });
  const planned = (await scannerFor(parsed, vaults).scan()).work.filter((w) => w.op === 'rotate');
  const itemsOf = (vault: Vault) => planned.filter((w) => w.vault === vault.name);

  const { batchSize, newBatchThreshold } = hostConcurrency();
  const driver = await loadDriver(env, settings, parsed);
  await pool(itemsOf(warm), WARM_UP_CONCURRENCY, driver.run);
  // Interleaved rounds, the order flipping each round: the machine's load and anything that grows
  // with the process (tokens, caches) then weigh on both modes alike.
  const seqTally = newTally();
  const parTally = newTally();
  const seqItems = itemsOf(seq);
  const parItems = itemsOf(par);
  const size = Math.ceil(count / ROUNDS);
  for (let r = 0; r < ROUNDS; r++) {
    const runSeq = () => chunk(env, seqTally, seqItems.slice(r * size, (r + 1) * size), 1, driver);
    const runPar = () => chunk(env, parTally, parItems.slice(r * size, (r + 1) * size), concurrency, driver);
    if (r % 2 === 0) {
      await runSeq();
      await runPar();
    } else {
      await runPar();
      await runSeq();
    }
  }
  const sequential = toPhase(seqTally, seq);
  const concurrent = toPhase(parTally, par);
  return {
    kind: 'databricks-pat',
    secrets: count,
    rounds: ROUNDS,
    driver: driver.name,
    driverNote: driver.note,
    concurrency,
    hostJson: { batchSize, newBatchThreshold },
    planned: planned.length,
    concurrent,
    sequential,
  };
}
