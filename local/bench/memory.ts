/**
 * Part 2, parent side: seeds a small and a large set of vaults, runs one scan of each in a child
 * process (scan-child.ts) and compares their peak RSS. No injected latency here: at 5 ms a request
 * the large scan would mostly measure waiting.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import type { ChildResult } from './scan-child';
import { createVaults, seedMix, settingsEnv, sizes, vaultNames, type BenchEnv } from './fixtures';
import { SCAN_VAULTS } from './scan';

/** A child that has not answered by then is killed and the bench fails (bounded in time). */
const CHILD_TIMEOUT_MS = 6 * 60_000;

export interface MemoryRun extends ChildResult {
  secrets: number;
  perVault: number[];
  seedMs: number;
}

function runChild(env: BenchEnv, settings: Record<string, string>): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'scan-child.ts'), [], {
      // The child's own loader; not the parent's execArgv, which carries tsx's CLI internals.
      execArgv: ['--import', 'tsx', '--expose-gc'],
      env: { ...process.env, ...env.identityEnv, BENCH_SETTINGS: JSON.stringify(settings) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let answer: ChildResult | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the scan child did not finish within ${CHILD_TIMEOUT_MS / 1000} s`));
    }, CHILD_TIMEOUT_MS);
    child.on('message', (m) => (answer = m as ChildResult));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (answer) resolve(answer);
      else reject(new Error(`the scan child exited (${signal ?? code}) without a result`));
    });
  });
}

export async function benchMemory(env: BenchEnv, total: number, label: string): Promise<MemoryRun> {
  const vaults = await createVaults(env, vaultNames(`mem${label}`, SCAN_VAULTS));
  const seedStarted = Date.now();
  seedMix(env, vaults, total);
  const seedMs = Date.now() - seedStarted;
  try {
    const result = await runChild(env, settingsEnv(env, vaults, { SCAN_CONCURRENCY: String(SCAN_VAULTS) }));
    return { secrets: total, perVault: sizes(vaults), seedMs, ...result };
  } finally {
    for (const v of vaults) v.secrets.clear();
  }
}
