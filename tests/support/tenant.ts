import { randomBytes, randomUUID } from 'node:crypto';
import type { TokenCredential } from '@azure/core-auth';
import { ClientSecretCredential, ManagedIdentityCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import type { LocalAzure } from '../../local/azure';
import { IDENTITY_HEADER } from '../../local/azure/services/entra';
import { parseSettings, type Settings } from '../../shared/config';
import type { EngineOptions } from '../../shared/rotation/engine';
import { createServices, type Services } from '../../shared/services';

export const DAY = 86_400_000;

export const newPat = (): string => `dapi${randomBytes(16).toString('hex')}`;

/**
 * A tenant in local Azure with one secret of each kind, set up as an admin would: the rotator's
 * managed identity has its custom vault role (get, read metadata, set, update secrets), is an account
 * admin in Databricks, the owner of the Entra app, and the SP and app are bound to the vault.
 */
export interface Tenant {
  azure: LocalAzure;
  vaultName: string;
  vaultUrl: string;
  workspaceUrl: string;
  accountId: string;
  spId: string;
  spApplicationId: string;
  appId: string;
  appObjectId: string;
  /** The values stored at seed time, by secret name. */
  initial: Record<'pat' | 'sp' | 'app', string>;
  settings: Settings;
  /** A client that reads the vault as an application would (Secrets User). */
  reader: SecretClient;
  /** The rotator's own identity. */
  credential: TokenCredential;
}

export const SECRETS = {
  pat: 'adf-databricks-pat',
  sp: 'etl-sp-oauth-secret',
  app: 'reporting-app-secret',
} as const;

export async function seedTenant(
  azure: LocalAzure,
  options: { expiresInDays?: number } = {},
): Promise<Tenant> {
  const vaultName = `kv-${randomBytes(3).toString('hex')}`;
  const accountId = randomUUID();
  const spApplicationId = randomUUID();
  const rotatorClientId = randomUUID();
  const readerSecret = `reader-${randomBytes(12).toString('hex')}`;
  const initial = {
    pat: newPat(),
    sp: `dose${randomBytes(16).toString('hex')}`,
    app: `abc8Q~${randomBytes(17).toString('hex')}`,
  };
  const exp = Math.floor((azure.clock.now() + (options.expiresInDays ?? 10) * DAY) / 1000);
  const seed = await azure.seed({
    managedIdentities: [
      {
        name: `rotator-${vaultName}`,
        clientId: rotatorClientId,
        graphRoles: ['Application.ReadWrite.OwnedBy', 'Mail.Send'],
      },
    ],
    apps: [
      {
        displayName: `reporting-${vaultName}`,
        owners: [`rotator-${vaultName}`],
        secrets: [{ value: initial.app }],
        tags: [`kv-rotator:${vaultName}/${SECRETS.app}`],
      },
      {
        displayName: `reader-${vaultName}`,
        secrets: [{ value: readerSecret }],
      },
    ],
    accounts: [
      {
        accountId,
        admins: [rotatorClientId],
        servicePrincipals: [
          { applicationId: spApplicationId, displayName: 'etl', secrets: [{ value: initial.sp }] },
        ],
      },
    ],
  });
  const rotator = seed.managedIdentities.find((m) => m.name === `rotator-${vaultName}`)!;
  const app = seed.apps.find((a) => a.displayName === `reporting-${vaultName}`)!;
  const reader = seed.apps.find((a) => a.displayName === `reader-${vaultName}`)!;
  const result = await azure.seed({
    workspaces: [
      {
        name: `ws-${vaultName}`,
        accountId,
        principals: [{ userName: 'data-eng@contoso.com' }, { applicationId: spApplicationId }],
        tokens: [{ owner: 'data-eng@contoso.com', value: initial.pat, expiryTime: exp }],
      },
    ],
    vaults: [
      {
        name: vaultName,
        roleAssignments: [
          { principal: rotator.principalId, role: 'Key Vault credential rotator' },
          { principal: reader.appId, role: 'Key Vault Secrets User' },
        ],
      },
    ],
  });
  const workspaceUrl = result.workspaces[`ws-${vaultName}`]!.url;
  const spId = result.accounts[accountId]!.servicePrincipals[spApplicationId]!.id;
  const vaultUrl = result.vaults[vaultName]!;
  const workspace = azure.state.workspaces.get(`ws-${vaultName}`)!;
  const patId = workspace.tokens[0]!.tokenId;
  const spSecretId = result.accounts[accountId]!.servicePrincipals[spApplicationId]!.secretIds[0]!;
  const appKeyId = app.keyIds[0]!;

  const vault = azure.state.vaults.get(vaultName)!;
  const put = (name: string, value: string, tags: Record<string, string>) =>
    vault.secrets.set(name, [
      {
        version: randomBytes(16).toString('hex'),
        value,
        enabled: true,
        exp,
        created: azure.clock.nowSeconds(),
        updated: azure.clock.nowSeconds(),
        tags,
        emitted: { nearExpiry: false, expired: false },
      },
    ]);
  const host = new URL(workspaceUrl).host;
  put(SECRETS.pat, initial.pat, {
    'rotation-kind': 'databricks-pat',
    'databricks-host': host,
    'credential-id': patId,
    owner: 'data-eng',
  });
  put(SECRETS.sp, initial.sp, {
    'rotation-kind': 'databricks-sp-secret',
    'databricks-account-id': accountId,
    'databricks-sp-id': spId,
    'credential-id': spSecretId,
  });
  put(SECRETS.app, initial.app, {
    'rotation-kind': 'entra-app-secret',
    'entra-app-id': app.appId,
    'credential-id': appKeyId,
  });

  process.env.IDENTITY_ENDPOINT = azure.identityEndpoint;
  process.env.IDENTITY_HEADER = IDENTITY_HEADER;
  const settings = parseSettings({
    KEY_VAULT_URIS: `${vaultName}=${vaultUrl}`,
    AZURE_TENANT_ID: azure.state.tenantId,
    AZURE_CLIENT_ID: rotator.clientId,
    AZURE_AUTHORITY_HOST: azure.authorityHost,
    GRAPH_BASE_URL: azure.graphUrl,
    DATABRICKS_ACCOUNTS_HOST: azure.accountsUrl,
    DATABRICKS_ALLOWED_HOSTS: host,
    ROTATION_BINDINGS: `${vaultName}/${SECRETS.sp}=databricks-sp:${accountId}/${spId}`,
    AzureWebJobsStorage: process.env.AZURITE_CONNECTION_STRING,
  });
  const credential = new ManagedIdentityCredential({ clientId: rotator.clientId });
  return {
    azure,
    vaultName,
    vaultUrl,
    workspaceUrl,
    accountId,
    spId,
    spApplicationId,
    appId: app.appId,
    appObjectId: app.objectId,
    initial,
    settings,
    credential,
    reader: new SecretClient(
      vaultUrl,
      new ClientSecretCredential(azure.state.tenantId, reader.appId, readerSecret, {
        authorityHost: azure.authorityHost,
        disableInstanceDiscovery: true,
      }),
      { disableChallengeResourceVerification: true },
    ),
  };
}

/** The engine wired with the real clients against local Azure and Azurite, on the emulated clock. */
export function createEngine(tenant: Tenant, engine: Partial<EngineOptions> = {}): Services {
  return createServices(tenant.settings, {
    credential: tenant.credential,
    databricks: { baseDelayMs: 10 },
    engine: {
      now: () => new Date(tenant.azure.clock.now()),
      verify: { attempts: 3, delayMs: 20 },
      orphanSafetyMs: 0,
      ...engine,
    },
  });
}
