import type { TokenCredential } from '@azure/core-auth';
import { BlobServiceClient, ContainerClient, RestError } from '@azure/storage-blob';
import type { Settings } from '../config';
import { STORAGE } from '../constants';
import { PermanentError } from '../errors';

export interface Lease {
  /** `discard`: also delete the lock blob (the secret does not exist, so no blob is left behind for it). */
  release(options?: { discard?: boolean }): Promise<void>;
}

export interface Locks {
  /** The lease for `key`, or undefined if another worker holds it. */
  acquire(key: string): Promise<Lease | undefined>;
}

export function createBlobServiceClient(settings: Settings, credential: TokenCredential): BlobServiceClient {
  if (settings.AzureWebJobsStorage)
    return BlobServiceClient.fromConnectionString(settings.AzureWebJobsStorage);
  return new BlobServiceClient(settings.AzureWebJobsStorage__blobServiceUri as string, credential);
}

const LOCK_KEY = /^[0-9a-zA-Z-]{1,127}\/[0-9a-zA-Z-]{1,127}$/;

/**
 * The blob a lock key names: exactly `{vault}/{secret}` in Key Vault's alphabet, lower-cased (Key Vault
 * names are case-insensitive), so no key can reach another blob or container (`..`, `/`, `%2F`).
 */
export function lockBlobName(key: string): string {
  if (!LOCK_KEY.test(key)) throw new PermanentError(`"${key}" is not a {vault}/{secret} lock key`);
  return key.toLowerCase();
}

/**
 * Mutual exclusion per secret with blob leases (`locks/{vault}/{secret}`). The lease is renewed while
 * held, so a long rotation keeps it, and it expires on its own if the worker dies.
 */
export class BlobLeaseLocks implements Locks {
  private ready?: Promise<unknown>;

  constructor(
    private readonly container: ContainerClient,
    private readonly leaseSeconds = 60,
  ) {}

  static fromSettings(settings: Settings, credential: TokenCredential): BlobLeaseLocks {
    return new BlobLeaseLocks(
      createBlobServiceClient(settings, credential).getContainerClient(STORAGE.lockContainer),
    );
  }

  async acquire(key: string): Promise<Lease | undefined> {
    const name = lockBlobName(key);
    this.ready ??= this.container.createIfNotExists().catch((e) => {
      this.ready = undefined;
      throw e;
    });
    await this.ready;
    const blob = this.container.getBlockBlobClient(name);
    try {
      await blob.upload('', 0, { conditions: { ifNoneMatch: '*' } });
    } catch (e) {
      // 409/412: the blob exists already, which is the normal case.
      if (!(e instanceof RestError && (e.statusCode === 409 || e.statusCode === 412))) throw e;
    }
    const leaseClient = blob.getBlobLeaseClient();
    try {
      await leaseClient.acquireLease(this.leaseSeconds);
    } catch (e) {
      if (e instanceof RestError && e.statusCode === 409) return undefined;
      throw e;
    }
    const renew = setInterval(
      () => void leaseClient.renewLease().catch(() => undefined),
      (this.leaseSeconds * 1000) / 3,
    );
    renew.unref();
    return {
      release: async (options) => {
        clearInterval(renew);
        if (options?.discard)
          await blob.delete({ conditions: { leaseId: leaseClient.leaseId } }).catch(() => undefined);
        else await leaseClient.releaseLease().catch(() => undefined);
      },
    };
  }
}
