/**
 * Part 5: cold start. (a) Importing the bundle (dist/main.js, what the host loads to index the
 * functions) against importing the same dependencies unbundled from node_modules, each in fresh
 * processes, interleaved; and against @azure/functions alone (which the bundle cannot avoid: the host
 * injects into it), to show nothing else loads at import. (b) The local host in a fresh process:
 * process start → first invocation's response, and that first invocation against a warm one.
 */
import { execFileSync, fork, spawnSync } from 'node:child_process';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ColdStartResult } from './coldstart-child';
import { createVaults, settingsEnv, version, type BenchEnv } from './fixtures';

const ROOT = path.resolve(__dirname, '..', '..');
const ROUNDS = 5;
/** Every runtime dependency of the app (package.json dependencies that the code imports). */
const DEPENDENCIES = [
  '@azure/functions',
  '@azure/identity',
  '@azure/keyvault-secrets',
  '@azure/storage-blob',
  '@azure/storage-queue',
  '@azure/eventgrid',
  '@microsoft/microsoft-graph-client',
  'undici',
  'zod',
];

/** Milliseconds a fresh `node` takes to require `modules`, measured inside it. */
function importMs(modules: readonly string[]): number {
  const script = `const t=process.hrtime.bigint();for(const m of ${JSON.stringify(modules)})require(m);process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6))`;
  // Outside the host, @azure/functions warns that it runs in test mode; that is not measured.
  const out = execFileSync(process.execPath, ['-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return Number(out.toString());
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return Number((s[Math.floor(s.length / 2)] as number).toFixed(1));
};

export interface ColdStartRun {
  rounds: number;
  bundleImportMs: number;
  unbundledImportMs: number;
  functionsLibraryImportMs: number;
  samples: { bundle: number[]; unbundled: number[]; functionsLibrary: number[] };
  host: ColdStartResult;
}

function runHostChild(
  env: BenchEnv,
  settings: Record<string, string>,
  event: unknown,
): Promise<ColdStartResult> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'coldstart-child.ts'), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, ...env.identityEnv, BENCH_COLD: JSON.stringify({ env: settings, event }) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let answer: ColdStartResult | undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('message', (m) => (answer = m as ColdStartResult));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (answer) resolve(answer);
      else reject(new Error(`the cold-start child exited (${code}) without a result`));
    });
  });
}

export async function benchColdStart(env: BenchEnv): Promise<ColdStartRun> {
  const built = spawnSync(process.execPath, [path.join(ROOT, 'local', 'build.mjs')], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (built.status !== 0) throw new Error('npm run build failed');
  const bundle = path.join(ROOT, 'dist', 'main.js');
  const samples = { bundle: [] as number[], unbundled: [] as number[], functionsLibrary: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    samples.bundle.push(importMs([bundle]));
    samples.unbundled.push(importMs(DEPENDENCIES));
    samples.functionsLibrary.push(importMs(['@azure/functions']));
  }

  // The first invocation: a Key Vault event for a secret that is not opted in (read, then completed).
  const [vault] = await createVaults(env, ['cold-start']);
  if (!vault) throw new Error('the cold-start vault was not created');
  const now = env.azure.clock.nowSeconds();
  const secret = version('cold', {}, now + 10 * 86_400, now);
  vault.secrets.set('cold-secret', [secret]);
  const settings = settingsEnv(env, [vault], { SCAN_SCHEDULE: '0 0 */6 * * *' });
  const event = {
    id: randomUUID(),
    topic: `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local-rg/providers/Microsoft.KeyVault/vaults/${vault.name}`,
    subject: 'cold-secret',
    eventType: 'Microsoft.KeyVault.SecretNearExpiry',
    eventTime: new Date().toISOString(),
    data: {
      Id: `${vault.url}/secrets/cold-secret/${secret.version}`,
      VaultName: vault.name,
      ObjectType: 'Secret',
      ObjectName: 'cold-secret',
      Version: secret.version,
      NBF: null,
      EXP: secret.exp,
    },
    dataVersion: '1',
    metadataVersion: '1',
  };
  const host = await runHostChild(env, settings, event);
  return {
    rounds: ROUNDS,
    bundleImportMs: median(samples.bundle),
    unbundledImportMs: median(samples.unbundled),
    functionsLibraryImportMs: median(samples.functionsLibrary),
    samples,
    host,
  };
}
