import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import { DatabricksClient, type DatabricksClientOptions } from '../../../shared/clients/databricks';
import { PermanentError, ProviderError, isTransient } from '../../../shared/errors';
import { isAllowedOrigin } from '../../../shared/hosts';
import { redactError } from '../../../shared/redact';
import type { FaultRule } from '../../../local/azure/faults';
import { useLocalAzure } from '../../support/localAzure';

/**
 * DatabricksClient (undici, real HTTPS) against the local Databricks workspace and account host:
 * typed errors, retries that honour Retry-After, what is and is not retried, timeouts, the origin
 * allowlist, and redaction of error messages.
 */
const azure = useLocalAzure();

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const USER = 'data-eng@contoso.com';
const IDS = { account: randomUUID(), spApp: randomUUID() } as const;
const CREDENTIALS = {
  pat: `dapi${hex(16)}`,
  otherPat: `dapi${hex(16)}`,
  spSecret: `dose${hex(16)}`,
} as const;
const WS = { main: `ws-client-${hex(3)}`, other: `ws-other-${hex(3)}` } as const;
const ROUTES = {
  list: '/api/2.0/token/list',
  create: '/api/2.0/token/create',
  delete: '/api/2.0/token/delete',
};

let workspace: string;
/** The id of the seeded PAT, which every successful list must show. */
let seededTokenId: string;
let otherWorkspace: string;
let accounts: string;
const clients: DatabricksClient[] = [];

/** A client allowed to talk to the main workspace and the account host only; fast back-off. */
function client(options: Partial<DatabricksClientOptions> = {}): DatabricksClient {
  const allowed = [new URL(workspace).host, new URL(accounts).host];
  const c = new DatabricksClient({
    isAllowedOrigin: (origin) => isAllowedOrigin(origin, allowed),
    baseDelayMs: 10,
    ...options,
  });
  clients.push(c);
  return c;
}

const pat = { bearer: CREDENTIALS.pat };
const listTokens = (c: DatabricksClient) =>
  c.call<{ token_infos: { token_id: string }[] }>(workspace, ROUTES.list, { method: 'GET', auth: pat });
const ids = (res: { token_infos: { token_id: string }[] }) => res.token_infos.map((t) => t.token_id);

/** A fault on the main workspace. */
const fault = (rule: Omit<FaultRule, 'service' | 'instance'>) =>
  azure().servers.faults.add({ service: 'databricks', instance: WS.main, ...rule });
const count = (method: string, route: string) =>
  azure().servers.counts.snapshot()[`databricks/${WS.main} ${method} ${route}`] ?? 0;

/** The rejection of `promise`, which must be a ProviderError. */
async function providerError(promise: Promise<unknown>): Promise<ProviderError> {
  const e = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ProviderError);
  return e as ProviderError;
}

/** Everything a logger could print about the error: message, stack, properties, causes. */
const printed = (e: unknown) =>
  [String(e), (e as Error).stack, inspect(e, { depth: 6 }), redactError(e)].join('\n');

beforeAll(async () => {
  const seed = await azure().seed({
    accounts: [
      {
        accountId: IDS.account,
        servicePrincipals: [{ applicationId: IDS.spApp, secrets: [{ value: CREDENTIALS.spSecret }] }],
      },
    ],
    workspaces: [
      {
        name: WS.main,
        accountId: IDS.account,
        principals: [{ userName: USER }],
        tokens: [{ owner: USER, value: CREDENTIALS.pat }],
      },
      {
        name: WS.other,
        principals: [{ userName: USER }],
        tokens: [{ owner: USER, value: CREDENTIALS.otherPat }],
      },
    ],
  });
  workspace = seed.workspaces[WS.main]!.url;
  seededTokenId = seed.workspaces[WS.main]!.tokenIds[0]!;
  otherWorkspace = seed.workspaces[WS.other]!.url;
  accounts = seed.accountsUrl;
});

beforeEach(() => azure().servers.counts.reset());

afterEach(async () => {
  azure().servers.faults.clear();
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

describe('typed errors', () => {
  test('a string error_code from {error_code, message}', async () => {
    const e = await providerError(
      client().call(workspace, ROUTES.delete, {
        method: 'POST',
        auth: pat,
        json: { token_id: 'no-such-token' },
      }),
    );
    expect(e).toMatchObject({ provider: 'databricks', status: 404, code: 'RESOURCE_DOES_NOT_EXIST' });
    expect(e.message).toBe(
      'POST /api/2.0/token/delete → 404 RESOURCE_DOES_NOT_EXIST: No valid token with ID no-such-token found.',
    );
    expect(e.transient).toBe(false);
    expect(isTransient(e)).toBe(false);
    // A 4xx is an answer, not a hiccup: asked once.
    expect(count('POST', ROUTES.delete)).toBe(1);
  });

  test('a numeric error_code (auth failures) becomes a string code', async () => {
    const wrong = `dapi${hex(16)}`;
    const e = await providerError(
      client().call(workspace, ROUTES.list, { method: 'GET', auth: { bearer: wrong } }),
    );
    expect(e).toMatchObject({ provider: 'databricks', status: 403, transient: false });
    expect(e.message).toContain('Invalid access token.');
    // ProviderError.code is declared `string | undefined`; callers compare it with strings.
    expect(e.code).toBe('403');
  });

  test('an OAuth {error, error_description} from the account token endpoint', async () => {
    const e = await providerError(
      client().call(accounts, `/oidc/accounts/${IDS.account}/v1/token`, {
        method: 'POST',
        auth: { basic: { user: IDS.spApp, password: `dose${hex(16)}` } },
        form: { grant_type: 'client_credentials', scope: 'all-apis' },
      }),
    );
    expect(e).toMatchObject({
      provider: 'databricks',
      status: 401,
      code: 'invalid_client',
      transient: false,
    });
    expect(e.message).toContain('Client authentication failed');
  });

  test('the right Basic credentials get a token through the same path', async () => {
    const res = await client().call<{ access_token: string; token_type: string }>(
      accounts,
      `/oidc/accounts/${IDS.account}/v1/token`,
      {
        method: 'POST',
        auth: { basic: { user: IDS.spApp, password: CREDENTIALS.spSecret } },
        form: { grant_type: 'client_credentials', scope: 'all-apis' },
      },
    );
    expect(res.token_type).toBe('Bearer');
    expect(res.access_token.split('.')).toHaveLength(3);
  });

  test('an error body that is not JSON (a proxy page) keeps its start as the message', async () => {
    fault({
      method: 'GET',
      route: ROUTES.list,
      status: 502,
      body: '<html><body>Bad gateway</body></html>',
      times: 1,
    });
    const e = await providerError(
      client({ maxRetries: 0 }).call(workspace, ROUTES.list, { method: 'GET', auth: pat }),
    );
    expect(e).toMatchObject({ status: 502, code: undefined, transient: true });
    expect(e.message).toContain('Bad gateway');
  });

  test('a 2xx whose body is not JSON is a ProviderError, not a raw SyntaxError', async () => {
    fault({
      method: 'GET',
      route: ROUTES.list,
      status: 200,
      body: '<html>Sign in to continue</html>',
      times: 1,
    });
    const e = await providerError(client().call(workspace, ROUTES.list, { method: 'GET', auth: pat }));
    expect(e.provider).toBe('databricks');
  });
});

describe('retries', () => {
  test.each([429, 503])('%d with Retry-After is retried after that delay', async (status) => {
    fault({
      method: 'GET',
      route: ROUTES.list,
      status,
      retryAfterSeconds: 1,
      body: { error_code: 'REQUEST_LIMIT_EXCEEDED', message: 'Too many requests.' },
      times: 1,
    });
    const started = performance.now();
    const res = await listTokens(client());
    // Timers may fire a hair before the mark by the monotonic clock; no upper bound is asserted.
    expect(performance.now() - started).toBeGreaterThanOrEqual(995);
    expect(ids(res)).toContain(seededTokenId);
    expect(count('GET', ROUTES.list)).toBe(2);
  });

  test('Retry-After as an HTTP date is honoured too', async () => {
    const at = new Date(Date.now() + 2000);
    fault({
      method: 'GET',
      route: ROUTES.list,
      status: 429,
      headers: { 'retry-after': at.toUTCString() },
      times: 1,
    });
    const started = Date.now();
    await listTokens(client());
    // The date has whole seconds, so the wait is at least until that second began.
    expect(Date.now()).toBeGreaterThanOrEqual(Math.floor(at.getTime() / 1000) * 1000 - 5);
    expect(Date.now() - started).toBeGreaterThanOrEqual(995);
    expect(count('GET', ROUTES.list)).toBe(2);
  });

  test('a 429 on a POST is retried (the server did not act on it)', async () => {
    fault({ method: 'POST', route: ROUTES.create, status: 429, retryAfterSeconds: 0, times: 1 });
    const res = await client().call<{ token_value: string }>(workspace, ROUTES.create, {
      method: 'POST',
      auth: pat,
      json: { lifetime_seconds: 3600, comment: 'retry test' },
    });
    expect(res.token_value).toMatch(/^dapi/);
    expect(count('POST', ROUTES.create)).toBe(2);
  });

  test('a Retry-After above maxRetryAfterMs is not waited for', async () => {
    // Waiting 60 s would exceed the test timeout: the answer must come back as a transient error.
    fault({ method: 'GET', route: ROUTES.list, status: 429, retryAfterSeconds: 60, times: 1 });
    const e = await providerError(listTokens(client({ maxRetryAfterMs: 1000 })));
    expect(e).toMatchObject({ status: 429, transient: true });
    expect(isTransient(e)).toBe(true);
    expect(count('GET', ROUTES.list)).toBe(1);
  });

  test('exhausted retries give a transient ProviderError with the last status', async () => {
    fault({
      method: 'GET',
      route: ROUTES.list,
      status: 503,
      retryAfterSeconds: 0,
      body: { error_code: 'TEMPORARILY_UNAVAILABLE', message: 'The service is temporarily unavailable.' },
    });
    const e = await providerError(listTokens(client({ maxRetries: 2 })));
    expect(e).toMatchObject({ status: 503, code: 'TEMPORARILY_UNAVAILABLE', transient: true });
    expect(count('GET', ROUTES.list)).toBe(3);
  });

  test('a 429 without Retry-After backs off and retries', async () => {
    fault({ method: 'GET', route: ROUTES.list, status: 429, times: 2 });
    await listTokens(client({ maxRetries: 2 }));
    expect(count('GET', ROUTES.list)).toBe(3);
  });

  test('a dropped connection on a GET is retried', async () => {
    fault({ method: 'GET', route: ROUTES.list, drop: true, times: 1 });
    const res = await listTokens(client());
    expect(ids(res)).toContain(seededTokenId);
    expect(count('GET', ROUTES.list)).toBe(2);
  });

  test('a dropped connection on a POST create is NOT retried', async () => {
    fault({ method: 'POST', route: ROUTES.create, drop: true, times: 1 });
    const tokensBefore = azure().state.workspaces.get(WS.main)!.tokens.length;
    const e = await providerError(
      client().call(workspace, ROUTES.create, {
        method: 'POST',
        auth: pat,
        json: { lifetime_seconds: 3600 },
      }),
    );
    expect(e).toMatchObject({ status: undefined, transient: true });
    expect(count('POST', ROUTES.create)).toBe(1);
    expect(azure().state.workspaces.get(WS.main)!.tokens).toHaveLength(tokensBefore);
  });

  test('a dropped connection on a POST marked idempotent is retried', async () => {
    fault({ method: 'POST', route: ROUTES.delete, drop: true, times: 1 });
    const created = await client().call<{ token_info: { token_id: string } }>(workspace, ROUTES.create, {
      method: 'POST',
      auth: pat,
      json: { lifetime_seconds: 3600 },
    });
    await client().call(workspace, ROUTES.delete, {
      method: 'POST',
      auth: pat,
      json: { token_id: created.token_info.token_id },
      idempotent: true,
    });
    expect(count('POST', ROUTES.delete)).toBe(2);
    expect(
      azure()
        .state.workspaces.get(WS.main)!
        .tokens.map((t) => t.tokenId),
    ).not.toContain(created.token_info.token_id);
  });

  test('a request timeout is a transient ProviderError', async () => {
    fault({ method: 'GET', route: ROUTES.list, latencyMs: 1500 });
    const e = await providerError(listTokens(client({ requestTimeoutMs: 200, maxRetries: 0 })));
    expect(e).toMatchObject({ status: undefined, transient: true });
    expect(isTransient(e)).toBe(true);
    expect(count('GET', ROUTES.list)).toBe(1);
  });

  test('a timed-out GET is retried', async () => {
    fault({ method: 'GET', route: ROUTES.list, latencyMs: 1500, times: 1 });
    await listTokens(client({ requestTimeoutMs: 200 }));
    expect(count('GET', ROUTES.list)).toBe(2);
  });
});

describe('origin allowlist', () => {
  const total = () => azure().servers.counts.total('databricks') + azure().servers.counts.total('accounts');

  test.each([
    ['a workspace that is not allowlisted', () => [otherWorkspace, ROUTES.list]],
    ['the allowlisted host over http', () => [workspace.replace('https:', 'http:'), ROUTES.list]],
    ['an absolute URL in the path', () => [workspace, `${otherWorkspace}${ROUTES.list}`]],
    ['a protocol-relative path', () => [workspace, `//${new URL(otherWorkspace).host}${ROUTES.list}`]],
    ['a public host', () => ['https://example.com', ROUTES.list]],
  ])('refuses %s before any request is made', async (_name, target) => {
    const [origin, path] = target() as [string, string];
    const e = await client()
      .call(origin, path, { method: 'GET', auth: { bearer: CREDENTIALS.otherPat } })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(e).toBeInstanceOf(PermanentError);
    expect((e as Error).message).toMatch(/Refusing to send a credential to .*not an allowed Databricks host/);
    expect(total()).toBe(0);
  });

  test('a redirect is not followed, so the credential never reaches its Location', async () => {
    fault({
      method: 'GET',
      route: ROUTES.list,
      status: 307,
      headers: { location: `${otherWorkspace}${ROUTES.list}` },
      times: 1,
    });
    const e = await providerError(listTokens(client()));
    expect(e.status).toBe(307);
    expect(azure().servers.counts.total(`databricks/${WS.other}`)).toBe(0);
  });
});

describe('error messages carry no credential', () => {
  test('a token echoed in a JSON error body is redacted', async () => {
    const minted = `dapi${hex(16)}`;
    fault({
      method: 'GET',
      route: ROUTES.list,
      status: 500,
      body: {
        error_code: 'INTERNAL_ERROR',
        message: `Request with Authorization: Bearer ${CREDENTIALS.pat} failed; created ${minted}`,
      },
      times: 1,
    });
    const e = await providerError(listTokens(client({ maxRetries: 0 })));
    expect(e.code).toBe('INTERNAL_ERROR');
    const text = printed(e);
    expect(text).not.toContain(CREDENTIALS.pat);
    expect(text).not.toContain(minted);
  });

  test('a token value in a non-JSON error body is redacted', async () => {
    const minted = `dapi${hex(16)}`;
    const sp = `dose${hex(16)}`;
    fault({
      method: 'POST',
      route: ROUTES.create,
      status: 500,
      body: `upstream said {"token_value":"${minted}","secret":"${sp}"} for Bearer ${CREDENTIALS.pat}`,
      times: 1,
    });
    const e = await providerError(
      client().call(workspace, ROUTES.create, { method: 'POST', auth: pat, json: { lifetime_seconds: 60 } }),
    );
    const text = printed(e);
    for (const credential of [minted, sp, CREDENTIALS.pat]) expect(text).not.toContain(credential);
  });

  test('an OAuth error that echoes the client secret is redacted', async () => {
    const secret = `dose${hex(16)}`;
    azure().servers.faults.add({
      service: 'accounts',
      method: 'POST',
      status: 400,
      body: { error: 'invalid_request', error_description: `client_secret=${secret} is malformed` },
      times: 1,
    });
    const e = await providerError(
      client().call(accounts, `/oidc/accounts/${IDS.account}/v1/token`, {
        method: 'POST',
        auth: { basic: { user: IDS.spApp, password: secret } },
        form: { grant_type: 'client_credentials' },
      }),
    );
    expect(e.code).toBe('invalid_request');
    expect(printed(e)).not.toContain(secret);
    expect(printed(e)).not.toContain(Buffer.from(`${IDS.spApp}:${secret}`).toString('base64'));
  });

  test('network and timeout errors do not carry the bearer token', async () => {
    fault({ method: 'GET', route: ROUTES.list, drop: true });
    const dropped = await providerError(listTokens(client({ maxRetries: 0 })));
    expect(printed(dropped)).not.toContain(CREDENTIALS.pat);
    azure().servers.faults.clear();
    fault({ method: 'GET', route: ROUTES.list, latencyMs: 1500 });
    const timedOut = await providerError(listTokens(client({ requestTimeoutMs: 200, maxRetries: 0 })));
    expect(printed(timedOut)).not.toContain(CREDENTIALS.pat);
  });
});
