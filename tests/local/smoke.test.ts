import { QueueClient } from '@azure/storage-queue';
import { appCredential, useLocalAzure } from '../support/localAzure';

const azure = useLocalAzure();

test('jest reaches local Azure over HTTPS and Azurite', async () => {
  const seed = await azure().seed({ apps: [{ displayName: 'a', secrets: [{ value: 'v-1234567890' }] }] });
  const token = await appCredential(azure(), seed.apps[0]!.appId, 'v-1234567890').getToken(
    'https://vault.azure.net/.default',
  );
  expect(token?.token.split('.')).toHaveLength(3);
  const q = new QueueClient(process.env.AZURITE_CONNECTION_STRING!, `smoke-${Date.now()}`);
  await q.create();
  await q.sendMessage('hello');
  expect((await q.getProperties()).approximateMessagesCount).toBe(1);
  await q.delete();
});
