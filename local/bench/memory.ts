/**
 * Part 2: seeds a small and a large set of vaults, runs one scan of each in a child process
 * (scan-child.ts) and compares their peak RSS. No injected latency here: at 5 ms a request the large
 * scan would mostly measure waiting.
 */
import { runScanWorkers, type ChildResult } from './child';
import { createVaults, seedMix, settingsEnv, sizes, vaultNames, type BenchEnv } from './fixtures';
import { SCAN_VAULTS } from './scan';

export interface MemoryRun extends ChildResult {
  secrets: number;
  perVault: number[];
  seedMs: number;
}

export async function benchMemory(env: BenchEnv, total: number, label: string): Promise<MemoryRun> {
  const vaults = await createVaults(env, vaultNames(`mem${label}`, SCAN_VAULTS));
  const seedStarted = Date.now();
  seedMix(env, vaults, total);
  const seedMs = Date.now() - seedStarted;
  try {
    const settings = settingsEnv(env, vaults, { SCAN_CONCURRENCY: String(SCAN_VAULTS) });
    // One worker: the memory of one process scanning every vault.
    const [result] = (await runScanWorkers(env, { settings, mode: 'scan', sampleMemory: true }, 1)).workers;
    if (!result) throw new Error('the scan worker gave no result');
    return { secrets: total, perVault: sizes(vaults), seedMs, ...result };
  } finally {
    for (const v of vaults) v.secrets.clear();
  }
}
