/**
 * `npm run bench` (= `node local/with-local-ca.mjs tsx local/bench/index.ts [--quick] [--only …]`): a benchmark,
 * not a test. Everything runs on loopback against local Azure (in this process) and Azurite; every
 * figure is compared with a baseline measured in the same run, and nothing fails on a threshold.
 * Prints a table and writes `.local/bench-results.json` (git-ignored). `--quick` runs small sizes,
 * to check that the bench works; its numbers are not the bench's. `--only scan,tenant` runs only the
 * parts named (PARTS), e.g. the scan alone while working on it.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { startBenchEnv, type BenchEnv } from './fixtures';
import { benchColdStart, type ColdStartRun } from './coldstart';
import { benchMemory, type MemoryRun } from './memory';
import { printProfile } from './profile';
import { ratio, table, writeResults } from './report';
import { redactRows } from './redact';
import { benchRotations, hostConcurrency, type RotationRun } from './rotate';
import { benchScan, type ScanRun } from './scan';
import { benchTenant, type TenantRun } from './tenant';
import { coldStartRows, memoryRows, rotationRows, scanRows, tenantRows } from './rows';

const FULL = {
  scan: [
    { total: 1_000, label: '1k' },
    { total: 10_000, label: '10k' },
  ],
  scanLatencyMs: 5,
  memory: { small: { total: 1_000, label: '1k' }, large: { total: 100_000, label: '100k' } },
  rotations: 200,
  tenant: {
    vaults: 1_000,
    secretsPerVault: 1_000,
    latencyMs: 5,
    workers: 2,
    baselineSample: 25,
    rotations: 100,
  },
} as const;

const QUICK = {
  scan: [
    { total: 200, label: '200' },
    { total: 1_000, label: '1k' },
  ],
  scanLatencyMs: 5,
  memory: { small: { total: 200, label: '200' }, large: { total: 5_000, label: '5k' } },
  rotations: 20,
  tenant: { vaults: 40, secretsPerVault: 1_000, latencyMs: 5, workers: 2, baselineSample: 4, rotations: 10 },
} as const;

/** The whole bench is bounded: past this it stops and exits non-zero. */
const DEADLINE_MS = 15 * 60_000;

/** The parts `--only` chooses from, in the order they run. */
const PARTS = ['scan', 'memory', 'rotations', 'redact', 'tenant', 'coldstart'] as const;
type Part = (typeof PARTS)[number];

/** `--only scan,tenant` (or `--only=scan`): those parts; by default every part. */
function selectedParts(argv: readonly string[]): ReadonlySet<Part> {
  const at = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (at < 0) return new Set(PARTS);
  const arg = argv[at] as string;
  const names = (arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : (argv[at + 1] ?? '')).split(',');
  const unknown = names.filter((n) => !(PARTS as readonly string[]).includes(n));
  if (unknown.length > 0 || names.length === 0)
    throw new Error(`--only takes a comma-separated list of ${PARTS.join(', ')}; got "${names.join(',')}"`);
  return new Set(names as Part[]);
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const plan = quick ? QUICK : FULL;
  const parts = selectedParts(process.argv);
  const started = performance.now();
  const loadAtStart = os.loadavg().map((l) => Number(l.toFixed(2)));
  const deadline = setTimeout(() => {
    console.error(`bench: still running after ${DEADLINE_MS / 60_000} min; giving up`);
    process.exit(1);
  }, DEADLINE_MS);
  deadline.unref();
  const concurrency = Number(process.env.BENCH_ROTATION_CONCURRENCY) || hostConcurrency().concurrency;
  const step = (what: string) =>
    console.log(`[bench ${((performance.now() - started) / 1000).toFixed(1)} s] ${what}`);

  let env: BenchEnv | undefined;
  try {
    step('starting local Azure and Azurite');
    env = await startBenchEnv();
    const scans: ScanRun[] = [];
    if (parts.has('scan')) {
      for (const [i, { total, label }] of plan.scan.entries()) {
        step(`scan of ${total} secrets, scanner then list+GET each`);
        // The largest scan is run once more under the CPU profiler (not timed).
        scans.push(
          await benchScan(env, total, label, plan.scanLatencyMs, { profile: i === plan.scan.length - 1 }),
        );
      }
    }
    let small: MemoryRun | undefined;
    let large: MemoryRun | undefined;
    // The tenant's per-worker RSS is compared with the small memory scan's.
    if (parts.has('memory') || parts.has('tenant')) {
      step(`memory: scan of ${plan.memory.small.total} secrets in a child process`);
      small = await benchMemory(env, plan.memory.small.total, plan.memory.small.label);
    }
    if (parts.has('memory')) {
      step(`memory: scan of ${plan.memory.large.total} secrets in a child process`);
      large = await benchMemory(env, plan.memory.large.total, plan.memory.large.label);
    }
    let rotations: RotationRun | undefined;
    if (parts.has('rotations')) {
      step(`rotations: ${plan.rotations} one at a time and ${plan.rotations} concurrently, interleaved`);
      rotations = await benchRotations(env, plan.rotations, concurrency);
    }
    let tenant: TenantRun | undefined;
    if (parts.has('tenant')) {
      step(
        `tenant: ${plan.tenant.vaults} vaults × ${plan.tenant.secretsPerVault} secrets, fan-out scan with rotations`,
      );
      tenant = await benchTenant(env, plan.tenant);
    }
    let coldStart: ColdStartRun | undefined;
    if (parts.has('coldstart')) {
      step('cold start: imports in fresh processes, then the local host in a fresh process');
      coldStart = await benchColdStart(env);
    }

    const rows = [
      ...scans.flatMap(scanRows),
      ...(small && large ? memoryRows(small, large) : []),
      ...(rotations ? rotationRows(rotations) : []),
      ...(parts.has('redact') ? redactRows() : []),
      ...(tenant && small ? tenantRows(tenant, small) : []),
      ...(coldStart ? coldStartRows(coldStart) : []),
    ];
    const wallMs = Math.round(performance.now() - started);
    const results = {
      quick,
      parts: [...parts],
      finishedAt: new Date().toISOString(),
      wallMs,
      machine: {
        node: process.version,
        cpus: os.cpus().length,
        platform: `${os.platform()} ${os.arch()}`,
        // Other work on the machine moves every figure; the ratios are measured side by side.
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: os.loadavg().map((l) => Number(l.toFixed(2))),
      },
      scan: scans,
      memory: small && {
        small,
        large,
        peakRssRatio: large && ratio(large.peakRss, small.peakRss),
        maxRssRatio: large && ratio(large.maxRss, small.maxRss),
      },
      rotations: rotations && {
        ...rotations,
        ratio: ratio(rotations.concurrent.perSecond, rotations.sequential.perSecond),
      },
      tenant,
      coldStart,
      table: rows.map((r) => ({ ...r, ratio: ratio(r.value, r.baseline) })),
    };
    const file = writeResults(results);
    console.log(`\n${JSON.stringify(results, null, 2)}\n`);
    console.log(table(rows));
    console.log('\nratio = value ÷ baseline.');
    if (rotations) {
      console.log(`Rotation driver: ${rotations.driver};`);
      console.log(
        `  at once: ${rotations.concurrent.concurrency}; baseline: ${rotations.sequential.concurrency}.`,
      );
      for (const note of rotations.driverNotes) console.log(`  (${note})`);
    }
    for (const run of scans) {
      const title = `${run.secrets} secrets / ${run.vaults} vaults`;
      if (run.profile) printProfile(`scan worker, ${title}`, run.profile);
      if (run.emulatorProfile) printProfile(`Key Vault emulator, ${title}`, run.emulatorProfile);
    }
    console.log(`Whole bench: ${(wallMs / 1000).toFixed(1)} s. Results: ${file}`);
  } finally {
    await env?.stop();
    clearTimeout(deadline);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
