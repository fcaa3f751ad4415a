/** The bench table's rows, one group per part (index.ts runs the parts and prints them). */
import type { ColdStartRun } from './coldstart';
import type { MemoryRun } from './memory';
import { mb, type Row } from './report';
import type { RotationRun } from './rotate';
import type { ScanRun } from './scan';
import type { TenantRun } from './tenant';

export function scanRows(run: ScanRun): Row[] {
  const n = run.perVault.length;
  const { scanner } = run;
  const perPage = (ms: number) => (ms / run.listRequests).toFixed(2);
  const pagesPerVault = Math.max(...run.perVault.map((v) => Math.ceil(v / 25)));
  return [
    {
      metric: `scan ${run.secrets} secrets / ${n} vaults: wall time (scanner vs latency floor)`,
      value: scanner.ms,
      baseline: run.floorMs,
      unit: 'ms',
      note: `median of ${scanner.roundsMs.length} runs (${Math.min(...scanner.roundsMs)}–${Math.max(...scanner.roundsMs)} ms), each by workers that scanned once before; floor = ${pagesPerVault} pages per vault × ${run.latencyMs} ms, vaults in parallel; CPU per page: scan workers ${perPage(scanner.cpuMs)} ms, emulator ${perPage(scanner.emulatorCpuMs)} ms`,
    },
    {
      metric: `scan ${run.secrets} secrets / ${n} vaults: wall time vs the latency the emulator held`,
      value: scanner.ms,
      baseline: run.heldFloorMs,
      unit: 'ms',
      note: `same median run; baseline = the longest vault's injected sleeps as timed around each (${(run.heldFloorMs / pagesPerVault).toFixed(2)} ms per ${run.latencyMs} ms page): the rest is the round trips and the scanner`,
    },
    {
      metric: `scan ${run.secrets} secrets / ${n} vaults: first scan in fresh workers vs latency floor`,
      value: scanner.coldMs,
      baseline: run.floorMs,
      unit: 'ms',
      note: 'one run; the first scan in a process also compiles the scanner and the SDK paths',
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

export function memoryRows(small: MemoryRun, large: MemoryRun): Row[] {
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

export function rotationRows(run: RotationRun): Row[] {
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

export function tenantRows(t: TenantRun, small: MemoryRun): Row[] {
  const label = `tenant ${t.vaults} vaults × ${t.secretsPerVault} secrets`;
  const rss = t.fanOut.workers.map((w) => mb(w.maxRss));
  const r = t.rotation;
  return [
    {
      metric: `${label}: list requests counted vs Σ ceil(n/25)`,
      value: t.listRequests,
      baseline: t.expectedListRequests,
      unit: '',
      note: `${t.listRequests === t.expectedListRequests ? 'match' : 'MISMATCH'}; answered requests (${t.listRequestsThrottled} more were refused with a 429 and sent again)`,
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
      note: `rotated ${r.duringScan.rotated}/${r.duringScan.items} vs ${r.alone.rotated}/${r.alone.items}, failed ${r.duringScan.failed} + ${r.alone.failed}; same vaults' Key Vault limits${failureNote(r)}`,
    },
  ];
}

/** The first failure of each rotation phase, when any failed. */
function failureNote(r: TenantRun['rotation']): string {
  const first = [r.duringScan.firstFailure, r.alone.firstFailure].filter(Boolean);
  return first.length ? `; first failure: ${first.join(' / ')}` : '';
}

export function coldStartRows(run: ColdStartRun): Row[] {
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
      note: 'main.js is the registrations; the handlers bundle (SDKs, engine) is required by the first invocation',
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
