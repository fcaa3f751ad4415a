import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { request } from 'undici';

const ROOT = path.resolve(__dirname, '..', '..');

/** Runs `local/start.ts` with this process's env (which trusts the local CA, see with-local-ca.mjs). */
function startStack(command: string, args: string[]): { child: ChildProcess; output: () => string } {
  let output = '';
  const child = spawn(command, args, { cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  return { child, output: () => output };
}

const exited = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );

/** `label  value` pairs from the printed endpoint lines. */
function endpoints(output: string): Record<string, string> {
  const lines = output.split('\n').filter((l) => /^ {2}\S/.test(l));
  return Object.fromEntries(
    lines.map((l) => /^ {2}(.+?) {2,}(.+)$/.exec(l)!.slice(1, 3) as [string, string]),
  );
}

const EXPECTED_LABELS = [
  'Entra authority',
  'Managed identity',
  'Graph',
  'Databricks accounts',
  'Control API',
  'Webhook sink',
  'CA certificate',
  'Azurite blob',
  'Azurite queue',
];

test('npx tsx local/start.ts --once prints every endpoint, aligned, and exits 0', async () => {
  const { child, output } = startStack('npx', ['tsx', 'local/start.ts', '--once']);
  const { code } = await exited(child);
  expect({ code, output: output() }).toMatchObject({ code: 0 });

  const found = endpoints(output());
  for (const label of EXPECTED_LABELS) expect(found[label]).toBeDefined();
  expect(found['Entra authority']).toMatch(/^https:\/\/localhost:\d+ {2}\(tenant [0-9a-f-]{36}\)$/);
  expect(found['Managed identity']).toMatch(/^https:\/\/localhost:\d+\/msi\/token/);
  expect(found['Graph']).toMatch(/^https:\/\/localhost:\d+\/graph$/);
  expect(found['Control API']).toMatch(/^https:\/\/localhost:\d+\/control$/);
  expect(found['Azurite queue']).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1$/);
  expect(found['CA certificate']).toMatch(/ca\.pem$/);
  // Values start in the same column on every line (for people, not JSON).
  const columns = output()
    .split('\n')
    .filter((l) => /^ {2}\S/.test(l))
    .map((l) => /^( {2}.+? {2,})\S/.exec(l)![1]!.length);
  expect(new Set(columns).size).toBe(1);
  expect(output()).not.toMatch(/AccountKey|\{\s*"/);
}, 90_000);

test('the stack serves until SIGTERM, then stops both services and exits 0', async () => {
  // node --import tsx: one process, so the signal reaches start.ts itself.
  const { child, output } = startStack(process.execPath, ['--import', 'tsx', 'local/start.ts']);
  const deadline = Date.now() + 60_000;
  while (!output().includes('Ctrl-C stops') && child.exitCode === null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(output()).toContain('Ctrl-C stops');
  const found = endpoints(output());

  const state = await request(`${found['Control API']}/state`);
  expect(state.statusCode).toBe(200);
  await state.body.dump();
  const queues = await request(`${found['Azurite queue']}?comp=list`);
  expect(queues.statusCode).toBeLessThan(500); // Azurite answers (403 without a signature)
  await queues.body.dump();

  const exit = exited(child);
  child.kill('SIGTERM');
  expect(await exit).toEqual({ code: 0, signal: null });
  expect(output()).toContain('Stopped.');
  await expect(request(`${found['Control API']}/state`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  await expect(request(`${found['Azurite queue']}?comp=list`)).rejects.toMatchObject({
    code: 'ECONNREFUSED',
  });
}, 90_000);
