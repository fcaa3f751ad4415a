/**
 * Reconcile: what interrupted rotations of a secret left at its provider, found through the issuance
 * records only and revoked. Runs under the secret's lock, inside a rotation (before it asks for a new
 * credential) or on its own (the scan, an operator).
 */
import { MARKER_PREFIX, TAGS } from '../constants';
import type { Settings } from '../config';
import { proves, type Claimant, type Issuance, type IssuanceRecord } from '../issuance';
import type { CredentialInfo, Rotator, RotatorDeps } from '../rotators/types';
import { advance, checkBinding, openRecords, step, updateTags, type OpResult, type Session } from './session';

/** Clock skew allowed between this service and a provider when matching creation times. */
const SKEW_MS = 60_000;

export interface ReconcileOptions {
  settings: Settings;
  issuance: Issuance;
  deps: RotatorDeps;
  now: () => Date;
  /** Credentials younger than this are never treated as orphans (a rotation may be in flight). */
  orphanSafetyMs: number;
  /** How long a provider may still carry out a create request whose answer never came. */
  inFlightMs: number;
}

/** Whether the provider may still carry out the create request of a record that has no answer. */
function inFlight(s: Session, record: IssuanceRecord, inFlightMs: number): boolean {
  return !record.credentialId && s.now.getTime() - Date.parse(record.createdAt) < inFlightMs;
}

/**
 * Orphans are credentials an interrupted rotation of this secret asked for and never stored: found
 * only through the issuance records, never by tag or time window alone. A record with the
 * credential's id is revoked by id; one without (the answer was lost) by the marker its request
 * carried (a comment, a name, or for SP secrets the lifetime: `Rotator.carries`).
 */
export async function reconcileLocked(
  s: Session,
  forRotation: boolean,
  o: ReconcileOptions,
): Promise<OpResult> {
  const { policy, current, ctx } = s;
  // Under the lock no rotation of this secret is in flight; a worker whose lease lapsed may be, until
  // the safety period has passed. One that never heard back has stopped once its request has.
  const open = openRecords(s).filter(
    (r) =>
      forRotation ||
      (r.credentialId
        ? Date.parse(r.createdAt) <= s.now.getTime() - o.orphanSafetyMs
        : !inFlight(s, r, o.inFlightMs)),
  );
  // The tag is cleared only once no record is left open: a request still in flight keeps it.
  const clearStarted = async () => {
    if (!policy.state.rotationStarted || forRotation || s.dryRun || openRecords(s).length) return;
    const tags = { ...current.properties.tags };
    delete tags[TAGS.rotationStarted];
    await step('reconcile', () => updateTags(s, tags));
  };
  if (open.length === 0) {
    await clearStarted();
    return { status: 'skipped', reason: 'no interrupted rotation in the issuance record' } as OpResult;
  }
  await step('binding', () => checkBinding(s, o.settings, o.deps));
  const revoked: string[] = [];
  const plan: string[] = [];
  let listed: CredentialInfo[] | undefined;
  const list = async () =>
    (listed ??= await step('reconcile', () => policy.rotator.list(policy.target, ctx, o.deps)));
  for (const record of open) {
    // The vault holds it (the `stored` write was lost): complete the record, revoke nothing.
    if (current.properties.tags?.[TAGS.rotationId] === record.rotationId) {
      if (!s.dryRun)
        await advance(o.issuance, s, record, {
          state: 'stored',
          version: current.properties.version,
          at: o.now(),
        });
      continue;
    }
    let ids = record.credentialId ? [record.credentialId] : [];
    if (!record.credentialId) {
      // The answer was lost: the credential is found by the marker its request carried, created
      // within this rotation's window, never one the vault holds or another record proves.
      const marker = `${MARKER_PREFIX}:${ctx.vaultName}/${ctx.secretName}:${record.rotationId}`;
      const since = Date.parse(record.createdAt) - SKEW_MS;
      const candidates = (await list()).filter(
        (c) =>
          c.createdAt.getTime() >= since &&
          carries(policy.rotator, c, marker) &&
          c.id !== policy.state.credentialId &&
          !proves(s.records, policy.kind, s.target, c.id),
      );
      // A credential another record claims (a sibling on a shared target whose marker matches by
      // chance) is that secret's, never this request's orphan. A claim naming this very request is
      // its own: the host died after the claim and before the record took the id.
      const claimed = await Promise.all(
        candidates.map((c) => step('reconcile', () => o.issuance.claimant(s.target, c.id))),
      );
      ids = candidates.filter((_, i) => !claimed[i] || sameRequest(claimed[i], record)).map((c) => c.id);
      if (ids.length === 0) {
        // Nothing carries its marker: the provider created nothing, once it can no longer act on the
        // request. Until then the record stays open (and, after a rotation, so does its tag).
        if (inFlight(s, record, o.inFlightMs)) continue;
        if (s.dryRun) plan.push(`close interrupted rotation ${record.rotationId} (nothing was created)`);
        else await advance(o.issuance, s, record, { state: 'refused', at: o.now() });
        continue;
      }
    }
    if (s.dryRun) {
      plan.push(...ids.map((id) => `revoke orphaned credential ${id}`));
      continue;
    }
    for (const orphan of ids) {
      await step('reconcile', () => policy.rotator.revoke(policy.target, orphan, ctx, o.deps));
      revoked.push(orphan);
      s.notify('orphan-revoked', {
        credentialId: orphan,
        createdAt: record.createdAt,
        target: policy.rotator.describe(policy.target),
      });
    }
    await advance(o.issuance, s, record, { state: 'revoked', credentialId: ids[0], at: o.now() });
  }
  if (s.dryRun) return { status: 'planned', plan } as OpResult;
  await clearStarted();
  return revoked.length
    ? ({ status: 'revoked', credentialIds: revoked } as OpResult)
    : ({ status: 'skipped', reason: 'no orphaned credentials' } as OpResult);
}

/** Whether a claim names this record's request (the claim is written from the record's fields). */
function sameRequest(claim: Claimant, record: IssuanceRecord): boolean {
  return (
    claim.vault === record.vault && claim.secret === record.secret && claim.rotationId === record.rotationId
  );
}

/** Whether a listed credential carries a rotation's marker: the rotator's own check, else its marker. */
function carries(rotator: Rotator, c: CredentialInfo, marker: string): boolean {
  return rotator.carries ? rotator.carries(c, marker) : c.marker?.toLowerCase() === marker.toLowerCase();
}
