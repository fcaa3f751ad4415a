/**
 * Part 1: the real Scanner against the naive scan (list, then GET every secret) over the same vaults
 * with the same injected Key Vault latency, in the same run.
 */
import { performance } from 'node:perf_hooks';
import type { Settings } from '../../shared/config';
import { Vaults } from '../../shared/clients/keyvault';
import type { Notices } from '../../shared/clients/notices';
import { ROTATORS } from '../../shared/rotators';
import type { Notification } from '../../shared/notifications/notification';
import { Scanner, type ScanOutput, type VaultSummary } from '../../shared/scan/scanner';
import { createTelemetry, type Telemetry } from '../../shared/telemetry/telemetry';
import type { WorkItem } from '../../shared/work';
import type { Vault } from '../azure/state';
import {
  createVaults,
  seedMix,
  settingsFor,
  sizes,
  vaultNames,
  type BenchEnv,
  type MixStats,
} from './fixtures';

/** Key Vault's page size for secret lists, which the scanner asks for. */
export const PAGE_SIZE = 25;
export const SCAN_VAULTS = 4;

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
  const names = vaults.names();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(options.concurrency, names.length) }, async () => {
      while (next < names.length)
        result.vaults.push(await scanner.scanVault(names[next++] as string, out, { telemetry }));
    }),
  );
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
  /** The scanner found as many opted-in and due secrets as were seeded. */
  planMatchesSeed: boolean;
  scanner: {
    ms: number;
    keyVaultRequests: number;
    scanned: number;
    optedIn: number;
    due: number;
    workItems: number;
    errors: string[];
  };
  naive: { ms: number; keyVaultRequests: number; listRequests: number; getRequests: number };
}

/** Key Vault requests per vault by route, from the emulator's counts. */
function keyVaultCounts(env: BenchEnv, vaults: readonly Vault[]) {
  const counts = env.azure.servers.counts.snapshot();
  let list = 0;
  let get = 0;
  let total = 0;
  for (const v of vaults) {
    const prefix = `keyvault/${v.name} `;
    list += counts[`${prefix}GET /secrets`] ?? 0;
    get +=
      (counts[`${prefix}GET /secrets/:name/?`] ?? 0) + (counts[`${prefix}GET /secrets/:name/:version`] ?? 0);
    for (const [label, n] of Object.entries(counts)) if (label.startsWith(prefix)) total += n;
  }
  return { list, get, total };
}

/** The baseline: what a scan without list-page assessment would do. Same vault concurrency. */
async function naiveScan(vaults: Vaults): Promise<void> {
  await Promise.all(
    vaults.names().map(async (name) => {
      const { client } = vaults.get(name);
      const names: string[] = [];
      for await (const props of client.listPropertiesOfSecrets()) names.push(props.name);
      for (const secret of names) await client.getSecret(secret);
    }),
  );
}

export async function benchScan(
  env: BenchEnv,
  total: number,
  label: string,
  latencyMs: number,
): Promise<ScanRun> {
  const vaults = await createVaults(env, vaultNames(`scan${label}`, SCAN_VAULTS));
  const seeded = seedMix(env, vaults, total);
  const perVault = sizes(vaults);
  const settings = settingsFor(env, vaults, { SCAN_CONCURRENCY: String(SCAN_VAULTS) });
  const clients = new Vaults(settings.KEY_VAULT_URIS, env.credential);
  const { servers } = env.azure;
  // Every Key Vault request, both contestants, until cleared (no `times`).
  servers.faults.add({ service: 'keyvault', latencyMs });
  try {
    // One request per vault first (a name that does not exist, a route the scan does not use): the
    // SDK's challenge round trip and the managed-identity token are then behind both contestants.
    await Promise.all(
      clients.names().map((n) =>
        clients
          .get(n)
          .client.getSecret('bench-warm-up')
          .catch(() => undefined),
      ),
    );

    servers.counts.reset();
    let started = performance.now();
    const result = await scanAll(settings, clients, { concurrency: SCAN_VAULTS });
    const scanMs = performance.now() - started;
    const scanCounts = keyVaultCounts(env, vaults);

    servers.counts.reset();
    started = performance.now();
    await naiveScan(clients);
    const naiveMs = performance.now() - started;
    const naiveCounts = keyVaultCounts(env, vaults);

    const expected = expectedListRequests(perVault);
    const sum = (f: (v: ScanResult['vaults'][number]) => number) =>
      result.vaults.reduce((s, v) => s + f(v), 0);
    return {
      secrets: total,
      vaults: vaults.length,
      perVault,
      latencyMs,
      seeded,
      expectedListRequests: expected,
      listRequests: scanCounts.list,
      listRequestsMatch: scanCounts.list === expected,
      planMatchesSeed: sum((v) => v.optedIn) === seeded.optedIn && sum((v) => v.due) === seeded.due,
      scanner: {
        ms: Math.round(scanMs),
        keyVaultRequests: scanCounts.total,
        scanned: sum((v) => v.scanned),
        optedIn: sum((v) => v.optedIn),
        due: sum((v) => v.due),
        workItems: result.work.length,
        errors: result.vaults.flatMap((v) => (v.error ? [`${v.vault}: ${v.error}`] : [])),
      },
      naive: {
        ms: Math.round(naiveMs),
        keyVaultRequests: naiveCounts.total,
        listRequests: naiveCounts.list,
        getRequests: naiveCounts.get,
      },
    };
  } finally {
    // Faults have no remove-by-id; the bench owns every fault, so clearing them all is the same.
    servers.faults.clear();
    // The secrets are not needed after this part; drop them so later parts run on a small emulator.
    for (const v of vaults) v.secrets.clear();
  }
}
