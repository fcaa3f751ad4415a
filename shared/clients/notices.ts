import { ContainerClient, RestError } from '@azure/storage-blob';
import { deadline, TIMEOUTS } from './timeouts';

/** Remembers which one-off notices were sent, so each is sent once (e.g. "expires in 7 days"). */
export interface Notices {
  /** True the first time a key is seen; false ever after. */
  firstTime(key: string): Promise<boolean>;
}

/**
 * One empty blob per notice under `notices/` in the lock container: a conditional create is the
 * whole protocol (409 = already sent). No database of our own.
 */
export class BlobNotices implements Notices {
  private ready?: Promise<unknown>;

  constructor(private readonly container: ContainerClient) {}

  async firstTime(key: string): Promise<boolean> {
    this.ready ??= this.container
      .createIfNotExists({ abortSignal: deadline(TIMEOUTS.storage.requestMs) })
      .catch((e) => {
        this.ready = undefined;
        throw e;
      });
    await this.ready;
    try {
      await this.container.getBlockBlobClient(`notices/${key}`).upload('', 0, {
        conditions: { ifNoneMatch: '*' },
        abortSignal: deadline(TIMEOUTS.storage.requestMs),
      });
      return true;
    } catch (e) {
      if (e instanceof RestError && (e.statusCode === 409 || e.statusCode === 412)) return false;
      throw e;
    }
  }
}
