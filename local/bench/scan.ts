/**
 * Part 1: the real Scanner against the naive scan (list, then GET every secret) over the same vaults
 * with the same injected Key Vault latency, in the same run.
 */
import os from 'node:os';
import type { Settings } from '../../shared/config';
import { Vaults } from '../../shared/clients/keyvault';
import type { Notices } from '../../shared/clients/notices';
import { ROTATORS } from '../../shared/rotators';
import type { Notification } from '../../shared/notifications/notification';
import { Scanner, type ScanOutput, type VaultSummary } from '../../shared/scan/scanner';
import { createTelemetry, type Telemetry } from '../../shared/telemetry/telemetry';
import type { WorkItem } from '../../shared/work';
import type { Vault } from '../azure/state';
import { runScanWorkers, type WorkersResult } from './child';
import {
  createVaults,
  seedMix,
  settingsEnv,
  sizes,
  vaultNames,
  type BenchEnv,
  type MixStats,
} from './fixtures';
import { atMost } from './pool';
import { profile, type ProfileSummary } from './profile';

/** Key Vault's page size for secret lists, which the scanner asks for. */
export const PAGE_SIZE = 25;
export const SCAN_VAULTS = 4;
/** Timed runs of the scanner per size; the table shows the median. */
export const SCAN_ROUNDS = 5;
/**
 * Worker processes the vault scans are spread over, as the fan-out spreads scan messages over
 * instances: one per core of this machine (the emulator has the parent process).
 */
export const SCAN_WORKERS =
  Number(process.env.BENCH_SCAN_WORKERS) || Math.min(SCAN_VAULTS, Math.max(1, os.availableParallelism()));

/**
 * Not BlobNotices: this is a bench, not a test, and the notice store (one conditional blob write per
 * first-time notice) is not what is measured. `false` = "already sent", so nothing is queued.
 */
export const NO_NOTICES: Notices = { firstTime: async () => false };

export function scannerFor(settings: Settings, vaults: Vaults): Scanner {
  return new Scanner({ settings, vaults, rotators: ROTATORS, notices: NO_NOTICES });
}

/** What the fan-out's vault scans planned, gathered in memory (or only counted, `keep: false`). */
export interface ScanResult {
  work: WorkItem[];
  notifications: Notification[];
  workItems: number;
  vaults: VaultSummary[];
}

/**
 * Every vault's scan, `concurrency` at a time in this process: what the fan-out's scanVault
 * invocations do across instances, without the queues in between (the planner is what is measured).
 */
export async function scanAll(
  settings: Settings,
  vaults: Vaults,
  options: { concurrency: number; keep?: boolean; telemetry?: Telemetry },
): Promise<ScanResult> {
  const scanner = scannerFor(settings, vaults);
  const telemetry = options.telemetry ?? createTelemetry(settings, undefined, () => undefined);
  const result: ScanResult = { work: [], notifications: [], workItems: 0, vaults: [] };
  const out: ScanOutput = {
    work: async (items) => {
      result.workItems += items.length;
      if (options.keep !== false) result.work.push(...items);
    },
    notices: async (items) => {
      if (options.keep !== false) result.notifications.push(...items);
    },
  };
  await atMost(options.concurrency, vaults.names(), async (name) => {
    result.vaults.push(await scanner.scanVault(name, out, { telemetry }));
  });
  return result;
}

export const expectedListRequests = (perVault: readonly number[]): number =>
  perVault.reduce((sum, n) => sum + Math.max(1, Math.ceil(n / PAGE_SIZE)), 0);

export interface ScanRun {
  secrets: number;
  vaults: number;
  perVault: number[];
  latencyMs: number;
  seeded: MixStats;
  expectedListRequests: number;
  listRequests: number;
  listRequestsMatch: boolean;
  /**
   * The least wall time any scan can take: a vault's pages come one after another (each page's
   * nextLink is in the previous page), vaults in parallel, so the longest vault's pages × latency.
   */
  floorMs: number;
  /**
   * The same floor as the emulator held it in the median run: its longest vault's list latency, timed
   * around each injected sleep (a 5 ms timer fires after 5 ms or later). The gap to `floorMs` is the
   * timers', not the scanner's.
   */
  heldFloorMs: number;
  /** The scanner found as many opted-in and due secrets as were seeded. */
  planMatchesSeed: boolean;
  scanner: {
    /** The median run's wall time, and every run's. */
    ms: number;
    roundsMs: number[];
    /** The first scan in fresh workers. */
    coldMs: number;
    /** CPU of the scan workers, and of the emulator (this process) meanwhile. */
    cpuMs: number;
    emulatorCpuMs: number;
    keyVaultRequests: number;
    scanned: number;
    optedIn: number;
    due: number;
    workItems: number;
    errors: string[];
  };
  naive: { ms: number; cpuMs: number; keyVaultRequests: number; listRequests: number; getRequests: number };
  /** A separate, untimed run of the scanner under the CPU profiler: a scan worker, and the emulator. */
  profile?: ProfileSummary;
  emulatorProfile?: ProfileSummary;
}

/** Key Vault requests per vault by route, from the emulator's counts. */
function keyVaultCounts(env: BenchEnv, vaults: readonly Vault[]) {
  const counts = env.azure.servers.counts.snapshot();
  const held = env.azure.servers.counts.heldSnapshot();
  let list = 0;
  let get = 0;
  let total = 0;
  // The longest vault's list latency as the emulator held it: its pages' timers, however late they fired.
  let listHeldMs = 0;
  for (const v of vaults) {
    const prefix = `keyvault/${v.name} `;
    list += counts[`${prefix}GET /secrets`] ?? 0;
    listHeldMs = Math.max(listHeldMs, held[`${prefix}GET /secrets`] ?? 0);
    get +=
      (counts[`${prefix}GET /secrets/:name/?`] ?? 0) + (counts[`${prefix}GET /secrets/:name/:version`] ?? 0);
    for (const [label, n] of Object.entries(counts)) if (label.startsWith(prefix)) total += n;
  }
  return { list, get, total, listHeldMs: Math.round(listHeldMs) };
}

/**
 * Each contestant runs in a worker process of its own (scan-child.ts), as a Functions worker would:
 * the emulator stays in this process, as Key Vault is not on the function's CPU either.
 */
export async function benchScan(
  env: BenchEnv,
  total: number,
  label: string,
  latencyMs: number,
  options: { profile?: boolean } = {},
): Promise<ScanRun> {
  const vaults = await createVaults(env, vaultNames(`scan${label}`, SCAN_VAULTS));
  const seeded = seedMix(env, vaults, total);
  const perVault = sizes(vaults);
  const settings = settingsEnv(env, vaults, { SCAN_CONCURRENCY: String(SCAN_VAULTS) });
  const { servers } = env.azure;
  // Every Key Vault request, both contestants, until cleared (no `times`).
  servers.faults.add({ service: 'keyvault', latencyMs });
  try {
    const reset = () => servers.counts.reset();
    // The scanner's figure is the median of SCAN_ROUNDS runs: one run on a shared 2-core machine is
    // easily disturbed by other work. Each run's requests are counted.
    const rounds: { run: WorkersResult; counts: ReturnType<typeof keyVaultCounts> }[] = [];
    for (let i = 0; i < SCAN_ROUNDS; i++) {
      const run = await runScanWorkers(env, { settings, mode: 'scan', warm: true }, SCAN_WORKERS, reset);
      rounds.push({ run, counts: keyVaultCounts(env, vaults) });
    }
    // And once by fresh workers, whose first scan also compiles the scanner and the SDK's paths.
    const cold = await runScanWorkers(env, { settings, mode: 'scan' }, SCAN_WORKERS, reset);
    const byWall = [...rounds].sort((a, b) => a.run.wallMs - b.run.wallMs);
    const { run: scan, counts: scanCounts } = byWall[
      Math.floor(byWall.length / 2)
    ] as (typeof rounds)[number];
    const naive = await runScanWorkers(env, { settings, mode: 'naive' }, SCAN_WORKERS, reset);
    const naiveCounts = keyVaultCounts(env, vaults);
    // An extra run, profiled: one worker (with its share of the vaults), and the emulator (this
    // process) from the start of the scan to its end.
    let emulatorProfile: ProfileSummary | undefined;
    const profiled = options.profile
      ? await runScanWorkers(
          env,
          { settings, mode: 'scan', warm: true, profile: `scan-${label}` },
          SCAN_WORKERS,
          undefined,
          async (run) => {
            const p = await profile(`emulator-${label}`, run);
            emulatorProfile = p.summary;
            return p.result;
          },
        )
      : undefined;

    const expected = expectedListRequests(perVault);
    return {
      secrets: total,
      vaults: vaults.length,
      perVault,
      latencyMs,
      seeded,
      expectedListRequests: expected,
      listRequests: scanCounts.list,
      listRequestsMatch: rounds.every((r) => r.counts.list === expected),
      floorMs: Math.max(...perVault.map((n) => Math.max(1, Math.ceil(n / PAGE_SIZE)))) * latencyMs,
      heldFloorMs: scanCounts.listHeldMs,
      planMatchesSeed: scan.optedIn === seeded.optedIn && scan.due === seeded.due,
      scanner: {
        ms: scan.wallMs,
        roundsMs: rounds.map((r) => r.run.wallMs),
        coldMs: cold.wallMs,
        cpuMs: scan.cpuMs,
        emulatorCpuMs: scan.parentCpuMs,
        keyVaultRequests: scanCounts.total,
        scanned: scan.scanned,
        optedIn: scan.optedIn,
        due: scan.due,
        workItems: scan.workItems,
        errors: scan.errors,
      },
      naive: {
        ms: naive.wallMs,
        cpuMs: naive.cpuMs,
        keyVaultRequests: naiveCounts.total,
        listRequests: naiveCounts.list,
        getRequests: naiveCounts.get,
      },
      profile: profiled?.workers[0]?.profile,
      emulatorProfile,
    };
  } finally {
    // Faults have no remove-by-id; the bench owns every fault, so clearing them all is the same.
    servers.faults.clear();
    // The secrets are not needed after this part; drop them so later parts run on a small emulator.
    for (const v of vaults) v.secrets.clear();
  }
}
