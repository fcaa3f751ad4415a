/**
 * The whole service on this machine: `npm start` (= `node local/with-local-ca.mjs tsx local/start.ts`).
 *
 * Starts local Azure (in-process) and Azurite (child process, data in the git-ignored `.local/azurite`),
 * seeds the demo tenant (local/demo.ts), loads the function app's bundle into the local Functions host
 * (local/host), fires one timer tick, waits for the queues to drain and prints what happened. Then it
 * keeps running (timer, Event Grid deliveries, queues) until Ctrl-C / SIGTERM, or stops (`--once`).
 *
 * Options: `--once`, `--interval N` (seconds between timer ticks; default: the SCAN_SCHEDULE),
 * `--port N` (local Azure's main origin), `--seed seed.json` (extra local Azure seed),
 * `--settings local.settings.json` (a real tenant: its Values instead of the demo, no local Azure).
 */
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { createServiceCredential } from '../shared/clients/credential';
import { Vaults } from '../shared/clients/keyvault';
import { parseSettings } from '../shared/config';
import { HANDLED_EVENT_TYPES, STORAGE, TAGS } from '../shared/constants';
import { redactError } from '../shared/redact';
import type { LocalAzure } from './azure';
import {
  CLI_OPTION_SPECS,
  runComponents,
  startLocalAzure,
  toCliOptions,
  type CliOptions,
  type Component,
} from './azure/main';
import { startAzurite } from './azurite';
import { DEMO_TOPIC, seedDemo } from './demo';
import { LocalFunctionHost, type HostLogEntry } from './host/host';
import { removeSession, writeSession } from './session';
import { formatTable, notificationCounts, progressLine, summarize, type SecretSnapshot } from './host/report';

const ROOT = path.resolve(__dirname, '..');
const AZURITE_DIR = path.join(ROOT, '.local', 'azurite');
const LOG_FILE = path.join(ROOT, '.local', 'functions.log');
const USAGE =
  'usage: npm start -- [--once] [--interval SECONDS] [--port N] [--seed seed.json] [--settings local.settings.json]';

interface StartOptions extends CliOptions {
  intervalSeconds?: number;
  settings?: string;
}

function parseStartOptions(argv: string[]): StartOptions {
  const { values } = parseArgs({
    args: argv,
    options: { ...CLI_OPTION_SPECS, interval: { type: 'string' }, settings: { type: 'string' } },
    strict: true,
  });
  const base = toCliOptions(values);
  const interval = values.interval === undefined ? undefined : Number(values.interval);
  if (interval !== undefined && !(Number.isFinite(interval) && interval >= 1))
    throw new Error(`--interval must be a number of seconds (at least 1), not ${values.interval}`);
  if (values.settings !== undefined && (values.port !== undefined || values.seed !== undefined))
    throw new Error('--settings runs against a real tenant; --port and --seed are for local Azure');
  return { ...base, intervalSeconds: interval, settings: values.settings };
}

/** `local.settings.json` Values, as `func start` reads them. */
function readLocalSettings(file: string): Record<string, string> {
  if (!existsSync(file))
    throw new Error(`${file} does not exist (copy local.settings.sample.json and fill it in)`);
  const json = JSON.parse(readFileSync(file, 'utf8')) as {
    IsEncrypted?: boolean;
    Values?: Record<string, unknown>;
  };
  if (json.IsEncrypted) throw new Error(`${file} is encrypted; decrypt it with func settings decrypt`);
  return Object.fromEntries(
    Object.entries(json.Values ?? {})
      .filter(([, v]) => typeof v === 'string' && v !== '')
      .map(([k, v]) => [k, v as string]),
  );
}

/**
 * Empties the service's queues and lock/notice blobs in the local Azurite, so every run starts from
 * the same state (local Azure is in-memory; Azurite keeps its data between runs).
 */
async function clearStorage(connectionString: string): Promise<void> {
  const queues = QueueServiceClient.fromConnectionString(connectionString);
  for (const base of [STORAGE.scanQueue, STORAGE.rotationQueue, STORAGE.notificationQueue]) {
    for (const name of [base, `${base}-poison`]) {
      const queue = queues.getQueueClient(name);
      if (await queue.exists()) await queue.clearMessages();
    }
  }
  const container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient(
    STORAGE.lockContainer,
  );
  if (!(await container.exists())) return;
  for await (const blob of container.listBlobsFlat()) {
    const client = container.getBlobClient(blob.name);
    // A lease left by a run that was killed would block the delete for up to a minute.
    await client
      .getBlobLeaseClient()
      .breakLease(0)
      .catch(() => undefined);
    await client.deleteIfExists();
  }
}

/** Every secret's current version in the configured vaults (list pages: tags and expiry, no values). */
async function snapshot(vaults: Vaults): Promise<SecretSnapshot[]> {
  const out: SecretSnapshot[] = [];
  for (const name of vaults.names()) {
    const vault = vaults.get(name);
    try {
      for await (const p of vault.client.listPropertiesOfSecrets()) {
        out.push({
          vault: vault.name,
          secret: p.name,
          // List pages carry no version id. A version rotated in the same second as the seed has the
          // same creation time, so expiry and the rotation-id tag tell versions apart too.
          version: [p.createdOn?.toISOString(), p.expiresOn?.toISOString(), p.tags?.[TAGS.rotationId]].join(
            '|',
          ),
          kind: p.tags?.[TAGS.kind],
          expiresOn: p.expiresOn,
        });
      }
    } catch (e) {
      console.log(`✗ could not list the secrets of ${name}: ${redactError(e)}`);
    }
  }
  return out;
}

const clip = (s: string, n = 160) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

let options: StartOptions;
try {
  options = parseStartOptions(process.argv.slice(2));
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  console.error(USAGE);
  process.exit(2);
}

let azure: LocalAzure | undefined;
let storage: string | undefined;
let host: LocalFunctionHost | undefined;

async function startStorage(): Promise<Component> {
  const azurite = await startAzurite(AZURITE_DIR);
  storage = azurite.connectionString;
  await clearStorage(storage);
  return {
    name: 'Storage (Azurite)',
    endpoints: [
      ['Azurite blob', azurite.blobUrl],
      ['Azurite queue', azurite.queueUrl],
      ['Azurite data', AZURITE_DIR],
    ],
    stop: () => azurite.stop(),
  };
}

/** The app settings: the demo tenant's, or local.settings.json's Values (with Azurite when it asks for it). */
async function appSettings(): Promise<Record<string, string | undefined>> {
  if (options.settings) {
    const values = readLocalSettings(options.settings);
    if (/^UseDevelopmentStorage=true/i.test(values.AzureWebJobsStorage ?? '') && storage)
      values.AzureWebJobsStorage = storage;
    return values;
  }
  if (!azure || !storage) throw new Error('local Azure and Azurite must start first');
  return (await seedDemo(azure, { storage })).env;
}

async function startFunctions(): Promise<Component> {
  const env = await appSettings();
  const said = new Set<string>();
  const log = createWriteStream(LOG_FILE, { flags: 'w' });
  const write = (e: HostLogEntry) =>
    log.write(`${new Date().toISOString()} ${e.level.padEnd(11)} ${e.functionName ?? 'host'} ${e.message}\n`);
  host = await LocalFunctionHost.start({
    env,
    onLog: write,
    onEvent: (e) => {
      const line = progressLine(e);
      // Every scan repeats its findings; say each once. Changes (✓) and failures always print.
      if (!line || (/^(·|!|✗ bad tags)/.test(line) && said.has(line))) return;
      said.add(line);
      console.log(line);
    },
    onInvocation: (r) => {
      if (r.status === 'failed')
        console.log(`✗ ${r.functionName} failed (${r.reason}): ${clip(r.error ?? '')}`);
    },
  });
  const h = host;
  const subscription = azure?.events.subscribe({
    url: h.eventGridUrl(),
    eventTypes: [...HANDLED_EVENT_TYPES],
  });
  // The operator CLI (`npx kv-rotator`) attaches to this run through the session file.
  writeSession({ pid: process.pid, azureUrl: azure?.url, logFile: LOG_FILE, env });
  const describe = (name: string): string => {
    const r = h.registrations.find((x) => x.metadata.name === name);
    const trigger = Object.values(r?.metadata.bindings ?? {}).find((b) => b.direction === 'in');
    if (trigger?.type === 'timerTrigger')
      return `timer ${h.schedules.get(name)?.expression} (${String(trigger.schedule)})`;
    if (trigger?.type === 'eventGridTrigger')
      return `Event Grid ${h.eventGridUrl(name)}${subscription ? ' (subscribed to the vaults)' : ''}`;
    if (trigger?.type === 'queueTrigger') return `queue ${String(trigger.queueName)}`;
    return trigger?.type ?? 'no trigger';
  };
  return {
    name: options.settings
      ? `Function app (settings from ${options.settings})`
      : 'Function app (demo tenant)',
    endpoints: [
      ...h.registrations.map((r): [string, string] => [r.metadata.name, describe(r.metadata.name)]),
      ['Function logs', LOG_FILE],
    ],
    stop: async () => {
      removeSession(process.pid);
      if (subscription) azure?.events.unsubscribe(subscription);
      await h.stop();
      await new Promise<void>((resolve) => log.end(() => resolve()));
    },
  };
}

/** One cycle: timer tick, queues drained, then the table and where the notifications went. */
async function firstCycle(): Promise<void> {
  const h = host as LocalFunctionHost;
  const settings = parseSettings(process.env);
  const vaults = new Vaults(settings.KEY_VAULT_URIS, createServiceCredential(settings));
  console.log(
    '\nFirst cycle: scanVaults (timer) → scan-requests → scanVault → rotation-requests → rotateSecret → notifications → sendNotifications',
  );
  if (settings.ROTATION_DRY_RUN)
    console.log('ROTATION_DRY_RUN is on: the cycle plans and reports, and changes nothing.');
  const before = await snapshot(vaults);
  const from = h.events.length;
  await h.tick();
  await h.drain();
  await azure?.events.idle();
  const after = await snapshot(vaults);
  const events = h.events.slice(from);

  const rows = summarize(before, after, events);
  console.log(rows.length ? `\n${formatTable(rows)}` : '\nNo secrets could be listed.');

  const counts = notificationCounts(events);
  const channels = Object.keys(counts).sort();
  console.log('\nNotifications');
  if (channels.length === 0) console.log('    none were sent');
  for (const channel of channels) {
    const c = counts[channel] as { sent: number; failed: number };
    let where = '';
    if (azure && (channel === 'teams' || channel === 'webhook'))
      where = ` → webhook sink /sink/${channel}: ${azure.sink.forChannel(channel).length} deliveries recorded`;
    if (azure && channel === 'email') where = ` → mail outbox: ${azure.state.outbox.length} messages`;
    if (azure && channel === 'eventgrid')
      where = ` → topic ${DEMO_TOPIC}: ${azure.topics.events(DEMO_TOPIC).length} events received`;
    console.log(`    ${channel.padEnd(9)} ${c.sent} sent${c.failed ? `, ${c.failed} failed` : ''}${where}`);
  }
  if (azure)
    console.log(
      `Details: GET ${azure.url}/control/sink (?channel=teams|webhook), ${azure.url}/control/outbox and ${azure.url}/control/topics/${DEMO_TOPIC}/events`,
    );
  console.log(`Function logs: ${LOG_FILE}`);

  if (!options.once) {
    h.startTimerLoop(options.intervalSeconds === undefined ? undefined : options.intervalSeconds * 1000);
    console.log(
      options.intervalSeconds === undefined
        ? `\nNext timer tick: ${h.nextScheduled()?.toISOString()} (SCAN_SCHEDULE; --interval N ticks every N seconds)`
        : `\nTimer ticks every ${options.intervalSeconds} s.`,
    );
  }
}

// Start order = print order; stopped in reverse.
const starters: (() => Promise<Component>)[] = [];
if (options.settings) {
  let values: Record<string, string>;
  try {
    values = readLocalSettings(options.settings);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(2);
  }
  // UseDevelopmentStorage=true means Azurite: start one (on free ports) and point the setting at it.
  if (/^UseDevelopmentStorage=true/i.test(values.AzureWebJobsStorage ?? '')) starters.push(startStorage);
} else {
  starters.push(async () => {
    const component = await startLocalAzure(options);
    azure = component.azure;
    return component;
  }, startStorage);
}
starters.push(startFunctions);

void runComponents(starters, { once: options.once, afterStart: firstCycle });
