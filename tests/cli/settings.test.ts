/**
 * `--settings local.settings.json` (the real-tenant path: its Values and DefaultAzureCredential, here
 * pointed at local Azure), invalid settings as doctor's findings, and the progress indicator.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildProgram, type Io } from '../../cli/main';
import { progress } from '../../cli/output';
import { parseSettings } from '../../shared/config';
import { useCliDemo } from './support';

const { demo } = useCliDemo();
const dir = mkdtempSync(path.join(tmpdir(), 'kv-rotator-settings-'));

async function cli(io: Partial<Io>, ...argv: string[]) {
  let out = '';
  let err = '';
  const code = await buildProgram({
    out: (t) => (out += t),
    err: (t) => (err += t),
    progress: () => ({ step: () => undefined, done: () => undefined }),
    open: async (o) => (await import('../../cli/target')).openTarget(o),
    ...io,
  }).run(argv);
  return { code, out, err };
}

test('--settings reads local.settings.json Values and runs with DefaultAzureCredential', async () => {
  const file = path.join(dir, 'local.settings.json');
  const values = Object.fromEntries(Object.entries(demo().env).filter(([, v]) => v !== undefined));
  writeFileSync(file, JSON.stringify({ IsEncrypted: false, Values: values }));
  const r = await cli({}, 'inventory', '--settings', file, '--json');
  const data = JSON.parse(r.out) as { target: string; secrets: unknown[] };
  expect(data.target).toBe('settings');
  expect(data.secrets).toHaveLength(5);
});

test.each([
  [['inventory', '--settings', '/nonexistent/local.settings.json']],
  [['inventory', '--settings', 'x.json', '--embedded']],
])('%j is a usage error (exit 2)', async (argv) => {
  const r = await cli({}, ...argv);
  expect(r.code).toBe(2);
});

test('invalid settings: doctor lists each setting with its fix; other commands stop with exit 1', async () => {
  const open = async () => {
    parseSettings({ KEY_VAULT_URIS: 'http://plain', AZURE_TENANT_ID: 'nope' });
    throw new Error('unreachable');
  };
  const doctor = await cli({ open }, 'doctor');
  expect(doctor.code).toBe(1);
  expect(doctor.out).toMatch(/✗ settings KEY_VAULT_URIS\s+expected https:\/\/ vault URLs/);
  expect(doctor.out).toMatch(
    /✗ settings AZURE_TENANT_ID\s+expected the tenant id \(GUID\)\n\s+fix: set AZURE_TENANT_ID/,
  );
  const inventory = await cli({ open }, 'inventory');
  expect(inventory.code).toBe(1);
  expect(inventory.err).toContain('Invalid configuration');
});

test('the progress indicator draws on a terminal only', () => {
  const writes: string[] = [];
  const tty = { isTTY: true, write: (t: string) => writes.push(t) } as unknown as NodeJS.WriteStream;
  const p = progress(tty);
  p.step('listing the vaults');
  p.done();
  expect(writes[0]).toBe('\r\x1b[2K⠋ listing the vaults');
  expect(writes.at(-1)).toBe('\r\x1b[2K');
  const pipe = {
    isTTY: false,
    write: (t: string) => writes.push(`pipe:${t}`),
  } as unknown as NodeJS.WriteStream;
  progress(pipe).step('x');
  expect(writes.some((w) => w.startsWith('pipe:'))).toBe(false);
});
