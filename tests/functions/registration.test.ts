/**
 * The function app as the Functions host sees it: `npm run build` bundles functions/index.ts into the
 * file package.json `main` names, and loading it registers each function with `@azure/functions-core`
 * (here the stand-in from local/host/core.ts). These are the exact metadata the host indexes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { BindingInfo, FunctionMetadata } from '../../local/host/core';
import { LocalFunctionHost, loadFunctionApp, type LoadedFunctionApp } from '../../local/host/host';

const ROOT = path.resolve(__dirname, '..', '..');
let app: LoadedFunctionApp;

beforeAll(async () => {
  app = await loadFunctionApp({ build: 'always' });
}, 120_000);
afterAll(() => app?.unload());

const metadata = (name: string): FunctionMetadata => {
  const found = app.core.registrations.find((r) => r.metadata.name === name);
  if (!found) throw new Error(`${name} is not registered`);
  return found.metadata;
};
const bindings = (name: string, direction: 'in' | 'out'): BindingInfo[] =>
  Object.values(metadata(name).bindings).filter((b) => b.direction === direction);
/** Output queues as `queueName@connection`, sorted. */
const outputQueues = (name: string) =>
  bindings(name, 'out')
    .map((b) => `${b.type}:${b.queueName}@${b.connection}`)
    .sort();

test('the bundle is what package.json main points the host at, and @azure/functions is external', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { main: string };
  expect(app.bundle).toBe(path.resolve(ROOT, pkg.main));
  // The host's worker injects @azure/functions-core into its own copy of the library.
  expect(readFileSync(app.bundle, 'utf8')).toMatch(/require\("@azure\/functions"\)/);
});

test('the programming model is set once, by @azure/functions v4, before the functions register', () => {
  expect(app.core.programmingModel).toMatchObject({
    name: '@azure/functions',
    version: expect.stringMatching(/^4\./),
  });
  expect(app.core.registrations.map((r) => r.metadata.name)).toEqual([
    'scanVaults',
    'onKeyVaultEvent',
    'rotateSecret',
    'sendNotifications',
  ]);
  for (const r of app.core.registrations) expect(typeof r.handler).toBe('function');
});

test('scanVaults: a timer on %SCAN_SCHEDULE% with exponential-backoff retries, writing both queues', () => {
  const [trigger, ...more] = bindings('scanVaults', 'in');
  expect(more).toHaveLength(0);
  expect(trigger).toMatchObject({ type: 'timerTrigger', direction: 'in', schedule: '%SCAN_SCHEDULE%' });
  expect(metadata('scanVaults').retryOptions).toEqual({
    strategy: 'exponentialBackoff',
    retryStrategy: 'exponentialBackoff',
    maxRetryCount: 3,
    minimumInterval: { seconds: 30 },
    maximumInterval: { seconds: 300 },
  });
  expect(outputQueues('scanVaults')).toEqual([
    'queue:notifications@AzureWebJobsStorage',
    'queue:rotation-requests@AzureWebJobsStorage',
  ]);
});

test('onKeyVaultEvent: an Event Grid trigger writing notifications, without retry options', () => {
  expect(bindings('onKeyVaultEvent', 'in')).toEqual([
    expect.objectContaining({ type: 'eventGridTrigger', direction: 'in' }),
  ]);
  // Event Grid retries the delivery itself; a host retry policy would retry twice over.
  expect(metadata('onKeyVaultEvent').retryOptions).toBeUndefined();
  expect(outputQueues('onKeyVaultEvent')).toEqual(['queue:notifications@AzureWebJobsStorage']);
});

test('rotateSecret: the rotation-requests queue, writing notifications and rotation-requests-poison', () => {
  expect(bindings('rotateSecret', 'in')).toEqual([
    expect.objectContaining({
      type: 'queueTrigger',
      direction: 'in',
      queueName: 'rotation-requests',
      connection: 'AzureWebJobsStorage',
    }),
  ]);
  expect(metadata('rotateSecret').retryOptions).toBeUndefined();
  expect(outputQueues('rotateSecret')).toEqual([
    'queue:notifications@AzureWebJobsStorage',
    'queue:rotation-requests-poison@AzureWebJobsStorage',
  ]);
});

test('sendNotifications: the notifications queue, no outputs', () => {
  expect(bindings('sendNotifications', 'in')).toEqual([
    expect.objectContaining({
      type: 'queueTrigger',
      direction: 'in',
      queueName: 'notifications',
      connection: 'AzureWebJobsStorage',
    }),
  ]);
  expect(bindings('sendNotifications', 'out')).toEqual([]);
});

test('binding names are unique within each function, as the host requires', () => {
  for (const r of app.core.registrations) {
    const names = Object.keys(r.metadata.bindings);
    expect(new Set(names).size).toBe(names.length);
    for (const [name, b] of Object.entries(r.metadata.bindings)) expect(b.name).toBe(name);
  }
});

test('the stand-in refuses what the worker refuses: registering after startup', () => {
  expect(() => app.core.api.registerFunction({ name: 'late', bindings: {} }, () => undefined)).toThrow(
    'A function can only be registered during app startup.',
  );
});

describe('indexing, as the host does it when it starts', () => {
  const start = (env: Record<string, string | undefined>) =>
    LocalFunctionHost.start({
      build: 'never',
      listen: false,
      env: { AzureWebJobsStorage: 'UseDevelopmentStorage=true', ...env },
    });

  beforeAll(() => app.unload()); // one stand-in per process at a time

  test('an unset %SCAN_SCHEDULE% fails indexing with the host message', async () => {
    await expect(start({ SCAN_SCHEDULE: undefined })).rejects.toThrow(
      "Error indexing method 'Functions.scanVaults': '%SCAN_SCHEDULE%' does not resolve to a value.",
    );
  });

  test('a five-field cron expression is refused: NCRONTAB has six fields', async () => {
    await expect(start({ SCAN_SCHEDULE: '0 */6 * * *' })).rejects.toThrow(/has 5 fields; NCRONTAB takes six/);
  });

  test('a resolved schedule is validated and the registrations stay as registered', async () => {
    const host = await start({ SCAN_SCHEDULE: '0 30 */6 * * Mon-Fri' });
    try {
      expect(host.schedules.get('scanVaults')?.expression).toBe('0 30 */6 * * Mon-Fri');
      const trigger = Object.values(
        host.registrations.find((r) => r.metadata.name === 'scanVaults')!.metadata.bindings,
      ).find((b) => b.direction === 'in');
      expect(trigger?.schedule).toBe('%SCAN_SCHEDULE%');
      expect(host.eventGridUrl()).toMatch(
        /^http:\/\/127\.0\.0\.1:\d+\/runtime\/webhooks\/eventgrid\?functionName=onKeyVaultEvent&code=[\w-]{43}$/,
      );
    } finally {
      await host.stop();
    }
  });
});
