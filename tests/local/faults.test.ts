import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { faultSchema, Faults } from '../../local/azure/faults';
import { startStorageFaultPoint, type StorageFaultPoint } from '../../local/azure/storage-proxy';
import type { AzuriteHandle } from '../../local/azurite';
import { isTransient } from '../../shared/errors';
import { useLocalAzure } from '../support/localAzure';
import { createEngine, SECRETS, seedTenant, type Tenant } from '../support/tenant';

/**
 * The faults a storm needs that a plain status or drop cannot give: "done, but the answer was lost"
 * on every provider and Key Vault route, faults on Storage through a proxy in front of Azurite, and
 * Event Grid delivery faults.
 */
const azure = useLocalAzure();
let tenant: Tenant;
beforeAll(async () => {
  tenant = await seedTenant(azure());
});
afterEach(() => azure().servers.faults.clear());

async function rejects(work: Promise<unknown>): Promise<unknown> {
  try {
    await work;
  } catch (e) {
    return e;
  }
  throw new Error('expected a failure');
}

test('a rule acts before the handler (status, drop) or after it (lostAnswer, answerDelayMs), not both', () => {
  expect(faultSchema.safeParse({ lostAnswer: true }).success).toBe(true);
  expect(faultSchema.safeParse({ answerDelayMs: 100 }).success).toBe(true);
  expect(faultSchema.safeParse({ status: 500, lostAnswer: true }).success).toBe(false);
  expect(faultSchema.safeParse({}).success).toBe(false);
});

test('a rule with `every` serves one in N matching requests until its times are used; the rest pass to the next rule', () => {
  const faults = new Faults();
  faults.add({ service: 'keyvault', method: 'GET', status: 429, every: 3, times: 2 });
  faults.add({ service: 'keyvault', method: 'GET', drop: true, every: 2 });
  const key = { service: 'keyvault', method: 'GET', route: '/secrets', path: '/secrets' };
  const served = Array.from({ length: 12 }, () => {
    const rule = faults.take(key);
    return rule?.status ?? (rule?.drop ? 'drop' : '-');
  });
  // 429 on the 3rd and 6th; the others reach the drop rule, which takes every 2nd of those it sees.
  expect(served).toEqual(['-', 'drop', 429, '-', 'drop', 429, '-', 'drop', '-', 'drop', '-', 'drop']);
  // Other requests neither match nor count.
  expect(faults.take({ ...key, method: 'PUT' })).toBeUndefined();
});

describe('done, but the answer was lost', () => {
  test('Key Vault store: the client sees no answer (transient), the version was stored', async () => {
    const { vaults } = createEngine(tenant);
    const client = vaults.get(tenant.vaultName).client;
    await client.getSecret(SECRETS.pat); // the authentication challenge first: the fault hits the store
    const before = azure().state.vaults.get(tenant.vaultName)!.secrets.get(SECRETS.pat)!.length;
    azure().servers.faults.add({
      service: 'keyvault',
      instance: tenant.vaultName,
      method: 'PUT',
      lostAnswer: true,
      times: 4,
    });
    const error = await rejects(client.setSecret(SECRETS.pat, 'stored-anyway'));
    expect(isTransient(error)).toBe(true);
    const versions = azure().state.vaults.get(tenant.vaultName)!.secrets.get(SECRETS.pat)!;
    // The SDK retries a dropped connection: each attempt stored a version.
    expect(versions.length).toBeGreaterThan(before);
    expect(versions.at(-1)!.value).toBe('stored-anyway');
  });

  test('Databricks token/create: the token exists though the caller never learnt of it', async () => {
    const { deps } = createEngine(tenant);
    const ws = azure().state.workspaces.get(`ws-${tenant.vaultName}`)!;
    const before = ws.tokens.length;
    azure().servers.faults.add({
      service: 'databricks',
      method: 'POST',
      route: '/api/2.0/token/create',
      lostAnswer: true,
      times: 1,
    });
    const error = await rejects(
      deps.databricks.call(tenant.workspaceUrl, '/api/2.0/token/create', {
        method: 'POST',
        auth: { bearer: tenant.initial.pat },
        json: { lifetime_seconds: 3600, comment: 'lost' },
      }),
    );
    expect(isTransient(error)).toBe(true);
    expect(ws.tokens.length).toBe(before + 1);
  });

  test('Graph addPassword: the secret exists though the caller never learnt of it', async () => {
    const { deps } = createEngine(tenant);
    const before = (await deps.graph.getApplicationByAppId(tenant.appId)).passwordCredentials.length;
    azure().servers.faults.add({ service: 'graph', method: 'POST', lostAnswer: true, times: 1 });
    const error = await rejects(
      deps.graph.addPassword(tenant.appId, 'lost', new Date(Date.now() + 86_400_000)),
    );
    expect(isTransient(error)).toBe(true);
    expect((await deps.graph.getApplicationByAppId(tenant.appId)).passwordCredentials.length).toBe(
      before + 1,
    );
  });

  test('answerDelayMs: the change is made at once, the answer comes later', async () => {
    const { vaults } = createEngine(tenant);
    const client = vaults.get(tenant.vaultName).client;
    await client.getSecret(SECRETS.pat); // the authentication challenge first: the fault hits the store
    azure().servers.faults.add({
      service: 'keyvault',
      instance: tenant.vaultName,
      method: 'PUT',
      answerDelayMs: 500,
      times: 1,
    });
    const pending = client.setSecret(SECRETS.app, 'delayed-answer');
    await new Promise((r) => setTimeout(r, 250));
    expect(azure().state.vaults.get(tenant.vaultName)!.secrets.get(SECRETS.app)!.at(-1)!.value).toBe(
      'delayed-answer',
    );
    await pending;
  });
});

describe('Storage faults through the proxy in front of Azurite', () => {
  let point: StorageFaultPoint;
  beforeAll(async () => {
    const cs = process.env.AZURITE_CONNECTION_STRING!;
    const azurite: AzuriteHandle = {
      blobUrl: /BlobEndpoint=([^;]+);/.exec(cs)![1]!,
      queueUrl: /QueueEndpoint=([^;]+);/.exec(cs)![1]!,
      connectionString: cs,
      stop: async () => undefined,
    };
    point = await startStorageFaultPoint(azurite, azure().servers.faults);
  });
  afterAll(() => point.stop());

  test('a lease fault answers as Storage does (503 ServerBusy), then the lease works', async () => {
    const container = BlobServiceClient.fromConnectionString(point.connectionString, {
      retryOptions: { maxTries: 1 },
    }).getContainerClient(`locks-${randomBytes(4).toString('hex')}`);
    await container.createIfNotExists();
    const blob = container.getBlockBlobClient('lock');
    await blob.upload('', 0);
    azure().servers.faults.add({ service: 'blob', route: 'lease', status: 503, times: 1 });
    const error = await rejects(blob.getBlobLeaseClient().acquireLease(15));
    expect(error).toMatchObject({ statusCode: 503, code: 'ServerBusy' });
    expect(isTransient(error)).toBe(true);
    await blob.getBlobLeaseClient().acquireLease(15);
    expect(point.counts.total('blob PUT lease')).toBe(2);
  });

  test('a queue send whose answer is lost: the caller fails, the message is on the queue', async () => {
    const queue = QueueServiceClient.fromConnectionString(point.connectionString, {
      retryOptions: { maxTries: 1 },
    }).getQueueClient(`q-${randomBytes(4).toString('hex')}`);
    await queue.createIfNotExists();
    azure().servers.faults.add({
      service: 'queue',
      method: 'POST',
      route: 'messages',
      lostAnswer: true,
      times: 1,
    });
    const error = await rejects(queue.sendMessage('hello'));
    expect(isTransient(error)).toBe(true);
    const peek = await queue.peekMessages({ numberOfMessages: 5 });
    expect(peek.peekedMessageItems.map((m) => m.messageText)).toEqual(['hello']);
  });
});

describe('Event Grid delivery faults', () => {
  let server: Server;
  const received: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const expireOne = async (name: string) => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/events`;
    const sub = azure().events.subscribe({ url, retryDelayMs: 10 });
    await azure().seed({
      vaults: [
        { name: tenant.vaultName, secrets: [{ name, value: 'v', exp: azure().clock.nowSeconds() + 3600 }] },
      ],
    });
    azure().clock.advance(2 * 3600_000);
    await azure().events.idle();
    azure().events.unsubscribe(sub);
    return received.filter((b) => b.includes(`"ObjectName":"${name}"`) && b.includes('SecretExpired'));
  };

  test('a lost acknowledgement: the subscriber gets the event again', async () => {
    azure().servers.faults.add({ service: 'eventgrid-delivery', lostAnswer: true, times: 1 });
    expect(await expireOne('eg-lost-ack')).toHaveLength(2);
  });

  test('a failed delivery (503, dropped) is retried; the subscriber gets it once', async () => {
    azure().servers.faults.add({ service: 'eventgrid-delivery', status: 503, times: 1 });
    azure().servers.faults.add({ service: 'eventgrid-delivery', drop: true, times: 1 });
    expect(await expireOne('eg-retried')).toHaveLength(1);
  });
});
