import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

/** Azurite's well-known development account (public, documented; not a secret). */
const DEV_ACCOUNT = 'devstoreaccount1';
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteHandle {
  blobUrl: string;
  queueUrl: string;
  /** Connection string for the dev account, as `AzureWebJobsStorage` takes it locally. */
  connectionString: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts Azurite (blob and queue) on free ports, telemetry off, data in `dataDir` (git-ignored;
 * `fresh` empties it first), and resolves once both services listen.
 */
export async function startAzurite(
  dataDir: string,
  options: { fresh?: boolean } = {},
): Promise<AzuriteHandle> {
  if (options.fresh) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const [blobPort, queuePort] = [await freePort(), await freePort()];
  const bin = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'azurite.js');
  const args = [
    bin,
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(blobPort),
    '--queueHost',
    '127.0.0.1',
    '--queuePort',
    String(queuePort),
    '--tableHost',
    '127.0.0.1',
    '--tablePort',
    String(await freePort()),
    '--location',
    dataDir,
    '--disableTelemetry',
    '--skipApiVersionCheck',
    '--loose',
    '--silent',
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  await waitForListening(child, 2);
  const blobUrl = `http://127.0.0.1:${blobPort}/${DEV_ACCOUNT}`;
  const queueUrl = `http://127.0.0.1:${queuePort}/${DEV_ACCOUNT}`;
  return {
    blobUrl,
    queueUrl,
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};AccountKey=${DEV_KEY};` +
      `BlobEndpoint=${blobUrl};QueueEndpoint=${queueUrl};`,
    stop: () => stopChild(child),
  };
}

function waitForListening(child: ChildProcess, services: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    let seen = 0;
    const timer = setTimeout(
      () => reject(new Error(`Azurite did not start within 30 s:\n${output}`)),
      30_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      seen = (output.match(/successfully listening/g) ?? []).length;
      if (seen >= services) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited with code ${code}:\n${output}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
