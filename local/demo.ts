/**
 * The demo tenant `npm start` runs against (and tests/e2e/cycle.test.ts checks): two vaults with one
 * secret of each kind in its rotation window, a secret that is not opted in and expires soon, and one
 * with a bad tag; the identities, apps, Databricks workspace and account behind them, set up as an
 * admin would; and the app settings that point the function app at all of it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { LocalAzure } from './azure';
import { IDENTITY_HEADER } from './azure/services/entra';
import { NEAR_EXPIRY_MS } from './azure/services/eventgrid';

const DAY_MS = 86_400_000;

export const DEMO_VAULTS = { dataPlatform: 'kv-data-platform', apps: 'kv-apps' } as const;

/** The function app's managed identity (its name in the seed). */
export const DEMO_ROTATOR = 'func-kv-rotator';

export const DEMO_SECRETS = {
  pat: { vault: DEMO_VAULTS.dataPlatform, name: 'adf-databricks-pat', kind: 'databricks-pat' },
  sp: { vault: DEMO_VAULTS.dataPlatform, name: 'etl-sp-oauth-secret', kind: 'databricks-sp-secret' },
  app: { vault: DEMO_VAULTS.apps, name: 'reporting-app-secret', kind: 'entra-app-secret' },
  /** Not opted in (no rotation-kind): only reported when it comes near expiry. */
  notOptedIn: { vault: DEMO_VAULTS.dataPlatform, name: 'sql-admin-password', kind: undefined },
  /** Opted in with `rotation-validity-days=ninety`: a finding, never rotated. */
  badTag: { vault: DEMO_VAULTS.apps, name: 'billing-app-secret', kind: 'entra-app-secret' },
} as const;

export type DemoSecretKey = keyof typeof DEMO_SECRETS;

/** Days to expiry at seed time: inside the 30-day rotation window, but before the 14-day notice. */
export const DEMO_EXPIRY_DAYS: Record<DemoSecretKey, number> = {
  pat: 20,
  sp: 20,
  app: 20,
  notOptedIn: 10,
  badTag: 60,
};

export const DEMO_MAIL = {
  sender: 'kv-rotator@contoso.com',
  defaultTo: 'platform-team@contoso.com',
  /** The PAT's `notify` tag adds this recipient. */
  owner: 'data-eng@contoso.com',
} as const;

/** The demo's Databricks workspace (its name in the seed). */
export const DEMO_WORKSPACE = 'adb-data-platform';

/** The Event Grid custom topic notifications are published to. */
export const DEMO_TOPIC = 'kv-rotator-notifications';

export interface Demo {
  /** App settings for the function app (undefined = remove from the environment). */
  env: Record<string, string | undefined>;
  vaultUrls: Record<string, string>;
  workspaceUrl: string;
  accountId: string;
  spId: string;
  /** Application (client) id of the Databricks service principal. */
  spApplicationId: string;
  appIds: { reporting: string; billing: string };
  rotatorClientId: string;
  /** An application with Key Vault Secrets User on both vaults, as a consuming app would read them. */
  reader: { appId: string; secret: string };
  /** The values seeded, by secret key (local, random, for checks only). */
  initial: Record<DemoSecretKey, string>;
  /** The provider credential id each seeded value belongs to (the `credential-id` tag). */
  credentialIds: Partial<Record<DemoSecretKey, string>>;
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/**
 * Seeds the demo tenant into a running local Azure and returns the settings. Call on an empty tenant
 * (local Azure is in-memory, so every start is a first run).
 */
export async function seedDemo(azure: LocalAzure, options: { storage: string }): Promise<Demo> {
  const now = azure.clock.now();
  const exp = (key: DemoSecretKey) => Math.floor((now + DEMO_EXPIRY_DAYS[key] * DAY_MS) / 1000);
  const rotatorClientId = randomUUID();
  const accountId = randomUUID();
  const spApplicationId = randomUUID();
  const readerAppId = randomUUID();
  const initial: Record<DemoSecretKey, string> = {
    pat: `dapi${hex(16)}`,
    sp: `dose${hex(16)}`,
    app: `rep8Q~${hex(17)}`,
    notOptedIn: `Sql-${hex(12)}`,
    badTag: `bil8Q~${hex(17)}`,
  };
  const reader = { appId: readerAppId, secret: `rdr8Q~${hex(17)}` };
  const rotator = DEMO_ROTATOR;
  const workspaceName = DEMO_WORKSPACE;

  // The rotator's managed identity owns the Entra apps it rotates, may send mail, and is an admin of
  // the Databricks account; the apps carry the binding tag only their owners can write.
  const first = await azure.seed({
    managedIdentities: [
      {
        name: rotator,
        clientId: rotatorClientId,
        graphRoles: ['Application.ReadWrite.OwnedBy', 'Mail.Send'],
      },
    ],
    users: [{ userPrincipalName: DEMO_MAIL.sender }],
    apps: [
      {
        displayName: 'reporting-app',
        owners: [rotator],
        secrets: [{ value: initial.app, displayName: 'reporting', endDateTime: exp('app') }],
        tags: [`kv-rotator:${DEMO_SECRETS.app.vault}/${DEMO_SECRETS.app.name}`],
      },
      {
        displayName: 'billing-app',
        owners: [rotator],
        secrets: [{ value: initial.badTag, displayName: 'billing', endDateTime: exp('badTag') }],
        tags: [`kv-rotator:${DEMO_SECRETS.badTag.vault}/${DEMO_SECRETS.badTag.name}`],
      },
      { displayName: 'secrets-reader', appId: readerAppId, secrets: [{ value: reader.secret }] },
    ],
    accounts: [
      {
        accountId,
        admins: [rotatorClientId],
        servicePrincipals: [
          {
            applicationId: spApplicationId,
            displayName: 'etl-pipeline',
            secrets: [{ value: initial.sp, expireTime: exp('sp') }],
          },
        ],
      },
    ],
    workspaces: [
      {
        name: workspaceName,
        accountId,
        principals: [{ userName: DEMO_MAIL.owner }, { applicationId: spApplicationId }],
        tokens: [
          {
            owner: DEMO_MAIL.owner,
            value: initial.pat,
            comment: 'ADF linked service',
            expiryTime: exp('pat'),
          },
        ],
      },
    ],
  });
  const app = (name: string) => first.apps.find((a) => a.displayName === name)!;
  const workspace = first.workspaces[workspaceName]!;
  const sp = first.accounts[accountId]!.servicePrincipals[spApplicationId]!;
  const workspaceHost = new URL(workspace.url).host;
  const credentialIds = {
    pat: workspace.tokenIds[0]!,
    sp: sp.secretIds[0]!,
    app: app('reporting-app').keyIds[0]!,
    badTag: app('billing-app').keyIds[0]!,
  };

  const secret = (key: DemoSecretKey, tags: Record<string, string>) => ({
    name: DEMO_SECRETS[key].name,
    value: initial[key],
    exp: exp(key),
    tags,
  });
  const roles = [
    { principal: rotator, role: 'Key Vault Secrets Officer' as const },
    { principal: readerAppId, role: 'Key Vault Secrets User' as const },
  ];
  const second = await azure.seed({
    vaults: [
      {
        name: DEMO_VAULTS.dataPlatform,
        roleAssignments: roles,
        secrets: [
          secret('pat', {
            'rotation-kind': 'databricks-pat',
            'databricks-host': workspaceHost,
            'credential-id': credentialIds.pat,
            notify: DEMO_MAIL.owner,
          }),
          secret('sp', {
            'rotation-kind': 'databricks-sp-secret',
            'databricks-account-id': accountId,
            'databricks-sp-id': sp.id,
            'credential-id': credentialIds.sp,
          }),
          secret('notOptedIn', { owner: 'dba-team' }),
        ],
      },
      {
        name: DEMO_VAULTS.apps,
        roleAssignments: roles,
        secrets: [
          secret('app', {
            'rotation-kind': 'entra-app-secret',
            'entra-app-id': app('reporting-app').appId,
            'credential-id': credentialIds.app,
          }),
          secret('badTag', {
            'rotation-kind': 'entra-app-secret',
            'entra-app-id': app('billing-app').appId,
            'credential-id': credentialIds.badTag,
            'rotation-validity-days': 'ninety',
          }),
        ],
      },
    ],
  });
  // These versions were created (in the story) weeks ago: Key Vault emitted SecretNearExpiry for them
  // when they crossed 30 days, before this run began. Marking that keeps the first cycle the timer's,
  // so its output is the same every run; new events (a new version near expiry, a clock advance) are
  // delivered to Event Grid subscribers as usual.
  for (const vault of Object.values(DEMO_VAULTS)) {
    for (const versions of azure.state.vaults.get(vault)?.secrets.values() ?? []) {
      for (const v of versions)
        if (v.exp && v.exp * 1000 - now <= NEAR_EXPIRY_MS) v.emitted.nearExpiry = true;
    }
  }

  const vaultUrls = second.vaults;
  const env: Record<string, string | undefined> = {
    FUNCTIONS_WORKER_RUNTIME: 'node',
    AzureWebJobsStorage: options.storage,
    KEY_VAULT_URIS: Object.values(DEMO_VAULTS)
      .map((v) => `${v}=${vaultUrls[v]}`)
      .join(','),
    AZURE_TENANT_ID: azure.state.tenantId,
    AZURE_CLIENT_ID: rotatorClientId,
    AZURE_AUTHORITY_HOST: azure.authorityHost,
    GRAPH_BASE_URL: azure.graphUrl,
    DATABRICKS_ACCOUNTS_HOST: azure.accountsUrl,
    DATABRICKS_ALLOWED_HOSTS: workspaceHost,
    ROTATION_BINDINGS: `${DEMO_SECRETS.sp.vault}/${DEMO_SECRETS.sp.name}=databricks-sp:${accountId}/${sp.id}`,
    ROTATION_DRY_RUN: 'false',
    SCAN_SCHEDULE: '0 0 */6 * * *',
    NOTIFY_DEFAULT_CHANNELS: 'teams,webhook,email,eventgrid',
    NOTIFICATION_TOPIC_ENDPOINT: azure.addTopic(DEMO_TOPIC),
    TEAMS_WEBHOOK_URL: `${azure.url}/sink/teams`,
    WEBHOOK_URL: `${azure.url}/sink/webhook`,
    WEBHOOK_SIGNING_KEY: randomBytes(32).toString('base64url'),
    MAIL_SENDER: DEMO_MAIL.sender,
    MAIL_DEFAULT_TO: DEMO_MAIL.defaultTo,
    // Tag recipients only within these domains (NOTIFY_ALLOWED_DOMAINS).
    NOTIFY_ALLOWED_DOMAINS: DEMO_MAIL.owner.split('@')[1],
    // The managed identity, App Service style: DefaultAzureCredential in the function app finds it.
    IDENTITY_ENDPOINT: azure.identityEndpoint,
    IDENTITY_HEADER,
    // A developer's own service-principal variables would win over the managed identity.
    AZURE_CLIENT_SECRET: undefined,
    AZURE_CLIENT_CERTIFICATE_PATH: undefined,
    AZURE_FEDERATED_TOKEN_FILE: undefined,
    AZURE_USERNAME: undefined,
    AZURE_PASSWORD: undefined,
    APPLICATIONINSIGHTS_CONNECTION_STRING: undefined,
  };
  return {
    env,
    vaultUrls,
    workspaceUrl: workspace.url,
    accountId,
    spId: sp.id,
    spApplicationId,
    appIds: { reporting: app('reporting-app').appId, billing: app('billing-app').appId },
    rotatorClientId,
    reader,
    initial,
    credentialIds,
  };
}

/**
 * One more PAT of the demo's data engineer, stored as an opted-in secret (for tests that need a
 * secret of their own): returns its value, token id and expiry (unix seconds).
 */
export async function seedDemoPat(
  azure: LocalAzure,
  demo: Demo,
  secret: { vault: string; name: string; expiresInDays: number; tags?: Record<string, string> },
): Promise<{ value: string; tokenId: string; exp: number }> {
  const value = `dapi${hex(16)}`;
  const exp = Math.floor((azure.clock.now() + secret.expiresInDays * DAY_MS) / 1000);
  const seeded = await azure.seed({
    workspaces: [{ name: DEMO_WORKSPACE, tokens: [{ owner: DEMO_MAIL.owner, value, expiryTime: exp }] }],
  });
  const tokenId = seeded.workspaces[DEMO_WORKSPACE]!.tokenIds.at(-1)!;
  await azure.seed({
    vaults: [
      {
        name: secret.vault,
        secrets: [
          {
            name: secret.name,
            value,
            exp,
            tags: {
              'rotation-kind': 'databricks-pat',
              'databricks-host': new URL(demo.workspaceUrl).host,
              'credential-id': tokenId,
              ...secret.tags,
            },
          },
        ],
      },
    ],
  });
  return { value, tokenId, exp };
}
