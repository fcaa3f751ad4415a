/**
 * `npx kv-rotator` as people run it: the package's bin, a child process, no build needed; exit codes,
 * and a whole command against an embedded local Azure with the demo tenant.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pkg from '../../package.json';

const exec = promisify(execFile);
const BIN = path.resolve(__dirname, '..', '..', pkg.bin['kv-rotator']);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, ...args], { timeout: 90_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

test('--help exits 0, a usage error exits 2', async () => {
  const help = await cli('--help');
  expect(help.code).toBe(0);
  expect(help.stdout).toContain('Usage: kv-rotator');
  const bad = await cli('inventory', '--no-such-option');
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("error: unknown option '--no-such-option'");
}, 60_000);

test('plan --embedded --json runs against the demo tenant and exits 1 for its bad tag', async () => {
  const r = await cli('plan', '--embedded', '--json');
  expect(r.code).toBe(1);
  const data = JSON.parse(r.stdout) as { work: { op: string }[]; vaults: { vault: string }[] };
  expect(data.work.filter((w) => w.op === 'rotate')).toHaveLength(3);
  expect(data.vaults.map((v) => v.vault).sort()).toEqual(['kv-apps', 'kv-data-platform']);
  // No progress indicator without a terminal.
  expect(r.stderr).not.toMatch(/⠋|\r/);
}, 90_000);
