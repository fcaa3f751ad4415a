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
import { benchColdStart, type ColdStartRun } from './coldstart';
import { benchMemory, type MemoryRun } from './memory';
import { printProfile } from './profile';
import { mb, ratio, table, writeResults, type Row } from './report';
import { redactRows } from './redact';
import { benchRotations, hostConcurrency, type RotationRun } from './rotate';
import { benchScan, type ScanRun } from './scan';
import { benchTenant, type TenantRun } from './tenant';

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

function scanRows(run: ScanRun): Row[] {
  const n = run.perVault.length;
  return [
    {
      metric: `scan ${run.secrets} secrets / ${n} vaults: wall time (scanner vs latency floor)`,
      value: run.scanner.ms,
      baseline: run.floorMs,
      unit: 'ms',
      note: `floor = ${Math.max(...run.perVault.map((v) => Math.ceil(v / 25)))} pages per vault × ${run.latencyMs} ms, vaults in parallel; scanner CPU ${run.scanner.cpuMs} ms`,
    },
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
      note: `no latency; ${large.workItems} vs ${small.workItems} work items planned and dropped as sent; large scan ${(large.ms / 1000).toFixed(0)} s`,
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

function tenantRows(t: TenantRun, small: MemoryRun): Row[] {
  const label = `tenant ${t.vaults} vaults × ${t.secretsPerVault} secrets`;
  const rss = t.fanOut.workers.map((w) => mb(w.maxRss));
  const r = t.rotation;
  return [
    {
      metric: `${label}: list requests counted vs Σ ceil(n/25)`,
      value: t.listRequests,
      baseline: t.expectedListRequests,
      unit: '',
      note: t.listRequests === t.expectedListRequests ? 'match' : 'MISMATCH',
    },
    {
      metric: `${label}: fan-out wall time vs one vault at a time`,
      value: t.fanOut.ms,
      baseline: t.oneAtATime.scaledMs,
      unit: 'ms',
      note: `${t.workers} workers × ${t.concurrencyPerWorker} at once; baseline ${t.oneAtATime.sampleMs} ms for ${t.oneAtATime.sampleVaults} vaults, scaled; ${t.latencyMs} ms latency, documented limits (429s: ${t.throttled.vault} vault, ${t.throttled.subscription} subscription)`,
    },
    {
      metric: `${label}: fan-out wall time vs latency floor`,
      value: t.fanOut.ms,
      baseline: t.floorMs,
      unit: 'ms',
      note: `floor = ⌈vaults / slots⌉ × pages per vault × latency; CPU: workers ${t.fanOut.workers.map((w) => w.cpuMs).join(' + ')} ms, emulator ${t.fanOut.emulatorCpuMs} ms`,
    },
    {
      metric: `${label}: peak RSS per worker (maxRSS) vs a worker scanning ${small.secrets} secrets`,
      value: Math.max(...rss),
      baseline: mb(small.maxRss),
      unit: 'MB',
      digits: 1,
      note: `workers: ${rss.join(', ')} MB; planned ${t.fanOut.planned} operations (${t.due} seeded due); emulator ${t.bytesPerSecret} B per seeded secret`,
    },
    {
      metric: `${label}: rotation queue throughput during the scan vs alone`,
      value: r.duringScan.perSecond,
      baseline: r.alone.perSecond,
      unit: '/s',
      digits: 1,
      note: `rotated ${r.duringScan.rotated}/${r.duringScan.items} vs ${r.alone.rotated}/${r.alone.items}, failed ${r.duringScan.failed} + ${r.alone.failed}; same vaults' Key Vault limits`,
    },
  ];
}

function coldStartRows(run: ColdStartRun): Row[] {
  const h = run.host;
  return [
    {
      metric: 'cold start: import dist/main.js (bundle) vs the same dependencies unbundled',
      value: run.bundleImportMs,
      baseline: run.unbundledImportMs,
      unit: 'ms',
      digits: 0,
      note: `median of ${run.rounds} fresh processes each, interleaved`,
    },
    {
      metric: 'cold start: import dist/main.js vs @azure/functions alone (the host injects into it)',
      value: run.bundleImportMs,
      baseline: run.functionsLibraryImportMs,
      unit: 'ms',
      digits: 0,
      note: 'the rest is reading and compiling the bundle; its SDKs are evaluated on the first invocation',
    },
    {
      metric: 'cold start: local host, process start → first invocation response vs → host ready',
      value: h.firstResponseMs,
      baseline: h.hostReadyMs,
      unit: 'ms',
      note: 'Event Grid event for a vault secret; the host process runs under tsx',
    },
    {
      metric: 'cold start: first invocation vs the same invocation warm',
      value: h.firstInvocationMs,
      baseline: h.warmInvocationMs,
      unit: 'ms',
      note: `responses ${h.statuses.join(', ')}; the first loads the runtime and SDKs and gets a token`,
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
    for (const [i, { total, label }] of plan.scan.entries()) {
      step(`scan of ${total} secrets, scanner then list+GET each`);
      // The largest scan is run once more under the CPU profiler (not timed).
      scans.push(
        await benchScan(env, total, label, plan.scanLatencyMs, { profile: i === plan.scan.length - 1 }),
      );
    }
    step(`memory: scan of ${plan.memory.small.total} secrets in a child process`);
    const small = await benchMemory(env, plan.memory.small.total, plan.memory.small.label);
    step(`memory: scan of ${plan.memory.large.total} secrets in a child process`);
    const large = await benchMemory(env, plan.memory.large.total, plan.memory.large.label);
    step(`rotations: ${plan.rotations} one at a time and ${plan.rotations} concurrently, interleaved`);
    const rotations = await benchRotations(env, plan.rotations, concurrency);
    step(
      `tenant: ${plan.tenant.vaults} vaults × ${plan.tenant.secretsPerVault} secrets, fan-out scan with rotations`,
    );
    const tenant = await benchTenant(env, plan.tenant);
    step('cold start: imports in fresh processes, then the local host in a fresh process');
    const coldStart = await benchColdStart(env);

    const rows = [
      ...scans.flatMap(scanRows),
      ...memoryRows(small, large),
      ...rotationRows(rotations),
      ...redactRows(),
      ...tenantRows(tenant, small),
      ...coldStartRows(coldStart),
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
      tenant,
      coldStart,
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
    for (const run of scans)
      if (run.profile) printProfile(`scanner, ${run.secrets} secrets / ${run.vaults} vaults`, run.profile);
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
