// Runs a command with the local Azure CA trusted. NODE_EXTRA_CA_CERTS is read once when Node starts,
// so it has to be set for the child process; the CA is generated here on first use.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tsImport } from 'tsx/esm/api';

const { ensureCertificates } = await tsImport('./azure/certs.ts', import.meta.url);
// The same folder as certs.ts's CERT_DIR; passed explicitly because __dirname is not reliable under tsImport.
const CERT_DIR = fileURLToPath(new URL('../.local/certs', import.meta.url));
const certs = ensureCertificates(CERT_DIR);
// Keep whatever the machine already trusts through NODE_EXTRA_CA_CERTS (corporate proxies, registries).
const inherited = process.env.NODE_EXTRA_CA_CERTS;
const bundle = path.join(CERT_DIR, 'trust.pem');
const extra =
  inherited && inherited !== bundle && existsSync(inherited) ? readFileSync(inherited, 'utf8') : '';
writeFileSync(bundle, `${extra}\n${certs.caPem}`);

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error('usage: node local/with-local-ca.mjs <command> [args...]');
  process.exit(2);
}
const child = spawn(command, args, {
  stdio: 'inherit',
  env: { ...process.env, NODE_EXTRA_CA_CERTS: bundle, LOCAL_AZURE_CA: certs.caPath },
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
