/**
 * The secret lock on Azurite: a lease renewed while held, that says when it is no longer this
 * worker's (a renewal refused because another worker took the lapsed lease).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlobServiceClient } from '@azure/storage-blob';
import { BlobLeaseLocks, lockBlobName } from '../../shared/clients/lock';

const service = () => BlobServiceClient.fromConnectionString(process.env.AZURITE_CONNECTION_STRING as string);
const container = service().getContainerClient(`locks-test-${randomUUID().slice(0, 8)}`);
afterAll(() => container.deleteIfExists());

/** Renewals every 100 ms instead of every 5 s, so a test sees several. */
const locks = new BlobLeaseLocks(container, 15, 100);

test('a lease whose renewals succeed stays held, and a second worker cannot take the lock', async () => {
  const lease = await locks.acquire('kv-one/held');
  expect(lease).toBeDefined();
  await sleep(350);
  expect(lease!.held()).toBe(true);
  expect(await locks.acquire('kv-one/held')).toBeUndefined();
  await lease!.release();
  const next = await locks.acquire('kv-one/held');
  expect(next?.held()).toBe(true);
  await next!.release();
});

test('a lease another worker took over (the first one lapsed) is no longer held once a renewal is refused', async () => {
  const lease = await locks.acquire('kv-one/taken');
  expect(lease?.held()).toBe(true);
  // As if the lease had lapsed while this worker stalled: broken, then acquired by another worker.
  const blob = container.getBlockBlobClient(lockBlobName('kv-one/taken'));
  await blob.getBlobLeaseClient().breakLease(0);
  const rival = blob.getBlobLeaseClient();
  await rival.acquireLease(15);
  await sleep(350);
  expect(lease!.held()).toBe(false);
  await lease!.release();
  // Releasing with the stale lease id leaves the rival's lease alone.
  expect((await blob.getProperties()).leaseState).toBe('leased');
  await rival.releaseLease();
});
