/**
 * Child side: one scan in a process of its own, as a Functions worker runs it, so that neither its
 * memory nor its CPU is the emulator's (which stays in the parent and holds every seeded secret).
 * Started by child.ts with `--import tsx --expose-gc`; reaches the emulator in the parent over HTTPS
 * (NODE_EXTRA_CA_CERTS comes from with-local-ca). Protocol over IPC: the child warms up (one request
 * per vault: the SDK's challenge and the token; with `warm`, a whole scan), says `ready`, waits for
 * `go`, scans, answers.
 */
import { performance } from 'node:perf_hooks';
import { ManagedIdentityCredential } from '@azure/identity';
import { Vaults } from '../../shared/clients/keyvault';
import { parseSettings } from '../../shared/config';
import type { ChildRequest, ChildResult } from './child';
import { atMost } from './pool';
import { profile } from './profile';
import { scanAll } from './scan';

const SAMPLE_MS = 10;

/** The baseline a scan is compared with: list every vault, then GET each secret. Same concurrency. */
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

async function main(): Promise<void> {
  const request = JSON.parse(process.env.BENCH_CHILD ?? '{}') as ChildRequest;
  const settings = parseSettings(request.settings);
  const vaults = new Vaults(
    settings.KEY_VAULT_URIS,
    new ManagedIdentityCredential({ clientId: settings.AZURE_CLIENT_ID }),
  );
  // Warm, as an instance that has run invocations before: the SDK's challenge round trip and the
  // token are behind both clients (the scan lists with a client of its own, whose first request
  // would otherwise be a 401 challenge), and the list path is compiled (one page per vault). As many
  // vaults at a time as the scan takes: an instance never has more vault scans running, and 500 at
  // once (a tenant worker's share) would open 1,000 TLS connections together, whose buffers the
  // process keeps as RSS it then reports for the scan.
  await atMost(settings.SCAN_CONCURRENCY, vaults.names(), async (name) => {
    const { client, lister } = vaults.get(name);
    await client.getSecret('bench-warm-up').catch(() => undefined);
    if (request.mode === 'scan') await lister.listPropertiesOfSecrets().byPage().next();
  });
  const scan = () => scanAll(settings, vaults, { concurrency: settings.SCAN_CONCURRENCY, keep: false });
  if (request.warm && request.mode === 'scan') await scan();
  await new Promise<void>((resolve) => {
    process.once('message', () => resolve());
    process.send?.('ready');
  });

  global.gc?.();
  const before = process.memoryUsage();
  let peakRss = before.rss;
  let peakHeapUsed = before.heapUsed;
  const sample = () => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeapUsed = Math.max(peakHeapUsed, m.heapUsed);
  };
  // Sampling costs CPU (it reads /proc): only when memory is what is measured.
  const timer = request.sampleMemory ? setInterval(sample, SAMPLE_MS) : undefined;
  const cpu = process.cpuUsage();
  const started = performance.now();
  const run = async () =>
    request.mode === 'naive'
      ? (await naiveScan(vaults), undefined)
      : // The work is counted, not kept: the fan-out's vault scans send it to the queue page by page.
        scan();
  const profiled = request.profile ? await profile(request.profile, run) : undefined;
  const result = profiled ? profiled.result : await run();
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  clearInterval(timer);
  sample();
  global.gc?.();
  const retainedHeap = process.memoryUsage().heapUsed;
  const sum = (f: (v: NonNullable<typeof result>['vaults'][number]) => number) =>
    result ? result.vaults.reduce((s, v) => s + f(v), 0) : 0;

  const answer: ChildResult = {
    rssBefore: before.rss,
    peakRss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    peakHeapUsed,
    retainedHeap,
    heapBefore: before.heapUsed,
    ms: Math.round(ms),
    cpuMs: Math.round((used.user + used.system) / 1000),
    scanned: sum((v) => v.scanned),
    optedIn: sum((v) => v.optedIn),
    due: sum((v) => v.due),
    listPages: sum((v) => v.listPages),
    workItems: result?.workItems ?? 0,
    errors: result ? result.vaults.flatMap((v) => (v.error ? [`${v.vault}: ${v.error}`] : [])) : [],
    profile: profiled?.summary,
  };
  process.send?.(answer, () => process.exit(0));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
