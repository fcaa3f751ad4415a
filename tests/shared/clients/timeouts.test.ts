import { setTimeout as sleep } from 'node:timers/promises';
import {
  createHttpHeaders,
  createPipelineRequest,
  type PipelineResponse,
  type SendRequest,
} from '@azure/core-rest-pipeline';
import { timeoutPolicies } from '../../../shared/clients/timeouts';

const CALL_MS = 50;
const [callDeadline] = timeoutPolicies({ requestMs: 1_000, callMs: CALL_MS });

const request = (abortSignal?: AbortSignal) =>
  createPipelineRequest({ url: 'https://vault.example/secrets', abortSignal });
const ok = (r: ReturnType<typeof request>): PipelineResponse => ({
  request: r,
  status: 200,
  headers: createHttpHeaders(),
});

/** A next policy that answers only once the signal it was given aborts, with the abort's reason. */
const hangs: SendRequest = (r) =>
  new Promise((_resolve, reject) => {
    const signal = r.abortSignal as AbortSignal;
    if (signal.aborted) reject(signal.reason as Error);
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });

describe('the call deadline policy', () => {
  test('a call that does not answer is aborted by its deadline, as a TimeoutError', async () => {
    const error = await callDeadline!.policy.sendRequest(request(), hangs).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DOMException);
    expect((error as DOMException).name).toBe('TimeoutError');
  });

  test("the caller's own abort still aborts the call, with the caller's reason", async () => {
    const caller = new AbortController();
    const call = callDeadline!.policy.sendRequest(request(caller.signal), hangs).catch((e: unknown) => e);
    caller.abort(new Error('invocation cancelled'));
    expect(await call).toEqual(new Error('invocation cancelled'));
  });

  test('a caller that aborted before the call starts aborts it at once', async () => {
    const caller = new AbortController();
    caller.abort(new Error('already cancelled'));
    const error = await callDeadline!.policy
      .sendRequest(request(caller.signal), hangs)
      .catch((e: unknown) => e);
    expect(error).toEqual(new Error('already cancelled'));
  });

  test('the deadline ends with the call: once answered, its signal never aborts', async () => {
    let seen: AbortSignal | undefined;
    const response = await callDeadline!.policy.sendRequest(request(), async (r) => {
      seen = r.abortSignal as AbortSignal;
      return ok(r);
    });
    expect(response.status).toBe(200);
    await sleep(CALL_MS * 3);
    expect(seen?.aborted).toBe(false);
  });
});
