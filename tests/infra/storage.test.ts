/** Storage names and settings in Bicep against the code's constants and host.json. */
import { MAX_DEQUEUE_COUNT, STORAGE } from '../../shared/constants';
import { read, readInfra, resources, stringVariable, variable } from './bicep';

const storage = readInfra('app/storage.bicep');

describe('storage account', () => {
  test('queue and container names equal the STORAGE constants', () => {
    expect(stringVariable(storage, 'rotationQueueName')).toBe(STORAGE.rotationQueue);
    expect(stringVariable(storage, 'notificationQueueName')).toBe(STORAGE.notificationQueue);
    expect(stringVariable(storage, 'lockContainerName')).toBe(STORAGE.lockContainer);
    expect(stringVariable(storage, 'issuanceContainerName')).toBe(STORAGE.issuanceContainer);
  });

  test('both queues, their -poison twins, and the lock, deployment and dead-letter containers are created', () => {
    const queues = variable(storage, 'queueNames');
    for (const q of [
      'rotationQueueName',
      "'${rotationQueueName}-poison'",
      'notificationQueueName',
      "'${notificationQueueName}-poison'",
    ]) {
      expect(queues).toContain(q);
    }
    const containers = variable(storage, 'containerNames');
    for (const c of [
      'deploymentContainerName',
      'lockContainerName',
      'issuanceContainerName',
      'deadLetterContainerName',
    ]) {
      expect(containers).toContain(c);
    }
    const types = resources(storage).map((r) => `${r.type}${r.head.includes('for ') ? '[]' : ''}`);
    expect(types).toEqual(
      expect.arrayContaining([
        'Microsoft.Storage/storageAccounts/queueServices/queues[]',
        'Microsoft.Storage/storageAccounts/blobServices/containers[]',
      ]),
    );
    expect(resources(storage).find((r) => r.symbol === 'queues')?.head).toMatch(
      /for queueName in queueNames/,
    );
    expect(resources(storage).find((r) => r.symbol === 'containers')?.head).toMatch(
      /for containerName in containerNames/,
    );
  });

  test('no shared keys, no public blobs, TLS 1.2, HTTPS only', () => {
    const account = resources(storage).find(
      (r) => r.type === 'Microsoft.Storage/storageAccounts' && !r.existing,
    );
    const body = account?.body ?? '';
    expect(body).toMatch(/allowSharedKeyAccess:\s*false/);
    expect(body).toMatch(/allowBlobPublicAccess:\s*false/);
    expect(body).toMatch(/minimumTlsVersion:\s*'TLS1_2'/);
    expect(body).toMatch(/supportsHttpsTrafficOnly:\s*true/);
    expect(body).toMatch(/defaultToOAuthAuthentication:\s*true/);
    for (const c of resources(storage).filter((r) => r.type.endsWith('/containers'))) {
      expect(c.body).toMatch(/publicAccess:\s*'None'/);
    }
  });
});

describe('host.json', () => {
  const host = JSON.parse(read('host.json'));

  test('uses the v4 extension bundle range', () => {
    expect(host.extensionBundle).toEqual({
      id: 'Microsoft.Azure.Functions.ExtensionBundle',
      version: '[4.*, 5.0.0)',
    });
  });

  test('moves a message to -poison after MAX_DEQUEUE_COUNT attempts (the poison alert relies on it)', () => {
    expect(host.extensions.queues.maxDequeueCount).toBe(MAX_DEQUEUE_COUNT);
  });

  test('does not sample custom events away (the workbook and alerts count them)', () => {
    const excluded: string = host.logging?.applicationInsights?.samplingSettings?.excludedTypes ?? '';
    expect(excluded.split(';')).toContain('Event');
  });
});
