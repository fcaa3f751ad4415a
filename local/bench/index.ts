/**
 * `npm run bench` (= `node local/with-local-ca.mjs tsx local/bench/index.ts [--quick]`): a benchmark,
 * not a test. Everything runs on loopback against local Azure (in this process) and Azurite; every
 * figure is compared with a baseline measured in the same run, and nothing fails on a threshold.
 * Prints a table and writes `.local/bench-results.json` (git-ignored). `--quick` runs small sizes,
 * to check that the bench works; its numbers are not the bench's.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { startBenchEnv, type BenchEnv } from './fixtures';
import { benchMemory, type MemoryRun } from './memory';
import { mb, ratio, table, writeResults, type Row } from './report';
import { redactRows } from './redact';
import { benchRotations, hostConcurrency, type RotationRun } from './rotate';
import { benchScan, type ScanRun } from './scan';

const FULL = {
  scan: [
    { total: 1_000, label: '1k' },
    { total: 10_000, label: '10k' },
  ],
  scanLatencyMs: 5,
  memory: { small: { total: 1_000, label: '1k' }, large: { total: 100_000, label: '100k' } },
  rotations: 200,
} as const;

const QUICK = {
  scan: [
    { total: 200, label: '200' },
    { total: 1_000, label: '1k' },
  ],
  scanLatencyMs: 5,
  memory: { small: { total: 200, label: '200' }, large: { total: 5_000, label: '5k' } },
  rotations: 20,
} as const;

/** The whole bench is bounded: past this it stops and exits non-zero. */
const DEADLINE_MS = 15 * 60_000;

function scanRows(run: ScanRun): Row[] {
  const n = run.perVault.length;
  return [
    {
      metric: `scan ${run.secrets} secrets / ${n} vaults: wall time (scanner vs list+GET each)`,
      value: run.scanner.ms,
      baseline: run.naive.ms,
      unit: 'ms',
      note: `${run.latencyMs} ms injected per Key Vault request; plan ${run.planMatchesSeed ? 'matches' : 'DIFFERS FROM'} seed (${run.scanner.due} due)`,
    },
    {
      metric: `scan ${run.secrets}: list requests counted vs Σ ceil(n/25)`,
      value: run.listRequests,
      baseline: run.expectedListRequests,
      unit: '',
      note: run.listRequestsMatch ? 'match' : 'MISMATCH',
    },
    {
      metric: `scan ${run.secrets}: all Key Vault requests (scanner vs list+GET each)`,
      value: run.scanner.keyVaultRequests,
      baseline: run.naive.keyVaultRequests,
      unit: '',
      note: `naive: ${run.naive.listRequests} list + ${run.naive.getRequests} GET`,
    },
  ];
}

function memoryRows(small: MemoryRun, large: MemoryRun): Row[] {
  const label = `scan ${large.secrets} vs ${small.secrets} secrets (child process)`;
  return [
    {
      metric: `${label}: peak RSS (sampled)`,
      value: mb(large.peakRss),
      baseline: mb(small.peakRss),
      unit: 'MB',
      digits: 1,
    },
    {
      metric: `${label}: maxRSS (resourceUsage)`,
      value: mb(large.maxRss),
      baseline: mb(small.maxRss),
      unit: 'MB',
      digits: 1,
    },
    {
      metric: `${label}: peak heap used`,
      value: mb(large.peakHeapUsed),
      baseline: mb(small.peakHeapUsed),
      unit: 'MB',
      digits: 1,
      note: 'includes garbage not yet collected',
    },
    {
      metric: `${label}: heap retained after scan + full GC`,
      value: mb(large.retainedHeap),
      baseline: mb(small.retainedHeap),
      unit: 'MB',
      digits: 1,
      note: `no latency; ${large.workItems} vs ${small.workItems} work items held; large scan ${(large.ms / 1000).toFixed(0)} s`,
    },
  ];
}

function rotationRows(run: RotationRun): Row[] {
  const { concurrent: c, sequential: s } = run;
  return [
    {
      metric: `rotations/s, ${run.secrets} due ${run.kind} (host concurrency vs one at a time)`,
      value: c.perSecond,
      baseline: s.perSecond,
      unit: '/s',
      digits: 1,
      note: `rotated ${c.rotatedInVault}/${run.secrets} vs ${s.rotatedInVault}/${run.secrets}; CPU ${c.cpuMsPerRotation} vs ${s.cpuMsPerRotation} ms/rotation`,
    },
  ];
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const plan = quick ? QUICK : FULL;
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
    for (const { total, label } of plan.scan) {
      step(`scan of ${total} secrets, scanner then list+GET each`);
      scans.push(await benchScan(env, total, label, plan.scanLatencyMs));
    }
    step(`memory: scan of ${plan.memory.small.total} secrets in a child process`);
    const small = await benchMemory(env, plan.memory.small.total, plan.memory.small.label);
    step(`memory: scan of ${plan.memory.large.total} secrets in a child process`);
    const large = await benchMemory(env, plan.memory.large.total, plan.memory.large.label);
    step(`rotations: ${plan.rotations} one at a time and ${plan.rotations} concurrently, interleaved`);
    const rotations = await benchRotations(env, plan.rotations, concurrency);

    const rows = [
      ...scans.flatMap(scanRows),
      ...memoryRows(small, large),
      ...rotationRows(rotations),
      ...redactRows(),
    ];
    const wallMs = Math.round(performance.now() - started);
    const results = {
      quick,
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
      memory: {
        small,
        large,
        peakRssRatio: ratio(large.peakRss, small.peakRss),
        maxRssRatio: ratio(large.maxRss, small.maxRss),
      },
      rotations: {
        ...rotations,
        ratio: ratio(rotations.concurrent.perSecond, rotations.sequential.perSecond),
      },
      table: rows.map((r) => ({ ...r, ratio: ratio(r.value, r.baseline) })),
    };
    const file = writeResults(results);
    console.log(`\n${JSON.stringify(results, null, 2)}\n`);
    console.log(table(rows));
    console.log(`\nratio = value ÷ baseline. Rotation driver: ${rotations.driver};`);
    console.log(
      `  at once: ${rotations.concurrent.concurrency}; baseline: ${rotations.sequential.concurrency}.`,
    );
    for (const note of rotations.driverNotes) console.log(`  (${note})`);
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
