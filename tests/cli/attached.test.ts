/**
 * The CLI attached to a running service, as to `npm start`: found through a session file, it enqueues
 * rotate / revoke-previous on the service's queue and waits for the outcome by reading the vault; the
 * function app (its real bundle in the local Functions host) does the work with its own identity.
 * Doctor reads the last completed scan per vault from the function log.
 */
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openTarget } from '../../cli/target';
import { HANDLED_EVENT_TYPES, TAGS } from '../../shared/constants';
import { DEMO_SECRETS } from '../../local/demo';
import { LocalFunctionHost } from '../../local/host/host';
import { writeSession } from '../../local/session';
import { useCliDemo } from './support';

const dir = mkdtempSync(path.join(tmpdir(), 'kv-rotator-attached-'));
const sessionFile = path.join(dir, 'session.json');
const logFile = path.join(dir, 'functions.log');
const { azure, demo, run } = useCliDemo({
  open: () => openTarget({ sessionFile }),
});
let host: LocalFunctionHost | undefined;
const current = (vault: string, secret: string) =>
  azure().state.vaults.get(vault)?.secrets.get(secret)?.at(-1);

beforeAll(() => {
  writeSession({ pid: process.pid, azureUrl: azure().url, logFile, env: demo().env }, sessionFile);
  writeFileSync(logFile, '');
});
afterAll(async () => {
  await host?.stop();
});

test('with no function app polling the queue, rotate times out and says so', async () => {
  const r = await run('rotate', `${DEMO_SECRETS.app.vault}/${DEMO_SECRETS.app.name}`, '--timeout', '2');
  expect(r.code).toBe(1);
  expect(r.out).toMatch(
    /no outcome within 2 s; the request stays on rotation-requests .*is the function app running\?/,
  );
});

test('rotate and revoke-previous through the service’s queue; doctor sees its last scans', async () => {
  // The message the timed-out run left is the service's to handle now; this run adds its own.
  host = await LocalFunctionHost.start({
    env: demo().env,
    minPollingIntervalMs: 50,
    queues: { visibilityTimeoutMs: 0 },
    // The same line format npm start writes to .local/functions.log.
    onLog: (e) =>
      appendFileSync(
        logFile,
        `${new Date().toISOString()} ${e.level.padEnd(11)} ${e.functionName ?? 'host'} ${e.message}\n`,
      ),
  });
  const sub = azure().events.subscribe({ url: host.eventGridUrl(), eventTypes: [...HANDLED_EVENT_TYPES] });
  const { vault, name } = DEMO_SECRETS.sp;
  const before = current(vault, name)!.version;
  const r = await run('rotate', `${vault}/${name}`, '--json');
  expect(r.code).toBe(0);
  const now = current(vault, name)!;
  expect(now.version).not.toBe(before);
  expect(JSON.parse(r.out)).toMatchObject({
    status: 'rotated',
    how: 'queue',
    version: now.version,
    credentialId: now.tags[TAGS.credentialId],
    previousCredentialId: demo().credentialIds.sp,
  });
  expect(r.out).not.toContain(now.value);

  // A day later (the engine reads real time, so the grace period's end is moved instead).
  current(vault, name)!.tags[TAGS.revokePreviousAfter] = new Date(Date.now() - 60_000).toISOString();
  const revoked = await run('revoke-previous', `${vault}/${name}`);
  expect(revoked.out).toContain(`✓ ${vault}/${name}: revoked ${demo().credentialIds.sp} by the service`);
  expect(current(vault, name)!.tags[TAGS.previousCredentialId]).toBeUndefined();

  await host.tick();
  await host.drain();
  const doctor = await run('doctor');
  expect(doctor.out).toMatch(new RegExp(`✓ scan ${vault}\\s+last scan completed \\S+ \\(\\d+ secrets\\)`));
  expect(doctor.out).toMatch(new RegExp(`✓ events ${vault}\\s+Event Grid delivers`));
  azure().events.unsubscribe(sub);
}, 120_000);
