/**
 * What the CLI runs against, and the service's own clients for it:
 * - `--settings local.settings.json`: a real tenant (its Values, DefaultAzureCredential);
 * - a running `npm start` on this machine (found through `.local/session.json`): its local Azure,
 *   Azurite and function app, so work is enqueued on the queue its function app polls;
 * - otherwise an embedded local Azure with the demo tenant, started for this one command.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { QueueServiceClient } from '@azure/storage-queue';
import { parseSettings, type Settings } from '../shared/config';
import { createServices, type Services } from '../shared/services';
import type { LocalAzure } from '../local/azure';
import { readSession, SESSION_FILE } from '../local/session';
import { UsageError } from './output';

export type TargetMode = 'settings' | 'attached' | 'embedded';

export interface Target {
  mode: TargetMode;
  /** One line for people: what this command runs against. */
  description: string;
  settings: Settings;
  services: Services;
  queues: QueueServiceClient;
  /** Local Azure's main origin (control API), when the target is local. */
  azureUrl?: string;
  /** The function log of an attached `npm start` (its telemetry lines). */
  logFile?: string;
  /** The embedded local Azure (tests seed extra state through it). */
  azure?: LocalAzure;
  /** True when a deployed (or running) function app processes the rotation queue. */
  serviceRunning: boolean;
  close(): Promise<void>;
}

/** `local.settings.json` Values, as `func start` reads them. */
export function readSettingsFile(file: string): Record<string, string> {
  if (!existsSync(file)) throw new UsageError(`${file} does not exist (copy local.settings.sample.json)`);
  let json: { IsEncrypted?: boolean; Values?: Record<string, unknown> };
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as typeof json;
  } catch (e) {
    throw new UsageError(`${file} is not JSON: ${(e as Error).message}`);
  }
  if (json.IsEncrypted) throw new UsageError(`${file} is encrypted; decrypt it with func settings decrypt`);
  return Object.fromEntries(
    Object.entries(json.Values ?? {}).filter(
      (e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '',
    ),
  );
}

/**
 * Applies app settings to this process (DefaultAzureCredential reads IDENTITY_ENDPOINT and friends
 * from the environment, as in the function app), then wires the service's clients.
 */
/** Closing a target also closes the service's HTTP connections (keep-alive sockets hold a process open). */
function closing(target: Target): Target {
  const close = target.close;
  return {
    ...target,
    close: async () => {
      await target.services.deps.databricks.close();
      await close();
    },
  };
}

function wire(env: Record<string, string | undefined>): Pick<Target, 'settings' | 'services' | 'queues'> {
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  const settings = parseSettings(process.env);
  const services = createServices(settings);
  const queues = settings.AzureWebJobsStorage
    ? QueueServiceClient.fromConnectionString(settings.AzureWebJobsStorage)
    : new QueueServiceClient(settings.AzureWebJobsStorage__queueServiceUri as string, services.credential);
  return { settings, services, queues };
}

export interface TargetOptions {
  settings?: string;
  /** Ignore a running `npm start` and start an embedded local Azure. */
  embedded?: boolean;
  /** Where the session file of a running `npm start` is (tests). */
  sessionFile?: string;
}

export async function openTarget(options: TargetOptions): Promise<Target> {
  if (options.settings) {
    const file = path.resolve(options.settings);
    const env = readSettingsFile(file);
    return closing({
      mode: 'settings',
      description: `tenant ${env.AZURE_TENANT_ID ?? '?'} (settings from ${options.settings})`,
      ...wire(env),
      serviceRunning: true,
      close: async () => undefined,
    });
  }
  const session = options.embedded ? undefined : readSession(options.sessionFile ?? SESSION_FILE);
  if (session) {
    return closing({
      mode: 'attached',
      description: `the running npm start (pid ${session.pid}${session.azureUrl ? `, local Azure ${session.azureUrl}` : ''})`,
      ...wire(session.env),
      azureUrl: session.azureUrl,
      logFile: session.logFile,
      serviceRunning: true,
      close: async () => undefined,
    });
  }
  return startEmbedded();
}

/** Local Azure + Azurite + the demo tenant, for this command only (in-memory: nothing persists). */
async function startEmbedded(): Promise<Target> {
  const [{ LocalAzure }, { ensureCertificates }, { startAzurite }, { seedDemo }] = await Promise.all([
    import('../local/azure'),
    import('../local/azure/certs'),
    import('../local/azurite'),
    import('../local/demo'),
  ]);
  const azure = await LocalAzure.start({ certs: ensureCertificates() });
  const dataDir = path.resolve(__dirname, '..', '.local', `azurite-cli-${process.pid}`);
  const azurite = await startAzurite(dataDir, { fresh: true }).catch(async (e: unknown) => {
    await azure.stop();
    throw e;
  });
  const demo = await seedDemo(azure, { storage: azurite.connectionString });
  return embeddedTarget(azure, demo.env, async () => {
    await azurite.stop();
    await azure.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
}

/** A target over a local Azure this process runs (the embedded demo, or a test's). */
export function embeddedTarget(
  azure: LocalAzure,
  env: Record<string, string | undefined>,
  stop: () => Promise<void> = async () => undefined,
): Target {
  return closing({
    mode: 'embedded',
    description: `an embedded local Azure with the demo tenant (${azure.url}); start \`npm start\` to keep state between commands`,
    ...wire(env),
    azureUrl: azure.url,
    azure,
    serviceRunning: false,
    close: stop,
  });
}
