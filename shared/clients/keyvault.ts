import type { TokenCredential } from '@azure/core-auth';
import { SecretClient } from '@azure/keyvault-secrets';
import type { VaultSetting } from '../config';
import { PermanentError } from '../errors';
import { emptyErrorBodyPolicy, throttledPatiencePolicy, timeoutPolicies, TIMEOUTS } from './timeouts';

export interface Vault {
  name: string;
  url: string;
  client: SecretClient;
  /** The same vault for listing (the scan): patient with throttling (TIMEOUTS.keyVaultList). */
  lister: SecretClient;
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * The configured vaults, each with one SecretClient created on first use. Events and scans name
 * vaults; anything not configured is refused here.
 */
export class Vaults {
  private readonly byName = new Map<
    string,
    { setting: VaultSetting; client?: SecretClient; lister?: SecretClient }
  >();

  constructor(
    settings: readonly VaultSetting[],
    private readonly credential: TokenCredential,
  ) {
    for (const s of settings) this.byName.set(s.name.toLowerCase(), { setting: s });
  }

  names(): string[] {
    return [...this.byName.values()].map((v) => v.setting.name);
  }

  has(name: string): boolean {
    return this.byName.has(name.toLowerCase());
  }

  /**
   * The configured vault an event refers to: by name, or by the origin of the secret id URL (a vault
   * configured as `name=url` under another name). Undefined when it is not one of ours.
   */
  resolve(name: string, secretUrl?: string): string | undefined {
    const byName = this.byName.get(name.toLowerCase());
    if (byName) return byName.setting.name;
    if (!secretUrl) return undefined;
    let origin: string;
    try {
      origin = new URL(secretUrl).origin;
    } catch {
      return undefined;
    }
    return [...this.byName.values()].find((v) => v.setting.url === origin)?.setting.name;
  }

  get(name: string): Vault {
    const entry = this.byName.get(name.toLowerCase());
    if (!entry) throw new PermanentError(`vault "${name}" is not configured in KEY_VAULT_URIS`);
    // The challenge's resource check fails for a localhost vault; real vaults keep it on.
    const client = (limits: Parameters<typeof keyVaultClientOptions>[0]) =>
      new SecretClient(entry.setting.url, this.credential, {
        disableChallengeResourceVerification: LOCAL_HOSTS.has(new URL(entry.setting.url).hostname),
        ...keyVaultClientOptions(limits),
      });
    entry.client ??= client(TIMEOUTS.keyVault);
    entry.lister ??= client(TIMEOUTS.keyVaultList);
    return { name: entry.setting.name, url: entry.setting.url, client: entry.client, lister: entry.lister };
  }
}

/**
 * Bounded waits for every Key Vault call (see TIMEOUTS), few short SDK retries, and error answers
 * without a body kept as their status. Used by every SecretClient the service creates.
 */
export function keyVaultClientOptions(
  limits: {
    requestMs: number;
    callMs: number;
    maxRetries: number;
    /** The first retry's back-off; the SDK doubles it (with jitter) up to maxRetryDelayMs. */
    retryDelayMs?: number;
    maxRetryDelayMs: number;
    /** Throttling waited out beyond the SDK's retries (the scan's lister). */
    throttledWaitMs?: number;
  } = TIMEOUTS.keyVault,
) {
  const { requestMs, callMs, maxRetries, retryDelayMs, maxRetryDelayMs, throttledWaitMs } = limits;
  return {
    retryOptions: { maxRetries, retryDelayInMs: retryDelayMs, maxRetryDelayInMs: maxRetryDelayMs },
    additionalPolicies: [
      ...timeoutPolicies({ requestMs, callMs }),
      ...(throttledWaitMs ? [throttledPatiencePolicy(throttledWaitMs)] : []),
      emptyErrorBodyPolicy('Key Vault'),
    ],
  };
}
