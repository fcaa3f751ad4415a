/**
 * Key Vault's service limits for secrets, as documented ("Azure Key Vault service limits"): per vault
 * and region, at most 300 secret CREATE transactions and 4,000 of all other transactions in any
 * 10 seconds; per subscription, five times the vault limit. Past a limit Key Vault answers 429
 * `Throttled` with `Retry-After`; throttled requests do not count against the limits.
 */
import { HttpError } from '../http';

export interface KeyVaultLimits {
  /** Secret CREATE (set secret) transactions per window, per vault. */
  createPerVault: number;
  /** Every other transaction per window, per vault. */
  otherPerVault: number;
  /** Every transaction per window, over all vaults (one subscription and region here). */
  perSubscription: number;
  windowMs: number;
}

export const DOCUMENTED_LIMITS: KeyVaultLimits = {
  createPerVault: 300,
  otherPerVault: 4_000,
  perSubscription: 5 * 4_000,
  windowMs: 10_000,
};

/** Reason codes Key Vault gives in the message. */
const REASONS = {
  vault: 'VaultRequestTypeLimitReached',
  subscription: 'SubscriptionRequestLimitReached',
} as const;

/**
 * The last `limit` accepted transactions' times, in a ring: a transaction is refused while the oldest
 * of them is still inside the window. O(1) per request, whatever the limit.
 */
class Window {
  private times = new Float64Array(0);
  private next = 0;

  /** Milliseconds until a transaction would be accepted; 0 when it is (and then it is counted). */
  wait(limit: number, windowMs: number, now: number, count: boolean): number {
    if (this.times.length !== limit) {
      this.times = new Float64Array(limit).fill(-Infinity);
      this.next = 0;
    }
    const oldest = this.times[this.next] as number;
    if (now - oldest < windowMs) return oldest + windowMs - now;
    if (count) {
      this.times[this.next] = now;
      this.next = (this.next + 1) % limit;
    }
    return 0;
  }
}

export class KeyVaultThrottle {
  private readonly subscription = new Window();
  private readonly vaults = new Map<string, { create: Window; other: Window }>();
  /** Requests answered 429 so far, by the limit that refused them. */
  readonly refused = { vault: 0, subscription: 0 };

  constructor(
    /** Read on every request, so a test or the bench may change the limits while running. */
    readonly limits: KeyVaultLimits = { ...DOCUMENTED_LIMITS },
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts one transaction on `vault`, or throws Key Vault's 429 when a limit is reached. */
  take(vault: string, create: boolean): void {
    const { limits } = this;
    const now = this.now();
    let windows = this.vaults.get(vault);
    if (!windows) this.vaults.set(vault, (windows = { create: new Window(), other: new Window() }));
    const own = create ? windows.create : windows.other;
    const ownLimit = create ? limits.createPerVault : limits.otherPerVault;
    // Check both before counting either: a refused request counts nowhere.
    const vaultWait = own.wait(ownLimit, limits.windowMs, now, false);
    const subscriptionWait = this.subscription.wait(limits.perSubscription, limits.windowMs, now, false);
    if (vaultWait > 0 || subscriptionWait > 0) {
      const byVault = vaultWait >= subscriptionWait;
      this.refused[byVault ? 'vault' : 'subscription']++;
      const reason = byVault ? REASONS.vault : REASONS.subscription;
      throw new HttpError(
        429,
        {
          error: {
            code: 'Throttled',
            message: `Request was not processed because too many requests were received. Reason: ${reason}`,
          },
        },
        { 'retry-after': String(Math.max(1, Math.ceil(Math.max(vaultWait, subscriptionWait) / 1000))) },
      );
    }
    own.wait(ownLimit, limits.windowMs, now, true);
    this.subscription.wait(limits.perSubscription, limits.windowMs, now, true);
  }
}
