/**
 * `npm run bicep` (local/bicep.mjs) fails on any compiler error or warning, and when no compiler can be
 * found at all; it passes on infra/main.bicep.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from './bicep';

// A compile is real work for the compiler (about 15 s on a busy two-core machine).
jest.setTimeout(120_000);

function bicepScript(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'local', 'bicep.mjs'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env,
  });
  return { status: r.status, stderr: r.stderr };
}

test('infra/main.bicep builds and lints with no error and no warning', () => {
  const r = bicepScript([]);
  expect(r.stderr).not.toMatch(/FAILED/);
  expect(r.status).toBe(0);
});

test('a single linter warning fails the run', () => {
  const r = bicepScript(['--file', 'tests/infra/fixtures/warning.bicep']);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/Warning no-unused-params/);
  expect(r.stderr).toMatch(/bicep lint: 0 error\(s\), 1 warning\(s\)/);
  expect(r.stderr).toMatch(/FAILED/);
});

test('a compile error fails the run', () => {
  const r = bicepScript(['--file', 'tests/infra/fixtures/error.bicep']);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/bicep build: 1 error\(s\), 0 warning\(s\)/);
});

test('no compiler (no bicep, no az, no dotnet) fails the run and says how to get one', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'no-bicep-'));
  try {
    // A PATH with node only; an empty home and cache, so nothing restored before is found.
    symlinkSync(process.execPath, path.join(dir, 'node'));
    const r = bicepScript([], { PATH: dir, HOME: dir, XDG_CACHE_HOME: dir });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no Bicep compiler: install the Bicep CLI/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
