import type { TokenCredential } from '@azure/core-auth';
import { BlobServiceClient, ContainerClient, RestError } from '@azure/storage-blob';
import type { Settings } from '../config';
import { STORAGE } from '../constants';
import { PermanentError } from '../errors';
import { deadline, STORAGE_RETRY, TIMEOUTS } from './timeouts';

export interface Lease {
  /**
   * Whether the lock is still this worker's: not once a renewal was refused (the lease lapsed and
   * another worker may hold it) or no renewal has succeeded for a whole lease period.
   */
  held(): boolean;
  /** `discard`: also delete the lock blob (the secret does not exist, so no blob is left behind for it). */
  release(options?: { discard?: boolean }): Promise<void>;
}

export interface Locks {
  /** The lease for `key`, or undefined if another worker holds it. */
  acquire(key: string): Promise<Lease | undefined>;
}

export function createBlobServiceClient(settings: Settings, credential: TokenCredential): BlobServiceClient {
  if (settings.AzureWebJobsStorage)
    return BlobServiceClient.fromConnectionString(settings.AzureWebJobsStorage, STORAGE_RETRY);
  return new BlobServiceClient(
    settings.AzureWebJobsStorage__blobServiceUri as string,
    credential,
    STORAGE_RETRY,
  );
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
 * The lease length: Storage's shortest (15 s), renewed every third of it while held. A worker that
 * dies (a crash, a scale-in) frees its secrets within 15 s, so the queue's retry of its message finds
 * the lock free instead of waiting out a minute behind a holder that is gone.
 */
export const LEASE_SECONDS = 15;

/**
 * Mutual exclusion per secret with blob leases (`locks/{vault}/{secret}`). The lease is renewed while
 * held, so a long rotation keeps it, and it expires on its own if the worker dies.
 */
export class BlobLeaseLocks implements Locks {
  private ready?: Promise<unknown>;

  constructor(
    private readonly container: ContainerClient,
    private readonly leaseSeconds = LEASE_SECONDS,
    private readonly renewEveryMs = (leaseSeconds * 1000) / 3,
  ) {}

  static fromSettings(settings: Settings, credential: TokenCredential): BlobLeaseLocks {
    return new BlobLeaseLocks(
      createBlobServiceClient(settings, credential).getContainerClient(STORAGE.lockContainer),
    );
  }

  async acquire(key: string): Promise<Lease | undefined> {
    const name = lockBlobName(key);
    const signal = () => deadline(TIMEOUTS.storage.requestMs);
    this.ready ??= this.container.createIfNotExists({ abortSignal: signal() }).catch((e) => {
      this.ready = undefined;
      throw e;
    });
    await this.ready;
    const blob = this.container.getBlockBlobClient(name);
    try {
      await blob.upload('', 0, { conditions: { ifNoneMatch: '*' }, abortSignal: signal() });
    } catch (e) {
      // 409/412: the blob exists already, which is the normal case.
      if (!(e instanceof RestError && (e.statusCode === 409 || e.statusCode === 412))) throw e;
    }
    const leaseClient = blob.getBlobLeaseClient();
    // The lease runs from when Storage took the request: from before it was sent, to be safe.
    let since = Date.now();
    try {
      await leaseClient.acquireLease(this.leaseSeconds, { abortSignal: signal() });
    } catch (e) {
      if (e instanceof RestError && e.statusCode === 409) return undefined;
      throw e;
    }
    let refused = false;
    // A renewal that fails for a while (a Storage blip) is tried again at the next tick; the lease
    // holds until `since` + leaseSeconds whatever happens meanwhile.
    const renew = setInterval(() => {
      const sent = Date.now();
      leaseClient.renewLease({ abortSignal: signal() }).then(
        () => (since = Math.max(since, sent)),
        (e: unknown) => {
          // 409 LeaseIdMismatch / LeaseNotPresent: the lease lapsed and is someone else's, or nobody's.
          if (e instanceof RestError && (e.statusCode === 409 || e.statusCode === 412)) refused = true;
        },
      );
    }, this.renewEveryMs);
    renew.unref();
    return {
      held: () => !refused && Date.now() - since < this.leaseSeconds * 1000,
      release: async (options) => {
        clearInterval(renew);
        if (options?.discard)
          await blob
            .delete({ conditions: { leaseId: leaseClient.leaseId }, abortSignal: signal() })
            .catch(() => undefined);
        else await leaseClient.releaseLease({ abortSignal: signal() }).catch(() => undefined);
      },
    };
  }
}
