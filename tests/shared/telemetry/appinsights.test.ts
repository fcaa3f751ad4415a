/**
 * The Application Insights sink with the real `applicationinsights` 3.x SDK against a local HTTPS
 * ingestion endpoint: events arrive as customEvents (EventData) with our names and dimensions, sent with
 * an Entra bearer token, and the SDK is not loaded before the first flush.
 */
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ensureCertificates } from '../../../local/azure/certs';
import { parseSettings } from '../../../shared/config';
import { applicationInsightsClient, createTelemetry } from '../../../shared/telemetry/telemetry';

interface Envelope {
  name: string;
  iKey: string;
  data: {
    baseType: string;
    baseData: { name: string; properties?: Record<string, string>; measurements?: Record<string, number> };
  };
}

const IKEY = '11111111-2222-3333-4444-555555555555';
let server: Server;
let endpoint = '';
const received: { authorization?: string; envelopes: Envelope[] }[] = [];

beforeAll(async () => {
  const certs = ensureCertificates();
  server = createServer({ cert: certs.certPem, key: certs.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const text = body.toString('utf8').trim();
      const envelopes = (
        text.startsWith('[') ? JSON.parse(text) : text.split('\n').map((l) => JSON.parse(l))
      ) as Envelope[];
      if (req.url?.startsWith('/v2.1/track'))
        received.push({ authorization: req.headers.authorization, envelopes });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ itemsReceived: envelopes.length, itemsAccepted: envelopes.length, errors: [] }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, 'localhost', resolve));
  endpoint = `https://localhost:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  received.length = 0;
  process.env.APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL = 'true';
});

function credential(scopes: string[]): TokenCredential {
  return {
    getToken: (scope): Promise<AccessToken> => {
      scopes.push(...(Array.isArray(scope) ? scope : [scope]));
      return Promise.resolve({ token: 'entra-token', expiresOnTimestamp: Date.now() + 3600_000 });
    },
  };
}

const events = (): Envelope[] =>
  received.flatMap((r) => r.envelopes).filter((e) => e.data.baseType === 'EventData');

test('custom events reach customEvents with their name and dimensions, with an Entra token', async () => {
  const scopes: string[] = [];
  const settings = parseSettings({
    KEY_VAULT_URIS: 'https://kv-apps.vault.azure.net',
    AZURE_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
    APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=${IKEY};IngestionEndpoint=${endpoint}`,
  });
  process.env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING = 'Authorization=AAD';
  try {
    const telemetry = createTelemetry(settings, credential(scopes), () => undefined).with({
      invocationId: 'inv-1',
    });
    telemetry.event('SecretRotated', {
      vault: 'kv-apps',
      secret: 'app-secret',
      kind: 'entra-app-secret',
      durationMs: 42,
    });
    expect(received).toEqual([]);
    await telemetry.flush();
  } finally {
    delete process.env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING;
  }
  const [event] = events();
  expect(event?.iKey).toBe(IKEY);
  expect(event?.data.baseData.name).toBe('SecretRotated');
  expect(event?.data.baseData.properties).toMatchObject({
    vault: 'kv-apps',
    secret: 'app-secret',
    kind: 'entra-app-secret',
    durationMs: '42',
    invocationId: 'inv-1',
  });
  expect(event?.data.baseData.measurements).toMatchObject({ durationMs: 42 });
  expect(received.every((r) => r.authorization === 'Bearer entra-token')).toBe(true);
  expect(scopes).toEqual(expect.arrayContaining(['https://monitor.azure.com/.default']));
});

test('Entra ingestion without a credential sends nothing and says why, without failing the flush', async () => {
  const errors: string[] = [];
  const client = applicationInsightsClient(
    `InstrumentationKey=${IKEY};IngestionEndpoint=${endpoint}`,
    undefined,
    'Authorization=AAD',
    (m) => errors.push(m),
  );
  client.trackEvent({ name: 'ScanCompleted', properties: { vault: 'kv' }, measurements: {} });
  await client.flush();
  expect(events()).toEqual([]);
  expect(errors).toEqual([expect.stringContaining('1 event(s) not sent: Entra ingestion is required')]);
});

test('the SDK is not loaded until a flush has events to send', () => {
  const root = path.resolve(__dirname, '..', '..', '..');
  const script = `
    const { createTelemetry } = require('./shared/telemetry/telemetry.ts');
    const loaded = () => Object.keys(require.cache).some((k) => k.includes('node_modules/applicationinsights/'));
    const t = createTelemetry({ APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=${IKEY};IngestionEndpoint=https://127.0.0.1:9/' }, undefined, () => {});
    t.event('ScanCompleted', { vault: 'kv' });
    const before = loaded();
    t.flush().then(() => { console.log(JSON.stringify({ before, after: loaded() })); process.exit(0); });
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL: 'true' },
  });
  expect(JSON.parse(out.trim().split('\n').pop() ?? '{}')).toEqual({ before: false, after: true });
});
