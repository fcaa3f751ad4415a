/**
 * Part 4: a simulated tenant at scale. 1,000 vaults × 1,000 secrets (5 % due), Key Vault latency
 * injected and Key Vault's documented limits on. The fan-out's vault scans run in worker processes
 * at the host's concurrency (host.json batchSize + newBatchThreshold per worker), against one vault at
 * a time (measured on a sample of the identical vaults, scaled to all). Meanwhile the rotation worker
 * rotates real PATs in some of the same vaults, sharing their limits; its throughput is compared with
 * the same number of rotations while no scan runs.
 *
 * The seeded secrets are stored compactly: the versions of a vault share their tag objects, version id
 * and value (the scan reads tags and expiry only), so a million fit in this process.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { SecretVersion, Vault } from '../azure/state';
import { parseSettings } from '../../shared/config';
import { createServices } from '../../shared/services';
import { runScanWorkers, type ChildResult } from './child';
import { createVaults, DAY_SECONDS, settingsEnv, vaultNames, version, type BenchEnv } from './fixtures';
import { atMost } from './pool';
import { hostConcurrency } from './rotate';
import { expectedListRequests, PAGE_SIZE } from './scan';

const WORKSPACE = 'tenant-ws';
const OWNER = 'tenant@contoso.com';
/** The share of each vault's secrets that is due (5 %), opted in with valid tags. */
const DUE_EVERY = 20;

export interface TenantPlan {
  vaults: number;
  secretsPerVault: number;
  latencyMs: number;
  workers: number;
  /** Vaults the one-at-a-time baseline scans; its time is scaled to all vaults. */
  baselineSample: number;
  /** Rotations per phase (alone, then during the scan). */
  rotations: number;
}

export interface TenantRun extends TenantPlan {
  secrets: number;
  due: number;
  seedMs: number;
  /** Emulator heap per seeded secret (bytes). */
  bytesPerSecret: number;
  concurrencyPerWorker: number;
  /** List requests answered (not refused with a 429). */
  listRequests: number;
  /** List requests refused with a 429 and sent again. */
  listRequestsThrottled: number;
  expectedListRequests: number;
  /** Each vault's pages in sequence × latency, vaults in parallel across workers × concurrency. */
  floorMs: number;
  fanOut: {
    ms: number;
    /** CPU of this process (the emulator and the rotation worker) during the fan-out. */
    emulatorCpuMs: number;
    planned: number;
    due: number;
    errors: string[];
    workers: Pick<ChildResult, 'ms' | 'peakRss' | 'maxRss' | 'cpuMs' | 'scanned'>[];
  };
  oneAtATime: { sampleVaults: number; sampleMs: number; scaledMs: number };
  throttled: { vault: number; subscription: number };
  rotation: {
    alone: RotationPhase;
    duringScan: RotationPhase;
  };
}

interface RotationPhase {
  items: number;
  rotated: number;
  failed: number;
  /** The first failure's step and reason (none when every rotation succeeded). */
  firstFailure?: string;
  ms: number;
  perSecond: number;
}

/** The tags of one vault's secrets: a few shared objects, not one per secret. */
function tagSets(host: string): Record<string, string>[] {
  return [
    { owner: 'team-a', env: 'prod' },
    {},
    {
      'rotation-kind': 'databricks-pat',
      'databricks-host': host,
      'credential-id': randomBytes(16).toString('hex'),
      owner: 'data-platform',
    },
  ];
}

function seedTenant(vaults: readonly Vault[], perVault: number, now: number, host: string): number {
  let due = 0;
  const emitted = { nearExpiry: true, expired: true };
  for (const vault of vaults) {
    const [plain, none, optedIn] = tagSets(host) as [
      Record<string, string>,
      Record<string, string>,
      Record<string, string>,
    ];
    // A version id is unique per secret, not per vault: one string serves every seeded secret here.
    const versionId = randomBytes(16).toString('hex');
    const later = now + 400 * DAY_SECONDS;
    const soon = now + 10 * DAY_SECONDS;
    for (let i = 0; i < perVault; i++) {
      const isDue = i % DUE_EVERY === 0;
      const v: SecretVersion = {
        version: versionId,
        value: 'seeded',
        enabled: true,
        exp: isDue ? soon : i % 3 === 0 ? undefined : later,
        created: now,
        updated: now,
        tags: isDue ? optedIn : i % 2 === 0 ? plain : none,
        emitted,
      };
      vault.secrets.set(`s-${String(i).padStart(6, '0')}`, [v]);
      if (isDue) due++;
    }
  }
  return due;
}

/** Rotates `items` through the engine with the host's concurrency; counts what happened. */
async function rotateAll(
  engine: ReturnType<typeof createServices>['engine'],
  items: { vault: string; secret: string }[],
  concurrency: number,
): Promise<RotationPhase> {
  let rotated = 0;
  let failed = 0;
  let firstFailure: string | undefined;
  const started = performance.now();
  await atMost(concurrency, items, async (item) => {
    const { outcome } = await engine.rotate(item);
    if (outcome.status === 'rotated') rotated++;
    else {
      failed++;
      firstFailure ??= outcome.status === 'failed' ? `${outcome.step}: ${outcome.reason}` : outcome.status;
    }
  });
  const ms = performance.now() - started;
  return {
    items: items.length,
    rotated,
    failed,
    ...(firstFailure ? { firstFailure } : {}),
    ms: Math.round(ms),
    perSecond: Number(((rotated * 1000) / ms).toFixed(1)),
  };
}

export async function benchTenant(env: BenchEnv, plan: TenantPlan): Promise<TenantRun> {
  const { azure } = env;
  const heapBefore = process.memoryUsage().heapUsed;
  const seedStarted = performance.now();
  const vaults = await createVaults(env, vaultNames('tenant', plan.vaults));
  // Real PATs for the rotation phases, in the first vaults (which the scan also reads).
  const pats = Array.from({ length: 2 * plan.rotations }, () => `dapi${randomBytes(16).toString('hex')}`);
  const seed = await azure.seed({
    workspaces: [
      {
        name: WORKSPACE,
        principals: [{ userName: OWNER }],
        tokens: pats.map((value) => ({ owner: OWNER, value })),
      },
    ],
  });
  const ws = seed.workspaces[WORKSPACE];
  if (!ws) throw new Error('the tenant workspace was not seeded');
  const host = new URL(ws.url).host;
  const now = azure.clock.nowSeconds();
  const due = seedTenant(vaults, plan.secretsPerVault, now, host);
  const rotatable = pats.map((value, i) => {
    const vault = vaults[i % Math.min(4, vaults.length)] as Vault;
    const secret = `pat-${String(i).padStart(4, '0')}`;
    const tags = {
      'rotation-kind': 'databricks-pat',
      'databricks-host': host,
      'credential-id': ws.tokenIds[i] ?? '',
    };
    vault.secrets.set(secret, [version(value, tags, now + 20 * DAY_SECONDS, now)]);
    return { vault: vault.name, secret };
  });
  const seedMs = Math.round(performance.now() - seedStarted);
  global.gc?.();
  const bytesPerSecret = Math.round(
    (process.memoryUsage().heapUsed - heapBefore) / (plan.vaults * plan.secretsPerVault),
  );

  const settings = { ...settingsEnv(env, vaults, { DATABRICKS_ALLOWED_HOSTS: host }), ...env.identityEnv };
  const { concurrency } = hostConcurrency();
  const { engine } = createServices(parseSettings(settings), { credential: env.credential });
  const { servers } = azure;
  servers.faults.add({ service: 'keyvault', latencyMs: plan.latencyMs });
  try {
    // Rotations while nothing else runs: the baseline of the rotation queue's throughput.
    const alone = await rotateAll(engine, rotatable.slice(0, plan.rotations), concurrency);

    const sizes = vaults.map((v) => v.secrets.size);
    const throttledBefore = { ...azure.keyVaultThrottle.refused };
    // List requests answered: those refused with a 429 (the documented limits) were sent again.
    const countLists = () => {
      const counts = servers.counts.snapshot();
      const refused = servers.counts.throttledSnapshot();
      const sum = (of: Record<string, number>) =>
        vaults.reduce((n, v) => n + (of[`keyvault/${v.name} GET /secrets`] ?? 0), 0);
      return { answered: sum(counts) - sum(refused), refused: sum(refused) };
    };
    let rotating: Promise<RotationPhase> | undefined;
    const fanOut = await runScanWorkers(
      env,
      // Peak RSS per worker is the kernel's high-water mark (maxRSS): sampling would cost CPU.
      { settings, mode: 'scan', concurrency },
      plan.workers,
      () => {
        servers.counts.reset();
        // The rotation worker starts with the scan, on the same vaults' budgets.
        rotating = rotateAll(engine, rotatable.slice(plan.rotations), concurrency);
      },
    );
    const lists = countLists();
    const duringScan = await (rotating as Promise<RotationPhase>);
    const throttled = {
      vault: azure.keyVaultThrottle.refused.vault - throttledBefore.vault,
      subscription: azure.keyVaultThrottle.refused.subscription - throttledBefore.subscription,
    };

    // One vault at a time, one worker, on a sample of the (identical) vaults.
    const sample = vaults.slice(-plan.baselineSample);
    const baseline = await runScanWorkers(
      env,
      { settings: settingsEnv(env, sample), mode: 'scan', concurrency: 1 },
      1,
    );

    const pagesPerVault = Math.max(...sizes.map((n) => Math.max(1, Math.ceil(n / PAGE_SIZE))));
    const slots = plan.workers * concurrency;
    return {
      ...plan,
      secrets: plan.vaults * plan.secretsPerVault,
      due,
      seedMs,
      bytesPerSecret,
      concurrencyPerWorker: concurrency,
      listRequests: lists.answered,
      listRequestsThrottled: lists.refused,
      expectedListRequests: expectedListRequests(sizes),
      floorMs: Math.ceil(plan.vaults / slots) * pagesPerVault * plan.latencyMs,
      fanOut: {
        ms: fanOut.wallMs,
        emulatorCpuMs: fanOut.parentCpuMs,
        planned: fanOut.workItems,
        due: fanOut.due,
        errors: fanOut.errors.slice(0, 5),
        workers: fanOut.workers.map((w) => ({
          ms: w.ms,
          peakRss: w.peakRss,
          maxRss: w.maxRss,
          cpuMs: w.cpuMs,
          scanned: w.scanned,
        })),
      },
      oneAtATime: {
        sampleVaults: sample.length,
        sampleMs: baseline.wallMs,
        scaledMs: Math.round((baseline.wallMs * plan.vaults) / sample.length),
      },
      throttled,
      rotation: { alone, duringScan },
    };
  } finally {
    servers.faults.clear();
    for (const v of vaults) v.secrets.clear();
  }
}
