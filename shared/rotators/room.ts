import { PermanentError } from '../errors';
import type { CredentialInfo, NewCredential, SecretContext } from './types';

/** A provider's cap on how many credentials one target holds. */
export interface CredentialLimit {
  /** For messages: "5 OAuth secrets per service principal". */
  name: string;
  /** Whether a provider error is this limit being hit. */
  reached(error: unknown): boolean;
}

/** The target is at a provider limit and nothing may be freed: names the limit and who is in the way. */
export class CredentialLimitError extends PermanentError {
  override name = 'CredentialLimitError';
  constructor(
    readonly limit: string,
    readonly inTheWay: CredentialInfo[],
    options?: { cause?: unknown },
  ) {
    // Markers are provider comments anyone could write: shown short, as a hint only.
    const shown = inTheWay.slice(0, 10).map((c) => c.id + (c.marker ? ` (${c.marker.slice(0, 80)})` : ''));
    const more = inTheWay.length > shown.length ? ` and ${inTheWay.length - shown.length} more` : '';
    super(
      `the provider limit of ${limit} is reached, and none of the existing credentials is one this service ` +
        `can prove it issued that nothing references: revoke one by hand (in the way: ${shown.join(', ') || 'none listed'}${more})`,
      options,
    );
  }
}

/**
 * Whether a credential may be revoked to make room for a new one: only one the issuance record
 * proves this service issued for this secret, that neither the current nor the previous version
 * references. With an unknown current id nothing is freed: no one can say which one the vault holds.
 */
export function mayFree(c: CredentialInfo, ctx: SecretContext): boolean {
  if (!ctx.credentialId || c.id === ctx.credentialId || c.id === ctx.previousCredentialId) return false;
  return ctx.issued?.(c.id) === true;
}

export interface RoomOps {
  ctx: SecretContext;
  list(): Promise<CredentialInfo[]>;
  revoke(id: string): Promise<void>;
}

/**
 * Creates a credential; if the provider refuses because the target is at `limit`, revokes what
 * `mayFree` allows and tries once more, or fails with a CredentialLimitError naming the limit and
 * the credentials in the way.
 */
export async function createWithRoom(
  limit: CredentialLimit,
  create: () => Promise<NewCredential>,
  ops: RoomOps,
): Promise<NewCredential> {
  try {
    return await create();
  } catch (e) {
    if (!limit.reached(e)) throw e;
    const existing = await ops.list();
    const free = existing.filter((c) => mayFree(c, ops.ctx));
    if (free.length === 0) throw new CredentialLimitError(limit.name, existing, { cause: e });
    for (const c of free) {
      await ops.revoke(c.id);
      await ops.ctx.freed?.(c.id);
    }
    try {
      return await create();
    } catch (again) {
      if (!limit.reached(again)) throw again;
      const left = existing.filter((c) => !free.includes(c));
      throw new CredentialLimitError(limit.name, left, { cause: again });
    }
  }
}
