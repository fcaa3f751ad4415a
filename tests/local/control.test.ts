import { AuthenticationRequiredError } from '@azure/identity';
import { request } from 'undici';
import type { SeedResult } from '../../local/azure/seed';
import { appCredential, useLocalAzure } from '../support/localAzure';

const azure = useLocalAzure();

const OIDC_ROUTE = '/:tenant/v2.0/.well-known/openid-configuration';
const OIDC_COUNT = `entra GET ${OIDC_ROUTE}`;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  ms: number;
}

/** One HTTPS request with undici; JSON bodies are parsed. */
async function call(method: string, url: string, body?: unknown): Promise<Reply> {
  const started = performance.now();
  const res = await request(url, {
    method: method as 'GET',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  const isJson = String(res.headers['content-type'] ?? '').startsWith('application/json');
  return {
    status: res.statusCode,
    headers: res.headers,
    body: isJson ? JSON.parse(text) : text,
    ms: performance.now() - started,
  };
}

const control = (method: string, path: string, body?: unknown) =>
  call(method, `${azure().url}/control${path}`, body);
const oidc = () =>
  call('GET', `${azure().url}/${azure().state.tenantId}/v2.0/.well-known/openid-configuration`);
const errorMessage = (r: Reply) => (r.body as { error: { message: string } }).error.message;
const errorCode = (r: Reply) => (r.body as { error: { code: string } }).error.code;

afterEach(async () => {
  expect((await control('POST', '/reset')).status).toBe(200);
});

describe('POST /control/seed', () => {
  test.each([
    ['an unknown top-level field', { vault: [] }, ['Unrecognized key', '"vault"']],
    [
      'an unknown nested field',
      { vaults: [{ name: 'kv-one', secretz: [] }] },
      ['Unrecognized key', '"secretz"', 'vaults[0]'],
    ],
    [
      'a bad vault name',
      { vaults: [{ name: '1_bad' }] },
      ['vaults[0].name', 'a vault name is 3-24 letters, digits and dashes'],
    ],
    [
      'a bad PAT format',
      {
        workspaces: [
          {
            name: 'ws',
            principals: [{ userName: 'a@x.io' }],
            tokens: [{ owner: 'a@x.io', value: 'pat-1234' }],
          },
        ],
      },
      ['workspaces[0].tokens[0].value', 'a PAT looks like dapi followed by 32 hex digits'],
    ],
    [
      'a wrong type',
      { apps: [{ displayName: 'a', graphRoles: ['Directory.ReadWrite.All'] }] },
      ['apps[0].graphRoles[0]', 'Application.ReadWrite.OwnedBy'],
    ],
  ])('%s is a 400 naming the field and what was expected', async (_what, seed, fragments) => {
    const r = await control('POST', '/seed', seed);
    expect(r.status).toBe(400);
    expect(errorCode(r)).toBe('BadRequest');
    for (const fragment of fragments) expect(errorMessage(r)).toContain(fragment);
    expect(errorMessage(r)).not.toContain('pat-1234'); // values are never echoed
  });

  test('an unknown owner reference is a 400 naming the owner and the app', async () => {
    const r = await control('POST', '/seed', { apps: [{ displayName: 'rotated-app', owners: ['nobody'] }] });
    expect(r.status).toBe(400);
    expect(errorCode(r)).toBe('BadSeed');
    expect(errorMessage(r)).toBe('owner nobody of app rotated-app is not a known principal');
  });

  test('a workspace with an unseeded account is a 400 naming both', async () => {
    const accountId = '0d6f2b3e-1c1a-4a5e-9a53-2a8a0c1b7f11';
    const r = await control('POST', '/seed', { workspaces: [{ name: 'ws-orphan', accountId }] });
    expect(r.status).toBe(400);
    expect(errorCode(r)).toBe('BadSeed');
    expect(errorMessage(r)).toBe(`workspace ws-orphan: account ${accountId} is not seeded`);
  });

  test('a body that is not JSON is a 400', async () => {
    const r = await control('POST', '/seed', '{"vaults": [');
    expect(r.status).toBe(400);
    expect(errorMessage(r)).toBe('The request body is not valid JSON.');
  });

  test('a good seed returns the urls and generated ids; GET /control/state shows the same', async () => {
    const accountId = '5a1f7d0e-2b3c-4d5e-8f90-a1b2c3d4e5f6';
    const spAppId = '3f0c2a8e-9d41-4c5b-8e7a-1b2c3d4e5f60';
    const r = await control('POST', '/seed', {
      managedIdentities: [{ name: 'rotator' }],
      apps: [{ displayName: 'target', owners: ['rotator'], secrets: [{ value: 'app-secret-1' }] }],
      vaults: [
        { name: 'kv-good', roleAssignments: [{ principal: 'rotator', role: 'Key Vault Secrets Officer' }] },
      ],
      accounts: [
        { accountId, servicePrincipals: [{ applicationId: spAppId, secrets: [{ value: 'sp-secret-1' }] }] },
      ],
      workspaces: [
        {
          name: 'ws-good',
          accountId,
          principals: [{ userName: 'owner@contoso.com', admin: true }],
          tokens: [{ owner: 'owner@contoso.com', value: `dapi${'ab'.repeat(16)}` }],
        },
      ],
    });
    expect(r.status).toBe(200);
    const seeded = r.body as SeedResult;
    expect(seeded).toMatchObject({
      tenantId: azure().state.tenantId,
      authorityHost: azure().url,
      identityEndpoint: `${azure().url}/msi/token`,
      graphUrl: `${azure().url}/graph`,
      accountsUrl: azure().accountsUrl,
      vaults: { 'kv-good': azure().vaultUrl('kv-good') },
    });
    expect(seeded.vaults['kv-good']).toMatch(/^https:\/\/localhost:\d+$/);
    expect(seeded.managedIdentities[0]).toEqual({
      name: 'rotator',
      clientId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      principalId: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    expect(seeded.apps[0]!.keyIds).toHaveLength(1);
    expect(seeded.workspaces['ws-good']).toEqual({
      url: azure().workspaceUrl('ws-good'),
      workspaceId: expect.stringMatching(/^\d+$/),
      principals: { 'owner@contoso.com': expect.stringMatching(/^\d+$/) },
      tokenIds: [expect.stringMatching(/^[0-9a-f]{64}$/)],
    });
    expect(seeded.accounts[accountId]!.servicePrincipals[spAppId]!.secretIds).toHaveLength(1);
    // Nothing in the answer is a credential value.
    expect(JSON.stringify(seeded)).not.toMatch(/app-secret-1|sp-secret-1|dapi/);

    const state = await control('GET', '/state');
    expect(state.body).toEqual(seeded);
  });
});

describe('clock', () => {
  test('POST /control/clock/advance moves the emulated clock, not the real one', async () => {
    const before = Date.parse(((await control('GET', '/clock')).body as { now: string }).now);
    const r = await control('POST', '/clock/advance', { days: 1, hours: 2, seconds: 30 });
    expect(r.status).toBe(200);
    const after = Date.parse((r.body as { now: string }).now);
    const advanced = 86_400_000 + 2 * 3_600_000 + 30_000;
    expect(after - before).toBeGreaterThanOrEqual(advanced);
    expect(after - before).toBeLessThan(advanced + 5_000);
    expect(Math.abs(Date.now() - (after - advanced))).toBeLessThan(5_000);
  });

  test.each([
    [{}, 'give seconds, hours or days'],
    [{ days: -1 }, 'days'],
    [{ weeks: 1 }, '"weeks"'],
  ])('a bad advance %j is a 400', async (body, fragment) => {
    const r = await control('POST', '/clock/advance', body);
    expect(r.status).toBe(400);
    expect(errorMessage(r)).toContain(fragment);
  });
});

describe('faults', () => {
  test('status, body, headers and Retry-After replace the real answer', async () => {
    const add = await control('POST', '/faults', {
      service: 'entra',
      method: 'get',
      route: OIDC_ROUTE,
      status: 503,
      body: { error: 'temporarily_unavailable' },
      headers: { 'x-ms-ests-server': 'local' },
      retryAfterSeconds: 7,
    });
    expect(add.status).toBe(201);
    expect(add.body).toEqual({ id: expect.any(Number) });

    const r = await oidc();
    expect(r.status).toBe(503);
    expect(r.body).toEqual({ error: 'temporarily_unavailable' });
    expect(r.headers['retry-after']).toBe('7');
    expect(r.headers['x-ms-ests-server']).toBe('local');
    // Until cleared: a fault without `times` stays.
    expect((await oidc()).status).toBe(503);
    // Other routes on the same origin are untouched.
    expect((await call('GET', `${azure().url}/${azure().state.tenantId}/discovery/v2.0/keys`)).status).toBe(
      200,
    );
  });

  test('the real client sees the fault: ClientSecretCredential gets the injected AADSTS error', async () => {
    const seed = await azure().seed({
      apps: [{ displayName: 'faulted', secrets: [{ value: 'fault-secret-1' }] }],
    });
    await control('POST', '/faults', {
      service: 'entra',
      route: '/:tenant/oauth2/v2.0/token',
      status: 401,
      body: {
        error: 'invalid_client',
        error_description: 'AADSTS7000222: The provided client secret keys are expired.',
        error_codes: [7000222],
      },
      times: 1,
    });
    const credential = appCredential(azure(), seed.apps[0]!.appId, 'fault-secret-1');
    const error = await credential.getToken('https://vault.azure.net/.default').catch((e: unknown) => e);
    // @azure/identity 4.13 surfaces an MSAL invalid_client as AuthenticationRequiredError.
    expect(error).toBeInstanceOf(AuthenticationRequiredError);
    expect((error as Error).message).toContain('invalid_client');
    expect((error as Error).message).toContain('AADSTS7000222');
    // The fault was used up; the next attempt gets a token.
    expect((await credential.getToken('https://vault.azure.net/.default'))?.token).toEqual(
      expect.any(String),
    );
  });

  test('latencyMs delays the request; the handler still answers', async () => {
    await control('POST', '/faults', { service: 'sink', route: '/sink/:channel', latencyMs: 400 });
    const r = await call('POST', `${azure().url}/sink/slow`, { text: 'hi' });
    expect(r.status).toBe(200);
    expect(r.ms).toBeGreaterThanOrEqual(390);
    expect(azure().sink.forChannel('slow')).toHaveLength(1);
    // The latency the emulator held, as timed around the sleep.
    const held = azure().servers.counts.heldSnapshot()['sink POST /sink/:channel'];
    expect(held).toBeGreaterThanOrEqual(399);
    expect(held).toBeLessThanOrEqual(r.ms + 1);
  });

  test('drop destroys the connection: undici reports a socket error', async () => {
    await control('POST', '/faults', {
      pathPattern: '/\\.well-known/openid-configuration$',
      drop: true,
      times: 1,
    });
    const error = await oidc().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'UND_ERR_SOCKET' });
    expect((await oidc()).status).toBe(200);
  });

  test('times: 2 fails twice, then the third call succeeds; GET /control/faults shows what is left', async () => {
    await control('POST', '/faults', { service: 'entra', route: OIDC_ROUTE, status: 500, times: 2 });
    expect((await oidc()).status).toBe(500);
    const listed = await control('GET', '/faults');
    expect(listed.body).toEqual({
      faults: [expect.objectContaining({ status: 500, times: 2, remaining: 1 })],
    });
    expect((await oidc()).status).toBe(500);
    expect((await oidc()).status).toBe(200);
    expect((await control('GET', '/faults')).body).toEqual({ faults: [] });
  });

  test('method and service must match', async () => {
    await control('POST', '/faults', { method: 'POST', route: OIDC_ROUTE, status: 500 });
    await control('POST', '/faults', { service: 'graph', pathPattern: 'openid', status: 500 });
    expect((await oidc()).status).toBe(200);
  });

  test('a fault on one vault origin leaves other vaults alone', async () => {
    await azure().seed({ vaults: [{ name: 'kv-slow' }, { name: 'kv-fine' }] });
    await control('POST', '/faults', {
      service: 'keyvault',
      instance: 'kv-slow',
      pathPattern: '^/secrets/',
      status: 429,
      body: {
        error: {
          code: 'Throttled',
          message: 'Request was not processed because too many requests were received.',
        },
      },
      retryAfterSeconds: 3,
    });
    const slow = await call('GET', `${azure().vaultUrl('kv-slow')}/secrets/x/?api-version=7.6`);
    expect(slow.status).toBe(429);
    expect(slow.headers['retry-after']).toBe('3');
    const fine = await call('GET', `${azure().vaultUrl('kv-fine')}/secrets/x/?api-version=7.6`);
    expect(fine.status).not.toBe(429);
  });

  test('DELETE /control/faults clears every fault', async () => {
    await control('POST', '/faults', { service: 'entra', route: OIDC_ROUTE, status: 500 });
    expect((await oidc()).status).toBe(500);
    expect((await control('DELETE', '/faults')).status).toBe(204);
    expect((await oidc()).status).toBe(200);
  });

  test.each([
    [
      { service: 'entra', route: OIDC_ROUTE },
      'a fault needs at least one of status, latencyMs, drop, lostAnswer or answerDelayMs',
    ],
    [{ pathPattern: '(unclosed', status: 500 }, 'pathPattern is not a valid regular expression'],
    [{ service: 'main', status: 500 }, 'service'],
    [{ statusCode: 500 }, '"statusCode"'],
    [{ status: 700 }, 'status'],
    [{ latencyMs: -5 }, 'latencyMs'],
    [{ status: 429, retryAfterSeconds: 1.5 }, 'retryAfterSeconds'],
    [{ status: 500, times: 0 }, 'times'],
  ])('a malformed fault %j is a 400 naming the problem', async (fault, fragment) => {
    const r = await control('POST', '/faults', fault);
    expect(r.status).toBe(400);
    expect(errorCode(r)).toBe('BadRequest');
    expect(errorMessage(r)).toContain('Invalid fault');
    expect(errorMessage(r)).toContain(fragment);
    expect((await control('GET', '/faults')).body).toEqual({ faults: [] });
  });

  test('an unknown service lists the known ones', async () => {
    const r = await control('POST', '/faults', { service: 'main', status: 500 });
    expect(errorMessage(r)).toContain('"entra"');
    expect(errorMessage(r)).toContain('"keyvault"');
  });
});

describe('request counts', () => {
  test('GET /control/requests counts per service, method and route template; control calls are not counted', async () => {
    expect((await control('DELETE', '/requests')).status).toBe(204);
    await oidc();
    await oidc();
    await call('GET', `${azure().url}/other-tenant/v2.0/.well-known/openid-configuration`);
    await call('POST', `${azure().url}/sink/teams`, { text: 'x' });
    await call('GET', `${azure().url}/no/such/route`);
    await control('POST', '/faults', { service: 'sink', status: 500, times: 1 });
    await call('POST', `${azure().url}/sink/teams`, { text: 'y' }); // faulted requests count too

    const r = await control('GET', '/requests');
    expect(r.body).toEqual({
      counts: {
        [OIDC_COUNT]: 3,
        'entra GET (unmatched)': 1,
        'sink POST /sink/:channel': 2,
      },
    });
    expect((await control('DELETE', '/requests')).status).toBe(204);
    expect((await control('GET', '/requests')).body).toEqual({ counts: {} });
  });

  test('vault origins are counted per instance', async () => {
    await azure().seed({ vaults: [{ name: 'kv-count' }] });
    await control('DELETE', '/requests');
    await call('GET', `${azure().vaultUrl('kv-count')}/secrets/x/?api-version=7.6`);
    const counts = ((await control('GET', '/requests')).body as { counts: Record<string, number> }).counts;
    expect(Object.keys(counts)).toHaveLength(1);
    expect(Object.keys(counts)[0]).toMatch(/^keyvault\/kv-count GET /);
  });
});

describe('reset', () => {
  test('POST /control/reset empties the tenant and closes vault origins', async () => {
    await azure().seed({ apps: [{ displayName: 'gone' }], vaults: [{ name: 'kv-reset' }] });
    const vaultUrl = azure().vaultUrl('kv-reset');
    await call('GET', `${vaultUrl}/secrets/x/`); // the origin answers
    await control('POST', '/faults', { service: 'graph', status: 500 });
    await call('POST', `${azure().url}/sink/teams`, { text: 'x' });
    await control('POST', '/clock/advance', { days: 3 });

    const r = await control('POST', '/reset');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      managedIdentities: [],
      apps: [],
      vaults: {},
      workspaces: {},
      accounts: {},
    });
    expect((await control('GET', '/faults')).body).toEqual({ faults: [] });
    expect((await control('GET', '/requests')).body).toEqual({ counts: {} });
    expect((await control('GET', '/sink')).body).toEqual({ deliveries: [] });
    const now = Date.parse(((await control('GET', '/clock')).body as { now: string }).now);
    expect(Math.abs(now - Date.now())).toBeLessThan(5_000);
    await expect(call('GET', `${vaultUrl}/secrets/x/`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(() => azure().vaultUrl('kv-reset')).toThrow('no vault named kv-reset');
  });
});

describe('webhook sink', () => {
  test('POST /sink/{channel} records the delivery; GET /control/sink?channel= returns it', async () => {
    const card = {
      type: 'message',
      attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive' }],
    };
    const r = await call('POST', `${azure().url}/sink/teams`, card);
    expect(r.status).toBe(200);
    expect(r.body).toBe('1'); // what a Teams incoming webhook answers
    await call('POST', `${azure().url}/sink/generic`, 'plain text');

    const teams = await control('GET', '/sink?channel=teams');
    expect(teams.body).toEqual({
      deliveries: [
        {
          channel: 'teams',
          headers: expect.objectContaining({ 'content-type': 'application/json' }),
          body: card,
          rawBody: JSON.stringify(card),
          at: expect.any(String),
        },
      ],
    });
    const generic = (await control('GET', '/sink?channel=generic')).body as {
      deliveries: { body: unknown }[];
    };
    expect(generic.deliveries.map((d) => d.body)).toEqual(['plain text']);
    expect(((await control('GET', '/sink')).body as { deliveries: unknown[] }).deliveries).toHaveLength(2);
    expect((await control('GET', '/sink?channel=none')).body).toEqual({ deliveries: [] });
  });
});

describe('seeding an existing workspace again', () => {
  test('adds the principals it does not have yet, so their tokens can be seeded', async () => {
    const appId = '0e3c1b5a-7d41-4f7c-9a64-1c2b3d4e5f60';
    const first = await azure().seed({
      workspaces: [{ name: 'ws-again', principals: [{ userName: 'a@contoso.com' }] }],
    });
    const again = await azure().seed({
      workspaces: [
        {
          name: 'ws-again',
          principals: [{ userName: 'a@contoso.com' }, { applicationId: appId }],
          tokens: [{ owner: appId, value: `dapi${'0'.repeat(32)}` }],
        },
      ],
    });
    const principals = again.workspaces['ws-again']!.principals;
    expect(Object.keys(principals).sort()).toEqual([appId, 'a@contoso.com'].sort());
    expect(principals['a@contoso.com']).toBe(first.workspaces['ws-again']!.principals['a@contoso.com']);
    expect(again.workspaces['ws-again']!.tokenIds).toHaveLength(1);
  });
});
