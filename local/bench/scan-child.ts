/**
 * Part 2, child side: one scan in a process of its own, so its memory is measured without the
 * emulator's (which holds every seeded secret). Started by memory.ts with `--import tsx --expose-gc`;
 * reaches the emulator in the parent over HTTPS (NODE_EXTRA_CA_CERTS comes from with-local-ca) and
 * answers over the IPC channel.
 */
import { performance } from 'node:perf_hooks';
import { ManagedIdentityCredential } from '@azure/identity';
import { Vaults } from '../../shared/clients/keyvault';
import { parseSettings } from '../../shared/config';
import { scanAll } from './scan';

export interface ChildResult {
  rssBefore: number;
  peakRss: number;
  /** resourceUsage().maxRSS, in bytes: the kernel's high-water mark for the whole process life. */
  maxRss: number;
  peakHeapUsed: number;
  /** heapUsed after a full GC with the scan's summaries still referenced: what the scan keeps. */
  retainedHeap: number;
  heapBefore: number;
  samples: number;
  ms: number;
  scanned: number;
  listPages: number;
  workItems: number;
  errors: string[];
}

const SAMPLE_MS = 10;

async function main(): Promise<void> {
  const settings = parseSettings(JSON.parse(process.env.BENCH_SETTINGS ?? '{}') as Record<string, string>);
  const vaults = new Vaults(
    settings.KEY_VAULT_URIS,
    new ManagedIdentityCredential({ clientId: settings.AZURE_CLIENT_ID }),
  );

  global.gc?.();
  const before = process.memoryUsage();
  let peakRss = before.rss;
  let peakHeapUsed = before.heapUsed;
  let samples = 0;
  const sample = () => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeapUsed = Math.max(peakHeapUsed, m.heapUsed);
    samples++;
  };
  const timer = setInterval(sample, SAMPLE_MS);
  const started = performance.now();
  // The work is counted, not kept: the fan-out's vault scans send it to the queue page by page.
  const result = await scanAll(settings, vaults, { concurrency: settings.SCAN_CONCURRENCY, keep: false });
  const ms = performance.now() - started;
  clearInterval(timer);
  sample();
  global.gc?.();
  const retainedHeap = process.memoryUsage().heapUsed;

  const answer: ChildResult = {
    rssBefore: before.rss,
    peakRss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    peakHeapUsed,
    retainedHeap,
    heapBefore: before.heapUsed,
    samples,
    ms: Math.round(ms),
    scanned: result.vaults.reduce((s, v) => s + v.scanned, 0),
    listPages: result.vaults.reduce((s, v) => s + v.listPages, 0),
    workItems: result.workItems,
    errors: result.vaults.flatMap((v) => (v.error ? [`${v.vault}: ${v.error}`] : [])),
  };
  process.send?.(answer, () => process.exit(0));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
