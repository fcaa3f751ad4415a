/**
 * The bench's tenant: local Azure in this process, Azurite as a child, one rotator identity (the
 * managed identity the service runs as), and helpers that put secrets straight into emulator state
 * (the HTTP API would take minutes for 100k secrets and is not what is measured).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import type { TokenCredential } from '@azure/core-auth';
import { ManagedIdentityCredential } from '@azure/identity';
import { parseSettings, type Settings } from '../../shared/config';
import { LocalAzure } from '../azure';
import { IDENTITY_HEADER } from '../azure/services/entra';
import type { SecretVersion, Vault } from '../azure/state';
import { startAzurite, type AzuriteHandle } from '../azurite';

export const DAY_SECONDS = 86_400;
export const ROTATOR_NAME = 'bench-rotator';
/** A syntactically valid Azure Databricks host; the scan only parses it, nothing calls it. */
const SCAN_DATABRICKS_HOST = 'adb-1234567890123456.7.azuredatabricks.net';
const AZURITE_DIR = path.resolve(__dirname, '..', '..', '.local', 'azurite-bench');

export interface BenchEnv {
  azure: LocalAzure;
  azurite: AzuriteHandle;
  /** The rotator's own identity, as the service gets it in Azure (App Service managed identity). */
  credential: TokenCredential;
  /** App settings shared by every part of the bench (KEY_VAULT_URIS is added per part). */
  baseSettings: Record<string, string>;
  /** What a process needs in its environment to use the managed-identity endpoint. */
  identityEnv: Record<string, string>;
  stop(): Promise<void>;
}

export async function startBenchEnv(): Promise<BenchEnv> {
  const [azure, azurite] = await Promise.all([
    // The expiry sweep walks every secret; at a million secrets once a second is not what is measured.
    LocalAzure.start({ expiryCheckIntervalMs: 60_000 }),
    startAzurite(AZURITE_DIR, { fresh: true }),
  ]);
  const seed = await azure.seed({ managedIdentities: [{ name: ROTATOR_NAME }] });
  const rotator = seed.managedIdentities.find((m) => m.name === ROTATOR_NAME);
  if (!rotator) throw new Error('the rotator identity was not seeded');
  const identityEnv = { IDENTITY_ENDPOINT: azure.identityEndpoint, IDENTITY_HEADER };
  // ManagedIdentityCredential reads these when it is created, in this process and in children.
  Object.assign(process.env, identityEnv);
  return {
    azure,
    azurite,
    credential: new ManagedIdentityCredential({ clientId: rotator.clientId }),
    baseSettings: {
      AZURE_TENANT_ID: azure.state.tenantId,
      AZURE_CLIENT_ID: rotator.clientId,
      AZURE_AUTHORITY_HOST: azure.authorityHost,
      GRAPH_BASE_URL: azure.graphUrl,
      DATABRICKS_ACCOUNTS_HOST: azure.accountsUrl,
      AzureWebJobsStorage: azurite.connectionString,
    },
    identityEnv,
    stop: async () => {
      await azure.stop();
      await azurite.stop();
    },
  };
}

/** The app settings for a set of vaults, as a string map (what a child process gets) and parsed. */
export function settingsEnv(
  env: BenchEnv,
  vaults: readonly Vault[],
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ...env.baseSettings,
    KEY_VAULT_URIS: vaults.map((v) => `${v.name}=${v.url}`).join(','),
    ...extra,
  };
}

export function settingsFor(
  env: BenchEnv,
  vaults: readonly Vault[],
  extra?: Record<string, string>,
): Settings {
  return parseSettings(settingsEnv(env, vaults, extra));
}

/** Creates vaults (each its own HTTPS origin) where the rotator has its custom role (vault-role.bicep). */
export async function createVaults(env: BenchEnv, names: readonly string[]): Promise<Vault[]> {
  await env.azure.seed({
    vaults: names.map((name) => ({
      name,
      roleAssignments: [{ principal: ROTATOR_NAME, role: 'Key Vault credential rotator' as const }],
    })),
  });
  return names.map((name) => {
    const vault = env.azure.state.vaults.get(name);
    if (!vault) throw new Error(`vault ${name} was not created`);
    return vault;
  });
}

export function version(
  value: string,
  tags: Record<string, string>,
  exp: number | undefined,
  now: number,
): SecretVersion {
  return {
    version: randomBytes(16).toString('hex'),
    value,
    enabled: true,
    exp,
    created: now,
    updated: now,
    tags,
    // The emulator's Event Grid would otherwise publish a near-expiry event per seeded secret.
    emitted: { nearExpiry: true, expired: true },
  };
}

/** What was seeded, to check the scanner's counts against. */
export interface MixStats {
  secrets: number;
  optedIn: number;
  due: number;
}

/**
 * Secret `i` of the scan mix: every 10th opted in with valid tags (the three kinds in turn), half of
 * those due (expiring inside the 30-day window); the rest plain, some expiring soon, some never.
 */
function mixed(i: number, now: number): { tags: Record<string, string>; exp?: number; due: boolean } {
  if (i % 10 === 0) {
    const n = i / 10;
    const due = n % 2 === 0;
    const exp = now + (due ? 10 : 200) * DAY_SECONDS;
    const kind = n % 3;
    const tags: Record<string, string> =
      kind === 0
        ? {
            'rotation-kind': 'databricks-pat',
            'databricks-host': SCAN_DATABRICKS_HOST,
            'credential-id': randomBytes(16).toString('hex'),
          }
        : kind === 1
          ? {
              'rotation-kind': 'databricks-sp-secret',
              'databricks-account-id': randomUUID(),
              'databricks-sp-id': String(100_000 + n),
              'credential-id': randomUUID(),
            }
          : {
              'rotation-kind': 'entra-app-secret',
              'entra-app-id': randomUUID(),
              'credential-id': randomUUID(),
            };
    return { tags: { ...tags, owner: 'data-platform' }, exp, due };
  }
  const tags: Record<string, string> = i % 2 === 0 ? { owner: 'team-a', env: 'prod' } : {};
  const r = i % 10;
  const exp = r === 1 ? now + 5 * DAY_SECONDS : r <= 5 ? now + 400 * DAY_SECONDS : undefined;
  return { tags, exp, due: false };
}

/**
 * Spreads `total` mixed secrets evenly over the vaults. Names are zero-padded and inserted in order:
 * the emulator sorts the whole vault for every list page, and sorted input keeps that linear.
 */
export function seedMix(env: BenchEnv, vaults: readonly Vault[], total: number): MixStats {
  const now = env.azure.clock.nowSeconds();
  const stats: MixStats = { secrets: 0, optedIn: 0, due: 0 };
  vaults.forEach((vault, v) => {
    const count = Math.floor(total / vaults.length) + (v < total % vaults.length ? 1 : 0);
    for (let i = 0; i < count; i++) {
      const { tags, exp, due } = mixed(i, now);
      vault.secrets.set(`s-${String(i).padStart(6, '0')}`, [version(`value-${i}`, tags, exp, now)]);
      stats.secrets++;
      if (tags['rotation-kind']) stats.optedIn++;
      if (due) stats.due++;
    }
  });
  return stats;
}

/** Secrets per vault, as seeded. */
export const sizes = (vaults: readonly Vault[]): number[] => vaults.map((v) => v.secrets.size);

/** Names `{prefix}-0` … `{prefix}-{n-1}`. */
export const vaultNames = (prefix: string, n: number): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
