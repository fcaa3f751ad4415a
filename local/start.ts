/**
 * The whole local stack for development: `npm start` (= `node local/with-local-ca.mjs tsx local/start.ts`).
 * Local Azure in-process and Azurite as a child process (data in the git-ignored `.local/azurite`);
 * prints the endpoints and runs until Ctrl-C / SIGTERM. Options: `--port N` (local Azure's main origin),
 * `--seed seed.json`, `--once` (start, print, stop).
 */
import path from 'node:path';
import { startAzurite } from './azurite';
import { parseCliOptions, runComponents, startLocalAzure, type Component } from './azure/main';

const AZURITE_DIR = path.resolve(__dirname, '..', '.local', 'azurite');

async function startStorage(): Promise<Component> {
  const azurite = await startAzurite(AZURITE_DIR);
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

let options: ReturnType<typeof parseCliOptions>;
try {
  options = parseCliOptions(process.argv.slice(2));
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  console.error('usage: npm start -- [--port N] [--seed seed.json] [--once]');
  process.exit(2);
}

// Start order = print order; stopped in reverse. The function host joins this list later.
void runComponents([() => startLocalAzure(options), startStorage], options);
