/**
 * Cold start, child side: a fresh process that starts the local Functions host on the built bundle
 * (as a new instance would) and posts one Key Vault event to its Event Grid webhook, then another.
 * Answers over IPC with milliseconds since this process started (performance.now()).
 */
import { performance } from 'node:perf_hooks';
import { LocalFunctionHost } from '../host/host';

export interface ColdStartResult {
  /** Process start → the host has indexed the functions and listens. */
  hostReadyMs: number;
  /** Process start → the first invocation's response. */
  firstResponseMs: number;
  /** The first invocation alone (request → response): loads the runtime, the SDKs, gets a token. */
  firstInvocationMs: number;
  /** The same invocation again, warm. */
  warmInvocationMs: number;
  statuses: number[];
}

async function post(url: string, event: unknown): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'aeg-event-type': 'Notification' },
    body: JSON.stringify([event]),
  });
  await res.arrayBuffer();
  return { ms: performance.now() - started, status: res.status };
}

async function main(): Promise<void> {
  const { env, event } = JSON.parse(process.env.BENCH_COLD ?? '{}') as {
    env: Record<string, string>;
    event: Record<string, unknown>;
  };
  const host = await LocalFunctionHost.start({ env, build: 'never', listen: false, onLog: () => undefined });
  const hostReadyMs = performance.now();
  try {
    const first = await post(host.eventGridUrl(), { ...event, id: 'cold-1' });
    const firstResponseMs = performance.now();
    const warm = await post(host.eventGridUrl(), { ...event, id: 'cold-2' });
    const answer: ColdStartResult = {
      hostReadyMs: Math.round(hostReadyMs),
      firstResponseMs: Math.round(firstResponseMs),
      firstInvocationMs: Math.round(first.ms),
      warmInvocationMs: Math.round(warm.ms),
      statuses: [first.status, warm.status],
    };
    await new Promise((resolve) => process.send?.(answer, resolve));
  } finally {
    await host.stop();
  }
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
