#!/usr/bin/env node
// `npx kv-rotator <command>`: runs cli/main.ts with tsx (no build needed), with the local Azure CA
// trusted (NODE_EXTRA_CA_CERTS is read once at start, so the CLI runs as a child process).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const withLocalCa = fileURLToPath(new URL('../local/with-local-ca.mjs', import.meta.url));
const main = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const tsx = import.meta.resolve('tsx');
const child = spawn(
  process.execPath,
  [withLocalCa, process.execPath, '--import', tsx, main, ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
