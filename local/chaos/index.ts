/**
 * `npm run chaos [-- --profile full|short] [--faults spread|front]`: the storm, a benchmark (not a
 * timed test; faults: see stormFaults). Local Azure in
 * this process, Azurite behind a Storage fault point, the function app on the local Functions host in
 * a child process that the storm kills and restarts. Two cohorts of the same mix: the calm one rotates
 * without faults, the storm one under the fault timeline (throttling, drops, lost answers, latency past
 * the client timeouts, store failures, Storage faults, two host kills mid-rotation), so both rates come
 * from the same run. Then quiescence, a late-announcement scan, a reconcile pass, and the verdict
 * (local/chaos/verify.ts). Exits non-zero on any lost credential, orphan, duplicate, broken grace
 * period or missed/double announcement.
 */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ManagedIdentityCredential } from '@azure/identity';
import { QueueServiceClient } from '@azure/storage-queue';
import { parseSettings } from '../../shared/config';
import { STORAGE, TAGS } from '../../shared/constants';
import { IN_FLIGHT_MS } from '../../shared/rotation/engine';
import { createServices } from '../../shared/services';
import { LocalAzure } from '../azure';
import type { FaultRule, Faults } from '../azure/faults';
import { startStorageFaultPoint } from '../azure/storage-proxy';
import { startAzurite } from '../azurite';
import { providerCredentials, verify } from './verify';
import { seedChaosTenant, type ChaosSecret } from './tenant';

const PROFILES = {
  full: { secrets: 1_000, vaults: 4, sharedEvery: 3, tickMs: 30_000, deadlineMs: 30 * 60_000 },
  short: { secrets: 60, vaults: 4, sharedEvery: 2, tickMs: 10_000, deadlineMs: 180_000 },
} as const;
const FUNCTION_TIMEOUT_MS = 60_000;
const ROOT = path.resolve(__dirname, '..', '..');

const { values } = parseArgs({
  options: {
    profile: { type: 'string', default: 'full' },
    faults: { type: 'string', default: 'spread' },
  },
});
const profileName = values.profile as keyof typeof PROFILES;
const profile = PROFILES[profileName];
if (!profile) {
  console.error(`--profile must be one of ${Object.keys(PROFILES).join(', ')}`);
  process.exit(2);
}
if (values.faults !== 'spread' && values.faults !== 'front') {
  console.error('--faults must be spread or front');
  process.exit(2);
}
const spread = values.faults === 'spread';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const started = Date.now();
const log = (line: string) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);

/** The function app instance, a child process the storm can kill. */
class Instance {
  private child?: ChildProcess;
  busy = 0;
  peakRss = 0;
  constructor(private readonly env: Record<string, string>) {}

  async start(): Promise<void> {
    const child = fork(path.join(__dirname, 'host-child.ts'), [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      env: {
        ...process.env,
        CHAOS_ENV: JSON.stringify(this.env),
        CHAOS_FUNCTION_TIMEOUT_MS: String(FUNCTION_TIMEOUT_MS),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      child.on('message', (m: { ready?: boolean; rss?: number; busy?: number }) => {
        if (m.ready) resolve();
        if (m.rss) this.peakRss = Math.max(this.peakRss, m.rss);
        if (m.busy !== undefined) this.busy = m.busy;
      });
      child.once('exit', (code) => reject(new Error(`the host exited (${code}) before it was ready`)));
    });
  }

  tick(): void {
    if (this.child?.connected) this.child.send({ tick: true });
  }

  /** SIGKILL: no cleanup, wherever its rotations are. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.busy = 0;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.send({ stop: true });
    await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
  }
}

/**
 * Requests per rotation on a fault's route, as the calm cohort of the full profile makes them
 * (504 rotations): Key Vault GETs 1.1 (reads and list pages), PUTs 1, each create endpoint 1/3 (a
 * third of the secrets per kind), queue polls 0.8, queue sends 2 (rotation and notice), lease
 * writes 2, blob writes 8.3 (records, claims, notices, locks).
 */
const PER_ROTATION = {
  kvGet: 1.1,
  kvPut: 1,
  create: 1 / 3,
  queueGet: 0.8,
  queueSend: 2,
  lease: 2,
  blobPut: 8.3,
} as const;

/**
 * The storm's faults, sized to the cohort: most rules serve k, one per 25 rotations. Create endpoints:
 * PAT, SP secret, Entra app secret.
 *
 * Spread (the default): a fault rate, as a flaky dependency has. Each rule serves one in `every`
 * matching requests, so that its faults fall evenly over the first 80 % of the traffic the cohort
 * makes on the route without faults (PER_ROTATION); a storm makes at least as much (retries add).
 * Front (`--faults front`): each rule serves the first matching requests. A burst counted in requests
 * lasts as long as its victims take to make them: 40 Key Vault 429s with Retry-After 1 s, met by the
 * four vaults' list chains one page at a time, throttle every scan for 10 s.
 */
function stormFaults(n: number, spread: boolean): FaultRule[] {
  const k = Math.max(2, Math.round(n / 25));
  const over = (perRotation: number, times: number) =>
    spread ? { every: Math.max(1, Math.floor((0.8 * perRotation * n) / times)) } : {};
  const creates: Pick<FaultRule, 'service' | 'method' | 'route'>[] = [
    { service: 'databricks', method: 'POST', route: '/api/2.0/token/create' },
    {
      service: 'accounts',
      method: 'POST',
      route: '/api/2.0/accounts/:accountId/servicePrincipals/:spId/credentials/secrets',
    },
    { service: 'graph', method: 'POST', route: '/graph/v1.0/:appIdKey/addPassword' },
  ];
  return [
    // Key Vault throttling and store failures (the two PUT rules share the route's traffic).
    {
      service: 'keyvault',
      method: 'GET',
      status: 429,
      retryAfterSeconds: 1,
      times: 2 * k,
      ...over(PER_ROTATION.kvGet, 2 * k),
      body: throttled,
    },
    {
      service: 'keyvault',
      method: 'PUT',
      status: 503,
      times: k,
      ...over(PER_ROTATION.kvPut, 2 * k),
      body: busy,
    },
    { service: 'keyvault', method: 'PUT', lostAnswer: true, times: k, ...over(PER_ROTATION.kvPut, 2 * k) },
    // Every create endpoint: dropped, done-but-answer-lost, slower than the client waits.
    ...creates.flatMap((c): FaultRule[] => [
      { ...c, drop: true, times: k, ...over(PER_ROTATION.create, k) },
      { ...c, lostAnswer: true, times: k, ...over(PER_ROTATION.create, k) },
      { ...c, latencyMs: 17_000, times: 2, ...over(PER_ROTATION.create, 2) },
      { ...c, status: 503, times: k, ...over(PER_ROTATION.create, k) },
    ]),
    // Storage: leases, queue messages, blobs (records), lost answers on queue sends.
    { service: 'blob', route: 'lease', status: 503, times: k, ...over(PER_ROTATION.lease, k) },
    {
      service: 'queue',
      route: 'messages',
      method: 'GET',
      status: 503,
      times: k,
      ...over(PER_ROTATION.queueGet, k),
    },
    {
      service: 'queue',
      route: 'messages',
      method: 'POST',
      lostAnswer: true,
      times: 3,
      ...over(PER_ROTATION.queueSend, 3),
    },
    {
      service: 'blob',
      route: 'blob',
      method: 'PUT',
      status: 500,
      times: k,
      ...over(PER_ROTATION.blobPut, k),
    },
  ];
}
/** Counts per 5 s from t0, a `k` after a bucket in which the host was killed: `41 63 k 12 …`. */
function perFiveSeconds(times: number[], kills: number[], t0: number): string {
  const bucket = (t: number) => Math.max(0, Math.floor((t - t0) / 5_000));
  const counts = new Array<number>(Math.max(...times.map(bucket)) + 1).fill(0);
  for (const t of times) counts[bucket(t)] = (counts[bucket(t)] ?? 0) + 1;
  return counts.map((n, i) => `${n}${kills.some((k) => bucket(k) === i) ? ' k' : ''}`).join(' ');
}
const throttled = { error: { code: 'Throttled', message: 'Too many requests' } };
const busy = { error: { code: 'ServiceUnavailable', message: 'The service is busy' } };

/** Kill points: stores that happened but whose answer is held, creates likewise, then SIGKILL. */
function killFaults(): FaultRule[] {
  return [
    { service: 'keyvault', method: 'PUT', answerDelayMs: 4_000, times: 6 },
    { service: 'databricks', method: 'POST', route: '/api/2.0/token/create', answerDelayMs: 4_000, times: 3 },
    {
      service: 'graph',
      method: 'POST',
      route: '/graph/v1.0/:appIdKey/addPassword',
      answerDelayMs: 4_000,
      times: 3,
    },
  ];
}

/** What each of the storm's rules did, by service and fault: `keyvault GET 429 40/40`, … */
function faultsServed(added: { id: number; rule: FaultRule }[], faults: Faults): string {
  // A rule used up is gone from the list: nothing remains of it.
  const remaining = new Map(faults.list().map((f) => [f.id, f.remaining ?? 0]));
  const totals = new Map<string, { served: number; planned: number }>();
  for (const { id, rule: r } of added) {
    if (r.times === undefined) continue;
    const what =
      r.status ??
      (r.drop
        ? 'drop'
        : r.lostAnswer
          ? 'lost answer'
          : r.latencyMs
            ? `${r.latencyMs / 1000} s late`
            : `answer ${(r.answerDelayMs ?? 0) / 1000} s late`);
    const label = `${r.service ?? '*'}${r.method ? ` ${r.method}` : ''} ${what}`;
    const t = totals.get(label) ?? { served: 0, planned: 0 };
    t.served += r.times - (remaining.get(id) ?? 0);
    t.planned += r.times;
    totals.set(label, t);
  }
  return [...totals].map(([label, t]) => `${label} ${t.served}/${t.planned}`).join(', ');
}

/** Run on the way out, also when the deadline passes: no Azurite or host is left behind. */
const stoppers: (() => Promise<unknown>)[] = [];
let whatIsLeft = () => '';

async function main(): Promise<number> {
  const hardStop = setTimeout(() => {
    console.error(`✗ the storm did not finish within ${profile.deadlineMs / 1000} s. ${whatIsLeft()}`);
    void Promise.race([Promise.allSettled(stoppers.map((f) => f())), sleep(10_000)]).then(() =>
      process.exit(3),
    );
  }, profile.deadlineMs);
  hardStop.unref();

  const [azure, azurite] = await Promise.all([
    LocalAzure.start(),
    startAzurite(path.join(ROOT, '.local', 'azurite-chaos'), { fresh: true }),
  ]);
  stoppers.push(
    () => azurite.stop(),
    () => azure.stop(),
  );
  const point = await startStorageFaultPoint(azurite, azure.servers.faults);
  const tenant = await seedChaosTenant(azure, { ...profile, storage: point.connectionString });
  const settings = parseSettings({ ...tenant.env, AzureWebJobsStorage: azurite.connectionString });
  Object.assign(process.env, {
    IDENTITY_ENDPOINT: tenant.env.IDENTITY_ENDPOINT,
    IDENTITY_HEADER: tenant.env.IDENTITY_HEADER,
  });
  const services = createServices(settings, {
    credential: new ManagedIdentityCredential({ clientId: tenant.env.AZURE_CLIENT_ID }),
  });
  const queues = QueueServiceClient.fromConnectionString(azurite.connectionString);
  const shared = tenant.secrets.filter((s) => s.shared).length;
  log(
    `seeded ${tenant.secrets.length} secrets in ${tenant.vaults.length} vaults (${shared} on shared targets)`,
  );

  /** When the secret's first version stored by the rotator since `since` was created (ms), if any. */
  const rotatedAt = (s: ChaosSecret, since: number) =>
    azure.state.vaults
      .get(s.vault)!
      .secrets.get(s.name)!
      .find((x) => x.tags[TAGS.rotationId] && x.created * 1000 >= since - 1000)?.created;
  const rotatedSince = (cohort: ChaosSecret[], since: number) =>
    cohort.filter((s) => rotatedAt(s, since) !== undefined).length;
  // Every credential id ever seen at the providers: minted = seen − seeded.
  const seen = new Set<string>();
  const sample = () => {
    for (const [t, ids] of providerCredentials(azure, tenant.secrets))
      for (const id of ids) seen.add(`${t}#${id}`);
  };
  sample();
  const seeded = seen.size;
  const seededIds = new Set(seen);
  const sampler = setInterval(sample, 100);
  let peakParentRss = 0;
  const rss = setInterval(() => (peakParentRss = Math.max(peakParentRss, process.memoryUsage().rss)), 250);

  const instance = new Instance(tenant.env);
  stoppers.unshift(() => instance.kill());
  await instance.start();
  log('function app started');

  /** Ticks the timer every profile.tickMs until the cohort is rotated; `during` runs the fault timeline. */
  const phase = async (cohort: ChaosSecret[], during: (t0: number) => Promise<void>) => {
    const t0 = Date.now();
    let lastTick = 0;
    const timeline = during(t0);
    whatIsLeft = () => {
      const left = cohort.filter((s) => rotatedAt(s, t0) === undefined).map((s) => `${s.vault}/${s.name}`);
      return `${left.length} not rotated yet: ${left.slice(0, 10).join(', ')}`;
    };
    while (rotatedSince(cohort, t0) < cohort.length) {
      if (Date.now() - lastTick >= profile.tickMs && !killing) {
        instance.tick();
        lastTick = Date.now();
      }
      await sleep(100);
    }
    const ms = Date.now() - t0;
    await timeline;
    return ms;
  };
  /** The storm's fault rules as added, to count what each served. */
  const added: { id: number; rule: FaultRule }[] = [];
  let killing = false;
  const kills: number[] = [];
  const killAndRestart = async (label: string) => {
    killing = true;
    // Wherever the host is: mid-rotation, mid-scan (a scan request's retry takes back its claims).
    for (const rule of killFaults()) added.push({ id: azure.servers.faults.add(rule), rule });
    await sleep(1_500);
    await instance.kill();
    kills.push(Date.now());
    log(`${label}: host killed (stores and creates answered late were under way)`);
    await sleep(1_000);
    await instance.start();
    log(`${label}: host restarted`);
    killing = false;
  };

  const calm = tenant.secrets.filter((s) => s.cohort === 'calm');
  const storm = tenant.secrets.filter((s) => s.cohort === 'storm');
  const calmMs = await phase(calm, async () => undefined);
  log(`calm: ${calm.length} rotated in ${(calmMs / 1000).toFixed(1)} s`);
  sample();
  const calmCreated = seen.size - seeded;

  tenant.makeStormDue();
  const faults = stormFaults(storm.length, spread);
  // The kills land while the storm's rotations run: once a tenth, then a half of the cohort is stored.
  const stored = async (t0: number, share: number) => {
    while (rotatedSince(storm, t0) < storm.length * share) await sleep(50);
  };
  let stormT0 = 0;
  const stormMs = await phase(storm, async (t0) => {
    stormT0 = t0;
    for (const rule of faults) added.push({ id: azure.servers.faults.add(rule), rule });
    await stored(t0, 0.1);
    await killAndRestart('kill 1');
    await stored(t0, 0.5);
    await killAndRestart('kill 2');
  });
  log(`storm: ${storm.length} rotated in ${(stormMs / 1000).toFixed(1)} s`);
  const served = faultsServed(added, azure.servers.faults);
  azure.servers.faults.clear();

  /** No message visible or invisible on the work queues, nothing running, twice in a row. */
  const quiesce = async (what: string) => {
    let quiet = 0;
    while (quiet < 3) {
      let messages = 0;
      for (const name of [STORAGE.rotationQueue, STORAGE.notificationQueue]) {
        const props = await queues
          .getQueueClient(name)
          .getProperties()
          .catch(() => undefined);
        messages += props?.approximateMessagesCount ?? 0;
      }
      quiet = messages === 0 && instance.busy === 0 ? quiet + 1 : 0;
      await sleep(500);
    }
    log(`quiet (${what})`);
  };
  await quiesce('after the storm');
  // Rotations the host stored and never announced (killed, or an invocation past its timeout) are
  // announced by a scan ANNOUNCE_MISSED_AFTER_MINUTES (1) after the store: wait that long after the
  // last kill and the last version stored. By then, too, no create request of the storm can still be
  // carried out by its provider (IN_FLIGHT_MS), so the reconcile pass can close every one.
  const lastStored = Math.max(
    ...tenant.secrets.map(
      (s) => azure.state.vaults.get(s.vault)!.secrets.get(s.name)!.at(-1)!.created * 1000,
    ),
  );
  const settle = Math.max(settings.ANNOUNCE_MISSED_AFTER_MINUTES * 60_000, IN_FLIGHT_MS);
  const lateAt = Math.max(kills.at(-1) ?? 0, lastStored) + settle + 2_000;
  if (Date.now() < lateAt) await sleep(lateAt - Date.now());
  instance.tick();
  await sleep(1_000);
  await quiesce('after the late-announcement scan');
  // The reconcile pass: one reconcile per secret, through the worker.
  const work = queues.getQueueClient(STORAGE.rotationQueue);
  for (const s of tenant.secrets)
    await work.sendMessage(
      Buffer.from(
        JSON.stringify({ op: 'reconcile', vault: s.vault, secret: s.name, reason: 'chaos' }),
      ).toString('base64'),
    );
  await quiesce('after the reconcile pass');
  clearInterval(sampler);
  sample();
  clearInterval(rss);

  const verdict = await verify(azure, services, tenant.env, tenant.secrets, started, seededIds);
  const poisoned: Record<string, number> = {};
  for (const name of [`${STORAGE.rotationQueue}-poison`, `${STORAGE.notificationQueue}-poison`]) {
    const props = await queues
      .getQueueClient(name)
      .getProperties()
      .catch(() => undefined);
    poisoned[name] = props?.approximateMessagesCount ?? 0;
  }
  await instance.stop();
  await point.stop();
  await azure.stop();
  await azurite.stop();

  const minted = seen.size - seeded;
  const rate = (n: number, ms: number) => n / (ms / 1000);
  const rows: [string, string][] = [
    [
      'profile',
      `${profileName}: ${tenant.secrets.length} secrets, ${tenant.vaults.length} vaults, ${shared} on shared targets, faults ${values.faults}`,
    ],
    ['secrets checked', String(verdict.checked)],
    ['working', String(verdict.working)],
    ['lost', String(verdict.lost.length)],
    ['orphans', String(verdict.orphans.length)],
    ['duplicates', String(verdict.duplicates.length)],
    ['seeded credentials left to owners (not provable, owners told)', String(verdict.leftToOwners)],
    ['grace broken', String(verdict.graceBroken.length)],
    [
      'poisoned',
      Object.entries(poisoned)
        .map(([k, n]) => `${k} ${n}`)
        .join(', '),
    ],
    ['rotations stored', String(verdict.rotations)],
    [
      'announced: missed / more than once',
      `${verdict.missedAnnouncements.length} / ${verdict.doubleAnnouncements.length}`,
    ],
    [
      'notices per outcome',
      Object.entries(verdict.noticesByKind)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none',
    ],
    [
      'rotations/s fault-free (calm cohort)',
      `${rate(calm.length, calmMs).toFixed(2)} (${calm.length} in ${(calmMs / 1000).toFixed(1)} s)`,
    ],
    [
      'rotations/s under faults (storm cohort)',
      `${rate(storm.length, stormMs).toFixed(2)} (${storm.length} in ${(stormMs / 1000).toFixed(1)} s)`,
    ],
    [
      'faulted / fault-free',
      `${((rate(storm.length, stormMs) / rate(calm.length, calmMs)) * 100).toFixed(0)} %`,
    ],
    ['storm faults served (of planned)', served],
    [
      'storm stored per 5 s (k: a kill)',
      perFiveSeconds(
        storm.map((s) => rotatedAt(s, stormT0)! * 1000),
        kills,
        stormT0,
      ),
    ],
    [
      'credentials minted per rotation',
      `${(minted / Math.max(1, verdict.rotations)).toFixed(2)} (calm ${(calmCreated / Math.max(1, calm.length)).toFixed(2)})`,
    ],
    [
      'peak RSS (host / storm)',
      `${(instance.peakRss / 2 ** 20).toFixed(0)} MB / ${(peakParentRss / 2 ** 20).toFixed(0)} MB`,
    ],
    ['wall time', `${((Date.now() - started) / 1000).toFixed(0)} s`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(`\n${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')}`);
  const problems = [
    ...verdict.lost.map((s) => `lost: ${s}`),
    ...verdict.orphans.map((s) => `orphan: ${s}`),
    ...verdict.duplicates.map((s) => `duplicate: ${s}`),
    ...verdict.graceBroken.map((s) => `grace broken: ${s}`),
    ...verdict.missedAnnouncements.map((s) => `never announced: ${s}`),
    ...verdict.doubleAnnouncements.map((s) => `announced more than once: ${s}`),
  ];
  for (const p of problems.slice(0, 30)) console.log(`✗ ${p}`);
  if (problems.length > 30) console.log(`… and ${problems.length - 30} more`);
  console.log(
    problems.length
      ? `\n✗ ${problems.length} problems`
      : '\n✓ no credential lost, no orphan, no duplicate, grace held, every rotation announced once',
  );
  return problems.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.stack : String(e));
    process.exit(1);
  },
);
