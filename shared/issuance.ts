/**
 * The issuance record: what this service asked a provider for, kept in the service's own storage
 * (the `issuance` blob container), which a person who can write secret tags cannot write. It is the
 * only authority for what the engine may revoke (revoke-previous, reconcile, compensation).
 *
 * API (small on purpose; other branches build on it):
 * - `targetKey(kind, target)`: the stable key of a provider target (`entra-app-secret {"appId":"…"}`).
 * - `Issuance.begin(start)`: written BEFORE the provider is asked for a credential; state `requested`.
 * - `Issuance.update(record, change)`: `issued` (with the provider's credential id, right after create),
 *   `stored` (the vault holds it, with the version), `revoked`, `refused` (the provider created nothing).
 * - `Issuance.adopt(start, credentialId, version)`: a credential the service did not issue, that the
 *   engine verified at the provider to be the one the vault held (see `RotationEngine`), state `adopted`.
 * - `Issuance.list(vault, secret)`: every record of one secret, oldest first.
 * - `proves(records, kind, target, credentialId)`: the live record that proves this service may revoke
 *   `credentialId` for this secret and target, or undefined.
 * - `Issuance.claimant(target, credentialId)`: the secret whose record holds `credentialId` for that
 *   target, whichever vault it is in. Secrets in different vaults may share a target; a lost answer's
 *   credential is found by its marker, and a sibling's credential that carries the same marker by
 *   chance (an SP secret's marker is its lifetime: 3 in 3,599) is the sibling's, not an orphan.
 *
 * One JSON blob per rotation: `{vault}/{secret}/{rotationId}.json`, names lower-cased (Key Vault names
 * are case-insensitive) and checked, so a record can never land outside its secret's folder. A
 * credential id, once known, is also claimed for its target: `_targets/{sha256(target)}/{sha256(id)}`
 * (`_` is not in any vault name), written before the record that holds the id, so no vault can hold a
 * credential whose claim is missing.
 */
import { createHash } from 'node:crypto';
import { ContainerClient, RestError } from '@azure/storage-blob';
import { PermanentError } from './errors';

export type IssuanceState = 'requested' | 'issued' | 'stored' | 'adopted' | 'revoked' | 'refused';

export interface IssuanceStart {
  vault: string;
  secret: string;
  kind: string;
  /** `targetKey(kind, target)`. */
  target: string;
  rotationId: string;
  at: Date;
}

export interface IssuanceRecord {
  v: 1;
  vault: string;
  secret: string;
  kind: string;
  target: string;
  rotationId: string;
  /** When the provider was (about to be) asked, ISO. */
  createdAt: string;
  state: IssuanceState;
  /** The provider's id of the credential, once known. */
  credentialId?: string;
  /** The Key Vault version that holds (or held) it. */
  version?: string;
  updatedAt: string;
}

export interface IssuanceChange {
  state: Exclude<IssuanceState, 'requested' | 'adopted'>;
  credentialId?: string;
  version?: string;
  at: Date;
}

export interface Issuance {
  begin(start: IssuanceStart): Promise<IssuanceRecord>;
  adopt(start: IssuanceStart, credentialId: string, version: string | undefined): Promise<IssuanceRecord>;
  update(record: IssuanceRecord, change: IssuanceChange): Promise<IssuanceRecord>;
  list(vault: string, secret: string): Promise<IssuanceRecord[]>;
  claimant(target: string, credentialId: string): Promise<Claimant | undefined>;
}

/** The secret whose issuance record holds a credential id (`Issuance.claimant`). */
export interface Claimant {
  vault: string;
  secret: string;
  rotationId: string;
}

/** States in which the credential may exist at the provider and this service may revoke it. */
const LIVE: readonly IssuanceState[] = ['issued', 'stored', 'adopted'];

/** A provider target as a stable string: the kind and the target's fields in key order, lower-cased. */
export function targetKey(kind: string, target: unknown): string {
  const fields = Object.entries(target as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.localeCompare(b));
  return `${kind} ${JSON.stringify(Object.fromEntries(fields))}`.toLowerCase();
}

/** The live record of `credentialId` for this kind and target, if the service issued or adopted it. */
export function proves(
  records: readonly IssuanceRecord[],
  kind: string,
  target: string,
  credentialId: string,
): IssuanceRecord | undefined {
  return records.find(
    (r) =>
      r.kind === kind && r.target === target && r.credentialId === credentialId && LIVE.includes(r.state),
  );
}

const NAME = /^[0-9a-zA-Z-]{1,127}$/;
const ROTATION_ID = /^[0-9a-f-]{36}$/i;

/** The folder of one secret's records; refuses any name that is not a Key Vault name. */
export function issuancePrefix(vault: string, secret: string): string {
  if (!NAME.test(vault) || !NAME.test(secret))
    throw new PermanentError(`"${vault}/${secret}" is not a Key Vault vault/secret name`);
  return `${vault.toLowerCase()}/${secret.toLowerCase()}/`;
}

function blobName(r: { vault: string; secret: string; rotationId: string }): string {
  if (!ROTATION_ID.test(r.rotationId)) throw new PermanentError(`"${r.rotationId}" is not a rotation id`);
  return `${issuancePrefix(r.vault, r.secret)}${r.rotationId.toLowerCase()}.json`;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function claimName(target: string, credentialId: string): string {
  return `_targets/${sha256(target)}/${sha256(credentialId)}.json`;
}

function fresh(start: IssuanceStart, state: IssuanceState): IssuanceRecord {
  return {
    v: 1,
    vault: start.vault.toLowerCase(),
    secret: start.secret.toLowerCase(),
    kind: start.kind,
    target: start.target,
    rotationId: start.rotationId.toLowerCase(),
    createdAt: start.at.toISOString(),
    state,
    updatedAt: start.at.toISOString(),
  };
}

/** The records in blob storage. A record is created once (If-None-Match) and then only moves forward. */
export class BlobIssuance implements Issuance {
  private ready?: Promise<unknown>;

  constructor(private readonly container: ContainerClient) {}

  private async init(): Promise<void> {
    this.ready ??= this.container.createIfNotExists().catch((e) => {
      this.ready = undefined;
      throw e;
    });
    await this.ready;
  }

  private async upload(name: string, value: unknown, create: boolean): Promise<void> {
    await this.init();
    const body = JSON.stringify(value);
    await this.container.getBlockBlobClient(name).upload(body, Buffer.byteLength(body), {
      blobHTTPHeaders: { blobContentType: 'application/json' },
      ...(create ? { conditions: { ifNoneMatch: '*' } } : {}),
    });
  }

  /** The record, after the claim of a credential id it holds for the first time. */
  private async write(record: IssuanceRecord, create: boolean, claim: boolean): Promise<IssuanceRecord> {
    if (claim && record.credentialId) {
      const claimant: Claimant = {
        vault: record.vault,
        secret: record.secret,
        rotationId: record.rotationId,
      };
      await this.upload(claimName(record.target, record.credentialId), claimant, false);
    }
    await this.upload(blobName(record), record, create);
    return record;
  }

  begin(start: IssuanceStart): Promise<IssuanceRecord> {
    return this.write(fresh(start, 'requested'), true, false);
  }

  adopt(start: IssuanceStart, credentialId: string, version: string | undefined): Promise<IssuanceRecord> {
    return this.write({ ...fresh(start, 'adopted'), credentialId, version }, true, true);
  }

  update(record: IssuanceRecord, change: IssuanceChange): Promise<IssuanceRecord> {
    const credentialId = change.credentialId ?? record.credentialId;
    return this.write(
      {
        ...record,
        state: change.state,
        credentialId,
        version: change.version ?? record.version,
        updatedAt: change.at.toISOString(),
      },
      false,
      credentialId !== record.credentialId,
    );
  }

  async claimant(target: string, credentialId: string): Promise<Claimant | undefined> {
    await this.init();
    try {
      const buffer = await this.container.getBlobClient(claimName(target, credentialId)).downloadToBuffer();
      return JSON.parse(buffer.toString('utf8')) as Claimant;
    } catch (e) {
      if (e instanceof RestError && e.statusCode === 404) return undefined;
      throw e;
    }
  }

  async list(vault: string, secret: string): Promise<IssuanceRecord[]> {
    await this.init();
    const records: IssuanceRecord[] = [];
    for await (const item of this.container.listBlobsFlat({ prefix: issuancePrefix(vault, secret) })) {
      try {
        const buffer = await this.container.getBlobClient(item.name).downloadToBuffer();
        records.push(JSON.parse(buffer.toString('utf8')) as IssuanceRecord);
      } catch (e) {
        // Deleted between list and read: nothing to act on.
        if (!(e instanceof RestError && e.statusCode === 404)) throw e;
      }
    }
    return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}
