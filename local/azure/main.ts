/**
 * Local Azure on its own: `tsx local/azure/main.ts [--port 8443] [--seed seed.json] [--once]`
 * (run it through `node local/with-local-ca.mjs` so clients in the same shell trust its CA).
 * Also the small process runner that `local/start.ts` uses for the whole local stack.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ensureCertificates } from './certs';
import { HttpError } from './http';
import { LocalAzure } from './index';
import { IDENTITY_HEADER } from './services/entra';
import { seedSchema, type Seed } from './state';

export type Endpoint = [label: string, value: string];

/** One part of the local stack: started in order, stopped in reverse order. */
export interface Component {
  name: string;
  endpoints: Endpoint[];
  stop(): Promise<void>;
}

export interface CliOptions {
  port?: number;
  seed?: string;
  /** Start, print the endpoints, stop: for tests and scripts. */
  once: boolean;
}

/** The options of local Azure's command line; `npm start` takes these and adds its own. */
export const CLI_OPTION_SPECS = {
  port: { type: 'string' },
  seed: { type: 'string' },
  once: { type: 'boolean', default: false },
} as const;

/** Validates the parsed values of CLI_OPTION_SPECS. */
export function toCliOptions(values: { port?: string; seed?: string; once?: boolean }): CliOptions {
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new Error(`--port must be a port number (0-65535), not ${values.port}`);
  }
  return { port, seed: values.seed, once: values.once ?? false };
}

export function parseCliOptions(argv: string[]): CliOptions {
  return toCliOptions(parseArgs({ args: argv, options: CLI_OPTION_SPECS, strict: true }).values);
}

/** Reads and validates a seed file; errors name the file and the offending field. */
export function loadSeedFile(file: string): Seed {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read seed ${file}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const result = seedSchema.safeParse(raw);
  if (!result.success) throw new Error(`invalid seed ${file}:\n${z.prettifyError(result.error)}`);
  return result.data;
}

/** Starts local Azure (and seeds it) as a component of the local stack; `azure` is the running instance. */
export async function startLocalAzure(options: {
  port?: number;
  seed?: string;
}): Promise<Component & { azure: LocalAzure }> {
  const seed = options.seed === undefined ? undefined : loadSeedFile(options.seed);
  const certs = ensureCertificates();
  const azure = await LocalAzure.start({ port: options.port, certs });
  try {
    if (seed) await azure.seed(seed);
  } catch (e) {
    await azure.stop();
    // applySeed reports cross-reference problems as the control API's 400 body.
    const body = e instanceof HttpError ? (e.body as { error?: { message?: string } }) : undefined;
    throw new Error(`seed ${options.seed} was not applied: ${body?.error?.message ?? String(e)}`, {
      cause: e,
    });
  }
  const endpoints: Endpoint[] = [
    ['Entra authority', `${azure.authorityHost}  (tenant ${azure.state.tenantId})`],
    ['Managed identity', `${azure.identityEndpoint}  (X-IDENTITY-HEADER: ${IDENTITY_HEADER})`],
    ['Graph', azure.graphUrl],
    ['Databricks accounts', azure.accountsUrl],
    ...[...azure.state.vaults.values()].map((v): Endpoint => [`Key Vault ${v.name}`, v.url]),
    ...[...azure.state.workspaces.values()].map((w): Endpoint => [`Databricks ${w.name}`, w.url]),
    ['Control API', `${azure.url}/control`],
    ['Webhook sink', `${azure.url}/sink/{channel}`],
    ['CA certificate', certs.caPath],
  ];
  return { name: 'Local Azure', endpoints, stop: () => azure.stop(), azure };
}

/** Aligned `label  value` lines under each component's name, for people (not JSON). */
export function formatEndpoints(components: Component[]): string {
  const width = Math.max(...components.flatMap((c) => c.endpoints.map(([label]) => label.length)));
  return components
    .map((c) =>
      [c.name, ...c.endpoints.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`)].join('\n'),
    )
    .join('\n\n');
}

/**
 * Starts the components in order and prints their endpoints; runs `afterStart` (e.g. a first cycle of
 * the function app); then either stops at once (`once`) or waits for SIGINT/SIGTERM. Stops in reverse
 * order and exits 0; a failed start (or afterStart) stops what started and exits 1.
 */
export async function runComponents(
  starters: (() => Promise<Component>)[],
  options: { once: boolean; afterStart?: () => Promise<void> },
): Promise<void> {
  const started: Component[] = [];
  const stopAll = async () => {
    for (const c of [...started].reverse()) {
      await c.stop().catch((e: unknown) => console.error(`stopping ${c.name} failed: ${String(e)}`));
    }
  };
  try {
    for (const start of starters) started.push(await start());
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    await stopAll();
    process.exit(1);
  }

  console.log(formatEndpoints(started));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // A terminal Ctrl-C reaches this process twice (directly and forwarded by with-local-ca.mjs).
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping…`);
    void stopAll().then(() => {
      console.log('Stopped.');
      process.exit(0);
    });
  };
  // Installed before afterStart, so Ctrl-C during a first cycle also stops everything cleanly.
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await options.afterStart?.();
  } catch (e) {
    if (stopping) return;
    stopping = true;
    console.error(e instanceof Error ? e.message : String(e));
    await stopAll();
    process.exit(1);
  }
  if (stopping) return;
  if (options.once) {
    stopping = true;
    await stopAll();
    console.log('\nStopped.');
    process.exit(0);
  }
  console.log('\nRunning. Ctrl-C stops.');
}

async function main(): Promise<void> {
  let options: CliOptions;
  try {
    options = parseCliOptions(process.argv.slice(2));
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    console.error('usage: tsx local/azure/main.ts [--port N] [--seed seed.json] [--once]');
    process.exit(2);
  }
  await runComponents([() => startLocalAzure(options)], options);
}

if (require.main === module) void main();
