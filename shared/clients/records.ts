import { ContainerClient, RestError } from '@azure/storage-blob';
import { deadline, TIMEOUTS } from './timeouts';

/**
 * Small durable facts as empty blobs in the lock container (`{prefix}/{key}`): a conditional create
 * is atomic across instances, the blob's last-modified time says when, a delete forgets it.
 */
export interface Records {
  /** Creates the record; true if this call created it, false if it already existed. */
  create(key: string): Promise<boolean>;
  /** When the record was written, or undefined if there is none. */
  writtenAt(key: string): Promise<Date | undefined>;
  /**
   * Takes a claim: creates the record, or replaces one older than `staleMs` (its holder died). True if
   * this call holds the claim now, also when `owner` (an id the claimant keeps across its retries) took
   * it before.
   */
  claim(key: string, staleMs: number, owner?: string): Promise<boolean>;
  delete(key: string): Promise<void>;
}

/** The blob metadata key of a claim's owner. */
const OWNER = 'owner';
const ownerMetadata = (owner: string | undefined) => (owner === undefined ? undefined : { [OWNER]: owner });

const conflict = (e: unknown) =>
  e instanceof RestError && (e.statusCode === 409 || e.statusCode === 412 || e.statusCode === 404);

export class BlobRecords implements Records {
  private ready?: Promise<unknown>;

  constructor(
    private readonly container: ContainerClient,
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
  ) {}

  private blob(key: string) {
    return this.container.getBlockBlobClient(`${this.prefix}/${key}`);
  }

  private async ensure(): Promise<void> {
    this.ready ??= this.container
      .createIfNotExists({ abortSignal: deadline(TIMEOUTS.storage.requestMs) })
      .catch((e) => {
        this.ready = undefined;
        throw e;
      });
    await this.ready;
  }

  async create(key: string, owner?: string): Promise<boolean> {
    await this.ensure();
    try {
      await this.blob(key).upload('', 0, {
        conditions: { ifNoneMatch: '*' },
        metadata: ownerMetadata(owner),
        abortSignal: deadline(TIMEOUTS.storage.requestMs),
      });
      return true;
    } catch (e) {
      if (conflict(e)) return false;
      throw e;
    }
  }

  async writtenAt(key: string): Promise<Date | undefined> {
    await this.ensure();
    try {
      const p = await this.blob(key).getProperties({ abortSignal: deadline(TIMEOUTS.storage.requestMs) });
      return p.lastModified;
    } catch (e) {
      if (e instanceof RestError && e.statusCode === 404) return undefined;
      throw e;
    }
  }

  async claim(key: string, staleMs: number, owner?: string): Promise<boolean> {
    if (await this.create(key, owner)) return true;
    let props;
    try {
      props = await this.blob(key).getProperties({ abortSignal: deadline(TIMEOUTS.storage.requestMs) });
    } catch (e) {
      // Released in between: take it fresh.
      if (e instanceof RestError && e.statusCode === 404) return this.create(key, owner);
      throw e;
    }
    if (owner !== undefined && props.metadata?.[OWNER] === owner) return true;
    if (!props.lastModified || this.now() - props.lastModified.getTime() < staleMs) return false;
    try {
      // Only the instance that saw this exact stale record replaces it.
      await this.blob(key).upload('', 0, {
        conditions: { ifMatch: props.etag },
        metadata: ownerMetadata(owner),
        abortSignal: deadline(TIMEOUTS.storage.requestMs),
      });
      return true;
    } catch (e) {
      if (conflict(e)) return false;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    await this.ensure();
    await this.blob(key).deleteIfExists({ abortSignal: deadline(TIMEOUTS.storage.requestMs) });
  }
}
