import { randomUUID } from 'node:crypto';
import type { AccessToken, TokenCredential } from '@azure/identity';
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { SecretClient, type SecretClientOptions } from '@azure/keyvault-secrets';
import { DOCUMENTED_LIMITS } from '../../local/azure/services/keyvault-throttle';
import { RESOURCES } from '../../local/azure/tokens';
import type { KeyVaultRole } from '../../local/azure/state';
import { appCredential, useLocalAzure } from '../support/localAzure';

const azure = useLocalAzure();

const VAULT = 'kv-fidelity';
const PAGING_VAULT = 'kv-paging';
const CLIENT_SECRET = 'client-secret-for-tests-0123456789';

/** One app per role (plus one without any role); app ids are fixed so role assignments can name them. */
const APPS = {
  officer: { appId: randomUUID(), role: 'Key Vault Secrets Officer' },
  user: { appId: randomUUID(), role: 'Key Vault Secrets User' },
  reader: { appId: randomUUID(), role: 'Key Vault Reader' },
  nobody: { appId: randomUUID(), role: undefined },
} as const satisfies Record<string, { appId: string; role: KeyVaultRole | undefined }>;
type AppName = keyof typeof APPS;

const CLIENT_OPTIONS = { disableChallengeResourceVerification: true } as const;

/** What went over the wire, seen from inside the SDK's retry loop (after the auth policy). */
interface Exchange {
  method: string;
  url: URL;
  status: number;
  authorized: boolean;
  challenge: string | undefined;
  retryAfter: string | undefined;
  body: string | undefined;
  at: number;
}

function recorder(): { exchanges: Exchange[]; options: SecretClientOptions } {
  const exchanges: Exchange[] = [];
  const policy: PipelinePolicy = {
    name: 'test-recorder',
    async sendRequest(request, next) {
      const authorized = request.headers.has('authorization');
      const response = await next(request);
      exchanges.push({
        method: request.method,
        url: new URL(request.url),
        status: response.status,
        authorized,
        challenge: response.headers.get('www-authenticate'),
        retryAfter: response.headers.get('retry-after'),
        body: response.bodyAsText ?? undefined,
        at: Date.now(),
      });
      return response;
    },
  };
  return { exchanges, options: { additionalPolicies: [{ policy, position: 'perRetry' }] } };
}

const vaultUrl = (name = VAULT) => azure().vaultUrl(name);

function clientFor(app: AppName, options: SecretClientOptions = {}, vault = VAULT): SecretClient {
  return new SecretClient(vaultUrl(vault), appCredential(azure(), APPS[app].appId, CLIENT_SECRET), {
    ...CLIENT_OPTIONS,
    ...options,
  });
}

/** A credential that hands the SDK a fixed token (claimed valid for an hour, whatever the JWT says). */
function fixedTokenCredential(token: string): TokenCredential {
  return {
    getToken: async (): Promise<AccessToken> => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }),
  };
}

function principalOf(app: AppName) {
  const found = azure().state.apps.find((a) => a.appId === APPS[app].appId);
  if (!found) throw new Error(`app ${app} is not seeded`);
  return found.servicePrincipal;
}

/** Claims like the local Entra's, for hand-made tokens. */
function claimsFor(app: AppName, overrides: Record<string, unknown>) {
  const now = Math.floor(Date.now() / 1000);
  const principal = principalOf(app);
  return {
    aud: RESOURCES.keyVault,
    iss: azure().tokens.issuer,
    iat: now,
    nbf: now,
    exp: now + 3600,
    tid: azure().state.tenantId,
    oid: principal.objectId,
    sub: principal.objectId,
    appid: principal.appId,
    ver: '2.0',
    ...overrides,
  };
}

/** Runs a call that must fail and returns the SDK's RestError (status, code, message, details). */
async function failure(call: Promise<unknown>): Promise<{
  statusCode?: number;
  code?: string;
  message: string;
  details?: { error?: { code?: string; message?: string; innerError?: { code?: string } } };
}> {
  try {
    await call;
  } catch (e) {
    return e as Awaited<ReturnType<typeof failure>>;
  }
  throw new Error('expected the call to fail');
}

/** Starts a Key Vault long-running operation and waits for its end (SDK poller, default interval). */
const pollToEnd = <T>(start: Promise<{ pollUntilDone(): Promise<T> }>): Promise<T> =>
  start.then((poller) => poller.pollUntilDone());

const listCount = (vault: string) => azure().servers.counts.snapshot()[`keyvault/${vault} GET /secrets`] ?? 0;

let officer: SecretClient;

beforeAll(async () => {
  const roleAssignments = Object.values(APPS).flatMap(({ appId, role }) =>
    role ? [{ principal: appId, role }] : [],
  );
  await azure().seed({
    apps: Object.entries(APPS).map(([name, { appId }]) => ({
      displayName: `kv-${name}`,
      appId,
      secrets: [{ value: CLIENT_SECRET }],
    })),
    vaults: [
      { name: VAULT, roleAssignments },
      {
        name: PAGING_VAULT,
        roleAssignments,
        secrets: Array.from({ length: 60 }, (_, i) => ({
          name: `page-${String(i).padStart(2, '0')}`,
          value: `v${i}`,
        })),
      },
    ],
  });
  officer = clientFor('officer');
});

describe('challenge authentication', () => {
  test('the first request carries no token and gets the 401 challenge; the retry carries one', async () => {
    const { exchanges, options } = recorder();
    await clientFor('officer', options).setSecret('challenge-probe', 'x');
    expect(exchanges.map(({ status, authorized }) => ({ status, authorized }))).toEqual([
      { status: 401, authorized: false },
      { status: 200, authorized: true },
    ]);
    expect(exchanges[0]?.challenge).toBe(
      `Bearer authorization="https://login.windows.net/${azure().state.tenantId}", resource="https://vault.azure.net"`,
    );
  });

  test('a token for another audience is refused with AKV10022 and the challenge', async () => {
    const { token } = azure().tokens.issue(principalOf('officer'), RESOURCES.graph);
    const { exchanges, options } = recorder();
    const client = new SecretClient(vaultUrl(), fixedTokenCredential(token), {
      ...CLIENT_OPTIONS,
      ...options,
    });
    const e = await failure(client.getSecret('anything'));
    expect(e).toMatchObject({ statusCode: 401, code: 'Unauthorized' });
    expect(e.message).toBe(
      'AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://graph.microsoft.com.',
    );
    expect(exchanges.at(-1)).toMatchObject({ status: 401, authorized: true });
    expect(exchanges.at(-1)?.challenge).toContain('resource="https://vault.azure.net"');
  });

  test('an expired token is refused with TokenExpired', async () => {
    const past = Math.floor(Date.now() / 1000) - 3600;
    const token = azure().tokens.key.sign(
      claimsFor('officer', { iat: past - 3600, nbf: past - 3600, exp: past }),
    );
    const client = new SecretClient(vaultUrl(), fixedTokenCredential(token), CLIENT_OPTIONS);
    const e = await failure(client.getSecret('anything'));
    expect(e).toMatchObject({ statusCode: 401, code: 'Unauthorized' });
    expect(e.message).toBe("[TokenExpired] Error validating token: 'S2S12086'.");
  });

  test('a token from another issuer is refused with AKV10032', async () => {
    const token = azure().tokens.key.sign(
      claimsFor('officer', { iss: 'https://sts.windows.net/other-tenant/' }),
    );
    const client = new SecretClient(vaultUrl(), fixedTokenCredential(token), CLIENT_OPTIONS);
    const e = await failure(client.getSecret('anything'));
    expect(e).toMatchObject({ statusCode: 401, code: 'Unauthorized' });
    expect(e.message).toMatch(
      /^AKV10032: Invalid issuer\. Expected one of .*, found https:\/\/sts\.windows\.net\/other-tenant\/\.$/,
    );
  });
});

describe('secrets', () => {
  test('set creates versions; get returns the latest or a given version; SecretNewVersionCreated is published', async () => {
    const expiresOn = new Date(Date.now() + 90 * 24 * 3600_000);
    const first = await officer.setSecret('db-password', 'first-value', {
      tags: { owner: 'rotator' },
      expiresOn,
    });
    const second = await officer.setSecret('db-password', 'second-value');

    expect(first.properties.version).toMatch(/^[0-9a-f]{32}$/);
    expect(first.properties.id).toBe(`${vaultUrl()}/secrets/db-password/${first.properties.version}`);
    expect(first.properties).toMatchObject({
      name: 'db-password',
      vaultUrl: vaultUrl(),
      enabled: true,
      tags: { owner: 'rotator' },
      recoveryLevel: 'Recoverable+Purgeable',
      recoverableDays: 90,
    });
    expect(first.properties.expiresOn?.getTime()).toBe(Math.floor(expiresOn.getTime() / 1000) * 1000);
    expect(first.properties.createdOn).toBeInstanceOf(Date);

    const latest = await officer.getSecret('db-password');
    expect(latest.value).toBe('second-value');
    expect(latest.properties.version).toBe(second.properties.version);

    // Names are case-insensitive; the first spelling is the one Key Vault keeps.
    const shouted = await officer.getSecret('DB-PASSWORD');
    expect(shouted.properties).toMatchObject({ name: 'db-password', version: second.properties.version });

    const older = await officer.getSecret('db-password', { version: first.properties.version });
    expect(older.value).toBe('first-value');
    expect(older.properties.tags).toEqual({ owner: 'rotator' });

    const events = azure().events.published.filter(
      (e) => e.eventType === 'Microsoft.KeyVault.SecretNewVersionCreated' && e.subject === 'db-password',
    );
    expect(events.map((e) => e.data.Version)).toEqual([first.properties.version, second.properties.version]);
    expect(events[0]?.data).toMatchObject({
      Id: first.properties.id,
      VaultName: VAULT,
      ObjectType: 'Secret',
      ObjectName: 'db-password',
      EXP: Math.floor(expiresOn.getTime() / 1000),
    });
  });

  test('unknown secrets and versions are 404 SecretNotFound', async () => {
    const e = await failure(officer.getSecret('no-such-secret'));
    expect(e).toMatchObject({ statusCode: 404, code: 'SecretNotFound' });
    expect(e.message).toMatch(/^A secret with \(name\/id\) no-such-secret was not found in this key vault\./);

    await officer.setSecret('has-versions', 'v');
    const v = await failure(officer.getSecret('has-versions', { version: '0'.repeat(32) }));
    expect(v).toMatchObject({ statusCode: 404, code: 'SecretNotFound' });
    expect(v.message).toContain(`has-versions/${'0'.repeat(32)}`);
  });

  test('listPropertiesOfSecretVersions lists every version of one secret', async () => {
    const versions: string[] = [];
    for (const value of ['a', 'b', 'c'])
      versions.push((await officer.setSecret('versioned', value)).properties.version!);
    const listed: string[] = [];
    for await (const p of officer.listPropertiesOfSecretVersions('versioned')) {
      expect(p.id).toBe(`${vaultUrl()}/secrets/versioned/${p.version}`);
      listed.push(p.version!);
    }
    expect(listed.sort()).toEqual([...versions].sort());
  });

  test('updateSecretProperties changes tags and content type, never the value; a disabled secret is 403 SecretDisabled', async () => {
    const created = await officer.setSecret('updatable', 'keep-me');
    const version = created.properties.version!;
    const updated = await officer.updateSecretProperties('updatable', version, {
      tags: { rotation: 'databricks-pat' },
      contentType: 'text/plain',
    });
    expect(updated).toMatchObject({
      tags: { rotation: 'databricks-pat' },
      contentType: 'text/plain',
      version,
    });
    const after = await officer.getSecret('updatable');
    expect(after.value).toBe('keep-me');
    expect(after.properties.tags).toEqual({ rotation: 'databricks-pat' });

    await officer.updateSecretProperties('updatable', version, { enabled: false });
    const e = await failure(officer.getSecret('updatable'));
    expect(e).toMatchObject({
      statusCode: 403,
      code: 'Forbidden',
      message: 'Operation get is not allowed on a disabled secret.',
    });
    expect(e.details?.error?.innerError?.code).toBe('SecretDisabled');

    // Listing still shows it, disabled; enabling it again makes it readable.
    const listed: boolean[] = [];
    for await (const p of officer.listPropertiesOfSecrets())
      if (p.name === 'updatable') listed.push(p.enabled!);
    expect(listed).toEqual([false]);
    await officer.updateSecretProperties('updatable', version, { enabled: true });
    expect((await officer.getSecret('updatable')).value).toBe('keep-me');
  });

  test('tag limits and invalid values are 400 BadParameter', async () => {
    const tags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`t${i}`, 'v']));
    await expect(officer.setSecret('tagged', 'v', { tags: tags(15) })).resolves.toBeDefined();

    const tooMany = await failure(officer.setSecret('tagged', 'v', { tags: tags(16) }));
    expect(tooMany).toMatchObject({ statusCode: 400, code: 'BadParameter' });

    const longValue = await failure(officer.setSecret('tagged', 'v', { tags: { k: 'x'.repeat(257) } }));
    expect(longValue).toMatchObject({ statusCode: 400, code: 'BadParameter' });

    const longName = await failure(officer.setSecret('tagged', 'v', { tags: { ['k'.repeat(513)]: 'v' } }));
    expect(longName).toMatchObject({ statusCode: 400, code: 'BadParameter' });

    const { version } = (await officer.getSecret('tagged')).properties;
    const patch = await failure(officer.updateSecretProperties('tagged', version!, { tags: tags(16) }));
    expect(patch).toMatchObject({ statusCode: 400, code: 'BadParameter' });
  });

  test('a value may be 25 KB (25600 bytes), not more', async () => {
    await expect(officer.setSecret('big', 'x'.repeat(25_600))).resolves.toBeDefined();
    const e = await failure(officer.setSecret('big', 'x'.repeat(25_601)));
    expect(e).toMatchObject({ statusCode: 400, code: 'BadParameter' });
    // Bytes, not characters: 12801 two-byte characters are 25602 bytes.
    const multiByte = await failure(officer.setSecret('big', 'é'.repeat(12_801)));
    expect(multiByte).toMatchObject({ statusCode: 400, code: 'BadParameter' });
  });

  test('a secret name outside [0-9a-zA-Z-]{1,127} is 400 BadParameter', async () => {
    const e = await failure(officer.setSecret('bad_name', 'v'));
    expect(e).toMatchObject({
      statusCode: 400,
      code: 'BadParameter',
      message: 'The request URI contains an invalid name: bad_name',
    });
    await expect(officer.setSecret('n'.repeat(128), 'v')).rejects.toMatchObject({ statusCode: 400 });
  });
});

describe('delete, recover, purge', () => {
  test('beginDeleteSecret soft-deletes; the name is then 409 for set, 404 for get, until purged', async () => {
    await officer.setSecret('to-delete', 'v1');
    await officer.setSecret('to-delete', 'v2');
    const deleted = await pollToEnd(officer.beginDeleteSecret('to-delete'));
    expect(deleted.properties.recoveryId).toBe(`${vaultUrl()}/deletedsecrets/to-delete`);
    const { deletedOn, scheduledPurgeDate } = deleted.properties;
    expect(scheduledPurgeDate!.getTime() - deletedOn!.getTime()).toBe(90 * 24 * 3600_000);

    const fetched = await officer.getDeletedSecret('to-delete');
    expect(fetched.properties.recoveryId).toBe(deleted.properties.recoveryId);
    expect(fetched.value).toBeUndefined();

    const listed: string[] = [];
    for await (const p of officer.listPropertiesOfSecrets()) listed.push(p.name);
    expect(listed).not.toContain('to-delete');
    const deletedNames: string[] = [];
    for await (const d of officer.listDeletedSecrets()) deletedNames.push(d.name);
    expect(deletedNames).toContain('to-delete');

    const conflict = await failure(officer.setSecret('to-delete', 'v3'));
    expect(conflict).toMatchObject({
      statusCode: 409,
      code: 'Conflict',
      message:
        'Secret to-delete is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.',
    });
    await expect(officer.getSecret('to-delete')).rejects.toMatchObject({
      statusCode: 404,
      code: 'SecretNotFound',
    });

    await officer.purgeDeletedSecret('to-delete');
    const gone = await failure(officer.getDeletedSecret('to-delete'));
    expect(gone).toMatchObject({
      statusCode: 404,
      code: 'SecretNotFound',
      message: 'Deleted Secret not found: to-delete',
    });
    await expect(officer.setSecret('to-delete', 'fresh')).resolves.toMatchObject({ value: 'fresh' });
  });

  test('beginRecoverDeletedSecret brings every version back', async () => {
    const first = await officer.setSecret('to-recover', 'old');
    await officer.setSecret('to-recover', 'new');
    await pollToEnd(officer.beginDeleteSecret('to-recover'));
    const recovered = await pollToEnd(officer.beginRecoverDeletedSecret('to-recover'));
    expect(recovered.name).toBe('to-recover');
    expect((await officer.getSecret('to-recover')).value).toBe('new');
    expect((await officer.getSecret('to-recover', { version: first.properties.version })).value).toBe('old');
  });

  test('a soft-deleted secret is purged by itself at its scheduled purge date (emulated clock)', async () => {
    await officer.setSecret('expires-from-bin', 'v');
    await pollToEnd(officer.beginDeleteSecret('expires-from-bin'));
    try {
      azure().clock.advance(91 * 24 * 3600_000);
      await expect(officer.getDeletedSecret('expires-from-bin')).rejects.toMatchObject({ statusCode: 404 });
      await expect(officer.setSecret('expires-from-bin', 'again')).resolves.toMatchObject({ value: 'again' });
    } finally {
      azure().clock.reset();
    }
  });

  test('deleting, recovering or purging an unknown name is 404', async () => {
    await expect(officer.beginDeleteSecret('never-existed')).rejects.toMatchObject({
      statusCode: 404,
      code: 'SecretNotFound',
    });
    await expect(officer.purgeDeletedSecret('never-existed')).rejects.toMatchObject({
      statusCode: 404,
      message: 'Deleted Secret not found: never-existed',
    });
    await expect(officer.beginRecoverDeletedSecret('never-existed')).rejects.toMatchObject({
      statusCode: 404,
    });
  });
});

describe('paging', () => {
  test('listPropertiesOfSecrets follows absolute nextLinks past 25 items: 60 secrets in 3 list requests', async () => {
    const client = clientFor('officer', {}, PAGING_VAULT);
    await client.getSecret('page-00'); // completes the challenge, so only list pages are counted below
    const before = listCount(PAGING_VAULT);
    const names: string[] = [];
    for await (const p of client.listPropertiesOfSecrets()) {
      expect(p.id).toBe(`${vaultUrl(PAGING_VAULT)}/secrets/${p.name}`);
      names.push(p.name);
    }
    expect(names).toEqual(Array.from({ length: 60 }, (_, i) => `page-${String(i).padStart(2, '0')}`));
    expect(listCount(PAGING_VAULT) - before).toBe(3);
  });

  test('byPage honours maxPageSize; the SDK follows the absolute nextLink as it is', async () => {
    const { exchanges, options } = recorder();
    const client = clientFor('reader', options, PAGING_VAULT);
    const sizes: number[] = [];
    for await (const page of client.listPropertiesOfSecrets().byPage({ maxPageSize: 10 }))
      sizes.push(page.length);
    expect(sizes).toEqual([10, 10, 10, 10, 10, 10]);

    const pages = exchanges.filter((x) => x.status === 200);
    expect(pages).toHaveLength(6);
    const nextLinks = pages.map((x) => (JSON.parse(x.body!) as { nextLink: string | null }).nextLink);
    expect(nextLinks.at(-1)).toBeNull();
    // Each request after the first is exactly the previous page's nextLink.
    pages.slice(1).forEach((x, i) => expect(x.url.href).toBe(nextLinks[i]));
    const link = new URL(nextLinks[0]!);
    expect(link.origin).toBe(vaultUrl(PAGING_VAULT));
    expect(link.pathname).toBe('/secrets');
    expect(link.searchParams.get('maxresults')).toBe('10');
    expect(link.searchParams.get('$skiptoken')).toBeTruthy();
    expect(link.searchParams.get('api-version')).toBe('2026-04-01');
  });

  test('maxresults above 25 is 400 BadParameter', async () => {
    const pages = clientFor('officer', {}, PAGING_VAULT)
      .listPropertiesOfSecrets()
      .byPage({ maxPageSize: 26 });
    const e = await failure(pages.next());
    expect(e).toMatchObject({ statusCode: 400, code: 'BadParameter' });
  });
});

describe('RBAC', () => {
  beforeAll(async () => {
    await officer.setSecret('rbac-target', 'top-secret');
  });

  test('Key Vault Reader lists and reads metadata but gets 403 ForbiddenByRbac for the value', async () => {
    const reader = clientFor('reader');
    const names: string[] = [];
    for await (const p of reader.listPropertiesOfSecrets()) names.push(p.name);
    expect(names).toContain('rbac-target');

    const e = await failure(reader.getSecret('rbac-target'));
    expect(e).toMatchObject({ statusCode: 403, code: 'Forbidden' });
    expect(e.details?.error?.innerError?.code).toBe('ForbiddenByRbac');
    const readerPrincipal = principalOf('reader');
    expect(e.message).toContain('Caller is not authorized to perform action on resource.\r\n');
    expect(e.message).toContain(`Caller: appid=${readerPrincipal.appId};oid=${readerPrincipal.objectId};`);
    expect(e.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'");
    expect(e.message).toContain(`/vaults/${VAULT}/secrets/rbac-target'`);
    expect(e.message).not.toContain('top-secret');
  });

  test('Key Vault Secrets User reads values but may not set them', async () => {
    const user = clientFor('user');
    expect((await user.getSecret('rbac-target')).value).toBe('top-secret');
    const e = await failure(user.setSecret('rbac-target', 'overwrite'));
    expect(e).toMatchObject({ statusCode: 403, code: 'Forbidden' });
    expect(e.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'");
  });

  test('a principal without any role assignment cannot even list', async () => {
    const { exchanges, options } = recorder();
    const e = await failure(clientFor('nobody', options).listPropertiesOfSecrets().next());
    // The pager reports status and code only; the body is the full RBAC refusal.
    expect(e).toMatchObject({ statusCode: 403, code: 'Forbidden' });
    const body = JSON.parse(exchanges.at(-1)!.body!) as {
      error: { code: string; message: string; innererror: { code: string } };
    };
    expect(body.error.innererror.code).toBe('ForbiddenByRbac');
    expect(body.error.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'");
  });
});

describe('api-version and throttling', () => {
  test('every supported api-version works; an unknown one is 400 BadParameter', async () => {
    await officer.setSecret('versioned-api', 'v');
    for (const serviceVersion of ['7.6', '2025-07-01'] as const) {
      expect((await clientFor('officer', { serviceVersion }).getSecret('versioned-api')).value).toBe('v');
    }
    const unknown = clientFor('officer', { serviceVersion: '1.0' as SecretClientOptions['serviceVersion'] });
    const e = await failure(unknown.getSecret('versioned-api'));
    expect(e).toMatchObject({ statusCode: 400, code: 'BadParameter' });
    expect(e.message).toBe(
      'The specified version (1.0) is not recognized. Consider using the latest supported version (2026-04-01).',
    );
  });

  test('a request without api-version is 400 BadParameter', async () => {
    // The SDK always sends one; plain fetch is the only way to leave it out.
    const res = await fetch(`${vaultUrl()}/secrets`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'BadParameter' } });
  });

  test('429 Throttled with Retry-After is retried by the SDK and then succeeds', async () => {
    await officer.setSecret('throttled', 'finally');
    const { exchanges, options } = recorder();
    const client = clientFor('officer', options);
    await client.getSecret('throttled'); // challenge done before the fault is armed
    exchanges.length = 0;
    azure().servers.faults.add({
      service: 'keyvault',
      instance: VAULT,
      status: 429,
      retryAfterSeconds: 1,
      body: {
        error: {
          code: 'Throttled',
          message:
            'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached',
        },
      },
      times: 1,
    });
    expect((await client.getSecret('throttled')).value).toBe('finally');
    expect(exchanges.map((x) => x.status)).toEqual([429, 200]);
    expect(exchanges[0]?.retryAfter).toBe('1');
    expect(exchanges[1]!.at - exchanges[0]!.at).toBeGreaterThanOrEqual(900);
  });
});

describe('service limits (throttling), per vault and per subscription', () => {
  const limits = () => azure().keyVaultThrottle.limits;
  afterEach(() => Object.assign(limits(), DOCUMENTED_LIMITS));

  test('the documented limits are on by default: 300 creates and 4,000 others per 10 s per vault', () => {
    expect(DOCUMENTED_LIMITS).toEqual({
      createPerVault: 300,
      otherPerVault: 4_000,
      perSubscription: 20_000,
      windowMs: 10_000,
    });
    expect(limits()).toEqual(DOCUMENTED_LIMITS);
  });

  test('past the vault limit: 429 Throttled, the real body and Retry-After; a refused request does not count', async () => {
    await officer.setSecret('limited', 'v');
    const { exchanges, options } = recorder();
    const client = clientFor('officer', { ...options, retryOptions: { maxRetries: 0 } });
    await client.getSecret('limited'); // the challenge, before the limit is set
    Object.assign(limits(), { otherPerVault: 3, windowMs: 1_500 });
    exchanges.length = 0;
    azure().servers.counts.reset();
    for (let i = 0; i < 3; i++) await client.getSecret('limited');
    const refused = await failure(client.getSecret('limited'));
    // The request counts show all four sent, and the one refused.
    const label = `keyvault/${VAULT} GET /secrets/:name/?`;
    expect(azure().servers.counts.snapshot()[label]).toBe(4);
    expect(azure().servers.counts.throttledSnapshot()).toEqual({ [label]: 1 });
    expect(refused.statusCode).toBe(429);
    expect(refused.code).toBe('Throttled');
    expect(refused.message).toBe(
      'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached',
    );
    const retryAfter = Number(exchanges.at(-1)?.retryAfter);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    // Refused again at once (it did not count, but the window is still full) …
    expect((await failure(client.getSecret('limited'))).statusCode).toBe(429);
    // … and another vault has its own budget.
    await clientFor('officer', {}, PAGING_VAULT).getSecret('page-00');
  });

  test('the SDK honours Retry-After and the operation succeeds', async () => {
    const { exchanges, options } = recorder();
    const client = clientFor('officer', options);
    await client.setSecret('limited-sdk', 'v');
    Object.assign(limits(), { otherPerVault: 2, windowMs: 1_000 });
    exchanges.length = 0;
    for (let i = 0; i < 3; i++) expect((await client.getSecret('limited-sdk')).value).toBe('v');
    expect(exchanges.map((x) => x.status)).toEqual([200, 200, 429, 200]);
    expect(exchanges[3]!.at - exchanges[2]!.at).toBeGreaterThanOrEqual(900);
  });

  test('creates have a budget of their own (300 per 10 s documented); reads go on meanwhile', async () => {
    const client = clientFor('officer', { retryOptions: { maxRetries: 0 } });
    await client.getSecret('limited').catch(() => undefined);
    Object.assign(limits(), { createPerVault: 2, windowMs: 5_000 });
    await client.setSecret('create-a', '1');
    await client.setSecret('create-b', '2');
    expect((await failure(client.setSecret('create-c', '3'))).statusCode).toBe(429);
    expect((await client.getSecret('create-b')).value).toBe('2');
    expect(azure().state.vaults.get(VAULT)?.secrets.has('create-c')).toBe(false);
  });

  test('the subscription-wide limit (5× a vault) spans every vault', async () => {
    const a = clientFor('officer', { retryOptions: { maxRetries: 0 } });
    const b = clientFor('officer', { retryOptions: { maxRetries: 0 } }, PAGING_VAULT);
    await a.getSecret('limited');
    await b.getSecret('page-00');
    Object.assign(limits(), { perSubscription: 3, windowMs: 5_000 });
    await a.getSecret('limited');
    await b.getSecret('page-00');
    await a.getSecret('limited');
    const refused = await failure(b.getSecret('page-00'));
    expect(refused.statusCode).toBe(429);
    expect(refused.message).toMatch(/Reason: SubscriptionRequestLimitReached$/);
  });
});
