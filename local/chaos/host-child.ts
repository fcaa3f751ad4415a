/**
 * One function-app instance for the storm, in a process of its own so the storm can kill it
 * (SIGKILL: no cleanup, rotations cut wherever they are). The app settings come in CHAOS_ENV (JSON);
 * the parent sends `{ tick: true }` for a timer tick and reads `{ rss }` reports and `{ ready }`.
 */
import { appendFileSync } from 'node:fs';
import { LocalFunctionHost } from '../host/host';

const env = JSON.parse(process.env.CHAOS_ENV ?? '{}') as Record<string, string>;
const send = (message: unknown) => process.send?.(message);

async function main(): Promise<void> {
  const host = await LocalFunctionHost.start({
    env,
    // One instance at a time: the first builds the bundle if a source is newer, the others reuse it.
    build: 'auto',
    minPollingIntervalMs: 50,
    functionTimeoutMs: Number(process.env.CHAOS_FUNCTION_TIMEOUT_MS ?? 60_000),
    queues: {
      maxPollingIntervalMs: 500,
      visibilityTimeoutMs: Number(process.env.CHAOS_RETRY_DELAY_MS ?? 2_000),
      // A killed instance's messages come back this long after their last renewal: the real host's
      // 10 minutes, scaled down as the storm scales every other period (retry delay 30 s → 2 s).
      messageLeaseMs: Number(process.env.CHAOS_MESSAGE_LEASE_MS ?? 10_000),
    },
    // CHAOS_LOG names a file for the host's and the functions' log lines (off by default).
    onLog: (e) => {
      if (process.env.CHAOS_LOG)
        appendFileSync(
          process.env.CHAOS_LOG,
          `${new Date().toISOString()} ${e.level} ${e.functionName ?? 'host'} ${e.message}\n`,
        );
    },
    onInvocation: (r) => {
      if (process.env.CHAOS_LOG)
        appendFileSync(
          process.env.CHAOS_LOG,
          `${new Date().toISOString()} invocation ${r.functionName} ${r.status} ${r.durationMs} ms ${r.error ?? ''}\n`,
        );
    },
  });
  process.on('message', (m: { tick?: boolean; stop?: boolean }) => {
    if (m.tick) void host.tick().catch(() => undefined);
    if (m.stop) void host.stop().then(() => process.exit(0));
  });
  setInterval(() => send({ rss: process.memoryUsage().rss, busy: host.busy }), 250).unref();
  send({ ready: true });
}

main().catch((e: unknown) => {
  console.error(`chaos host failed to start: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
