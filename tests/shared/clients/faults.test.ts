import { performance } from 'node:perf_hooks';
import { SecretClient } from '@azure/keyvault-secrets';
import { keyVaultClientOptions } from '../../../shared/clients/keyvault';
import { createGraphApi, type GraphApi } from '../../../shared/clients/graph';
import { DatabricksClient } from '../../../shared/clients/databricks';
import { isTransient, PermanentError, ProviderError, TransientError } from '../../../shared/errors';
import { useLocalAzure } from '../../support/localAzure';
import { SECRETS, seedTenant, type Tenant } from '../../support/tenant';

/**
 * What each client makes of a fault, against local Azure over HTTPS: no answer is transient, a slow
 * answer times out within the call's deadline, an error answer without a body keeps its status.
 */
const azure = useLocalAzure();
let tenant: Tenant;

const KV_LIMITS = { requestMs: 300, callMs: 1_500, maxRetries: 2, maxRetryDelayMs: 50 };
const GRAPH_LIMITS = { connectMs: 500, requestMs: 300, callMs: 1_500 };

beforeAll(async () => {
  tenant = await seedTenant(azure());
});
afterEach(() => azure().servers.faults.clear());

async function failure(work: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  try {
    await work;
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
  throw new Error('expected the call to fail');
}

describe('isTransient classifies deliberately', () => {
  it.each([
    ['a network error code', true, Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
    ['an undici timeout', true, Object.assign(new Error('timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' })],
    [
      'a network error as the cause',
      true,
      new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }),
    ],
    ['an abort by a deadline', true, new DOMException('The operation timed out.', 'TimeoutError')],
    ['an aborted call', true, new DOMException('This operation was aborted', 'AbortError')],
    ['an SDK error answer 503', true, Object.assign(new Error('busy'), { statusCode: 503 })],
    ['an SDK error answer 429', true, Object.assign(new Error('slow down'), { statusCode: 429 })],
    ['an SDK error answer 403', false, Object.assign(new Error('denied'), { statusCode: 403 })],
    ['a bug (TypeError)', false, new TypeError("Cannot read properties of undefined (reading 'x')")],
    ['an unknown error', false, new Error('something else')],
    ['a thrown string', false, 'oops'],
    ['TransientError', true, new TransientError('later')],
    ['PermanentError', false, new PermanentError('never')],
    ['a provider error without an answer', true, new ProviderError('graph', undefined, undefined, 'x')],
    ['a provider 404', false, new ProviderError('graph', 404, 'NotFound', 'x')],
  ])('%s → transient: %s', (_what, expected, error) => {
    expect(isTransient(error)).toBe(expected);
  });
});

describe('Key Vault client', () => {
  const client = () =>
    new SecretClient(tenant.vaultUrl, tenant.credential, {
      disableChallengeResourceVerification: true,
      ...keyVaultClientOptions(KV_LIMITS),
    });

  it.each([503, 404, 403, 400])(
    'an error answer %i without a body keeps its status and says so',
    async (status) => {
      azure().servers.faults.add({ service: 'keyvault', instance: tenant.vaultName, method: 'GET', status });
      const { error } = await failure(client().getSecret(SECRETS.pat));
      expect(error).not.toBeInstanceOf(TypeError);
      expect(error).toMatchObject({ statusCode: status });
      expect(String((error as Error).message)).toMatch(
        new RegExp(`Key Vault answered GET /secrets/${SECRETS.pat}/? with ${status} and no body`),
      );
      expect(isTransient(error)).toBe(status >= 500);
    },
  );

  it('an error answer with a body is the service error as before', async () => {
    azure().servers.faults.add({
      service: 'keyvault',
      instance: tenant.vaultName,
      method: 'GET',
      status: 409,
      body: { error: { code: 'Conflict', message: 'busy elsewhere' } },
    });
    const { error } = await failure(client().getSecret(SECRETS.pat));
    expect(error).toMatchObject({ statusCode: 409, code: 'Conflict', message: 'busy elsewhere' });
  });

  it('a dropped connection is transient', async () => {
    azure().servers.faults.add({
      service: 'keyvault',
      instance: tenant.vaultName,
      method: 'GET',
      drop: true,
    });
    const { error } = await failure(client().getSecret(SECRETS.pat));
    expect(isTransient(error)).toBe(true);
  });

  it('a hung request times out per attempt and the call ends by its deadline', async () => {
    azure().servers.faults.add({
      service: 'keyvault',
      instance: tenant.vaultName,
      method: 'GET',
      latencyMs: 10_000,
    });
    const { error, ms } = await failure(client().getSecret(SECRETS.pat));
    expect(isTransient(error)).toBe(true);
    expect(ms).toBeLessThan(KV_LIMITS.callMs + 1_000);
  });

  it('a long Retry-After is not slept through: the call ends by its deadline', async () => {
    azure().servers.faults.add({
      service: 'keyvault',
      instance: tenant.vaultName,
      method: 'GET',
      status: 429,
      retryAfterSeconds: 30,
      body: { error: { code: 'Throttled', message: 'too many requests' } },
    });
    const { error, ms } = await failure(client().getSecret(SECRETS.pat));
    expect(isTransient(error)).toBe(true);
    expect(ms).toBeLessThan(KV_LIMITS.callMs + 1_000);
  });
});

describe('Graph client', () => {
  let graph: GraphApi;
  beforeAll(() => {
    graph = createGraphApi(tenant.credential, azure().graphUrl, GRAPH_LIMITS);
  });
  const calls: [string, () => Promise<unknown>][] = [
    ['addPassword', () => graph.addPassword(tenant.appId, 'x', new Date(Date.now() + 86_400_000))],
    ['getApplication', () => graph.getApplicationByAppId(tenant.appId)],
    [
      'sendMail',
      () => graph.sendMail('nobody@contoso.com', { subject: 's', html: 'h', to: ['a@contoso.com'] }),
    ],
  ];

  it.each(calls)('a dropped connection on %s is a transient provider error', async (_name, call) => {
    await graph.getApplicationByAppId(tenant.appId); // a token first: the drop hits the call itself
    azure().servers.faults.add({ service: 'graph', drop: true });
    const { error } = await failure(call());
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ provider: 'graph', status: undefined });
    expect(isTransient(error)).toBe(true);
  });

  it.each(calls)('a hung %s times out within its deadline, transient', async (_name, call) => {
    await graph.getApplicationByAppId(tenant.appId);
    azure().servers.faults.add({ service: 'graph', latencyMs: 10_000 });
    const { error, ms } = await failure(call());
    expect(isTransient(error)).toBe(true);
    expect(ms).toBeLessThan(GRAPH_LIMITS.callMs + 1_000);
  });

  it('a 4xx answer stays permanent', async () => {
    azure().servers.faults.add({
      service: 'graph',
      status: 400,
      body: { error: { code: 'BadRequest', message: 'no' } },
    });
    const { error } = await failure(graph.getApplicationByAppId(tenant.appId));
    expect(error).toMatchObject({ status: 400 });
    expect(isTransient(error)).toBe(false);
  });
});

describe('Databricks client', () => {
  it('a Retry-After that would pass the call deadline is not waited for', async () => {
    const origin = tenant.workspaceUrl;
    const client = new DatabricksClient({
      isAllowedOrigin: () => true,
      callTimeoutMs: 1_000,
      baseDelayMs: 10,
    });
    azure().servers.faults.add({
      service: 'databricks',
      status: 429,
      retryAfterSeconds: 5,
      body: { error_code: 'TOO_MANY_REQUESTS', message: 'slow down' },
    });
    const { error, ms } = await failure(
      client.call(origin, '/api/2.0/token/list', { method: 'GET', auth: { bearer: tenant.initial.pat } }),
    );
    expect(error).toMatchObject({ status: 429 });
    expect(isTransient(error)).toBe(true);
    expect(ms).toBeLessThan(1_000);
    await client.close();
  });

  it('a hung call ends by its deadline, transient', async () => {
    const client = new DatabricksClient({ isAllowedOrigin: () => true, callTimeoutMs: 800, baseDelayMs: 10 });
    azure().servers.faults.add({ service: 'databricks', latencyMs: 10_000 });
    const { error, ms } = await failure(
      client.call(tenant.workspaceUrl, '/api/2.0/token/list', {
        method: 'GET',
        auth: { bearer: tenant.initial.pat },
      }),
    );
    expect(isTransient(error)).toBe(true);
    expect(ms).toBeLessThan(1_800);
    await client.close();
  });
});
