import type { SecretProperties } from '@azure/keyvault-secrets';
import type { Records } from './clients/records';
import type { Settings } from './config';
import { notification, type Notification } from './notifications/notification';
import { readPolicy } from './policy';
import type { Rotator } from './rotators/types';

/** Versions stored longer ago than this are not checked any more (every scan would read them forever). */
export const ANNOUNCE_HORIZON_MS = 2 * 86_400_000;

/**
 * The durable "this rotation is announced" record, `announced/{vault}/{secret}/{rotationId}`: written
 * when a `rotated` notification is about to be sent on a channel (from then on the queue delivers it,
 * retries included), and by the scan when it announces a rotation itself. A version that carries a `rotation-id` was stored by that rotation; if no record exists some
 * minutes after it was stored, the host died between the store and the announcement, and the scan
 * announces it. The conditional create makes that once, whichever instance gets there first.
 */
export class Announcements {
  constructor(
    private readonly records: Records,
    private readonly settings: Settings,
    private readonly rotators: ReadonlyMap<string, Rotator>,
  ) {}

  private static key(vault: string, secret: string, rotationId: string): string {
    return `${vault.toLowerCase()}/${secret.toLowerCase()}/${rotationId}`;
  }

  /** Before a channel sends a notification: a `rotated` one is announced from now on. */
  async announcing(n: Pick<Notification, 'kind' | 'vault' | 'secret' | 'details'>): Promise<void> {
    const rotationId = n.details.rotationId;
    if (n.kind !== 'rotated' || typeof rotationId !== 'string') return;
    await this.records.create(Announcements.key(n.vault, n.secret, rotationId));
  }

  /**
   * For the scan, from a secret's list properties (tags, created, expiry): the `rotated` notification
   * of a rotation that stored this version and was never announced, or undefined.
   */
  async missed(vault: string, props: SecretProperties, now: Date): Promise<Notification | undefined> {
    const policy = readPolicy(props.tags, this.settings, this.rotators);
    if (policy.status !== 'ok') return undefined;
    const { state, rotator, target, notify } = policy.policy;
    const stored = props.createdOn?.getTime();
    if (!state.rotationId || stored === undefined) return undefined;
    const age = now.getTime() - stored;
    if (age < this.settings.ANNOUNCE_MISSED_AFTER_MINUTES * 60_000 || age > ANNOUNCE_HORIZON_MS)
      return undefined;
    if (!(await this.records.create(Announcements.key(vault, props.name, state.rotationId))))
      return undefined;
    return notification(
      'rotated',
      { vault, secret: props.name, recipients: notify },
      {
        kind: policy.policy.kind,
        target: rotator.describe(target),
        credentialId: state.credentialId ?? null,
        previousCredentialId: state.previousCredentialId ?? null,
        newExpiry: props.expiresOn?.toISOString() ?? null,
        revokePreviousAfter: state.revokePreviousAfter?.toISOString() ?? null,
        rotationId: state.rotationId,
        note: 'announced late: the service stopped after storing the new version and before announcing it',
      },
      now,
    );
  }
}
