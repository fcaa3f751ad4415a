/**
 * The function app's app settings in Bicep against the settings the code reads (shared/config.ts):
 * every setting is set by the deployment unless it is listed, with its reason, as not set.
 */
import { parseSettings, settingsSchema } from '../../shared/config';
import { blockAfter, params, read, readInfra, resources, topLevelKeys, valueOf, variable } from './bicep';

const api = readInfra('app/api.bicep');
const main = readInfra('main.bicep');
const appSettings = blockAfter(api, /^var appSettings\s*=/m);
const keys = topLevelKeys(appSettings);

/** Settings of settingsSchema that Bicep intentionally does not set. */
const NOT_SET_BY_BICEP: Record<string, string> = {
  // A connection string, for local runs (Azurite); in Azure storage is identity-based (__blobServiceUri…).
  AzureWebJobsStorage: 'local only',
  // Public-cloud defaults in the schema; only the local runner (and a sovereign cloud) overrides them.
  AZURE_AUTHORITY_HOST: 'schema default is the public cloud',
  GRAPH_BASE_URL: 'schema default is the public cloud',
  DATABRICKS_ACCOUNTS_HOST: 'schema default is the public cloud',
  // Schema defaults suit Azure; only the local storm run (npm run chaos) shortens them.
  FAILURE_NOTICE_AFTER_MINUTES: 'schema default',
  ANNOUNCE_MISSED_AFTER_MINUTES: 'schema default',
  IN_FLIGHT_CLAIM_MINUTES: 'schema default',
};

/** Settings the platform reads that are not in settingsSchema. */
const PLATFORM_SETTINGS = [
  'AzureWebJobsStorage__credential',
  'AzureWebJobsStorage__clientId',
  // Read by shared/telemetry/telemetry.ts from process.env, and by the Functions host.
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
];

describe('app settings', () => {
  const declared = Object.keys(settingsSchema.shape);

  test('every setting of settingsSchema is set in Bicep, or listed as intentionally not set', () => {
    const missing = declared.filter((name) => !keys.includes(name) && !(name in NOT_SET_BY_BICEP));
    expect(missing).toEqual([]);
  });

  test('the not-set list names only schema settings that Bicep indeed does not set', () => {
    for (const name of Object.keys(NOT_SET_BY_BICEP)) {
      expect(declared).toContain(name);
      expect(keys).not.toContain(name);
    }
  });

  test('every app setting in Bicep is a schema setting or a known platform setting (no typos)', () => {
    expect(keys.filter((k) => !declared.includes(k) && !PLATFORM_SETTINGS.includes(k))).toEqual([]);
    expect(new Set(keys).size).toBe(keys.length);
  });

  test('nothing Flex Consumption rejects, and no storage key or connection string', () => {
    for (const forbidden of [
      'FUNCTIONS_WORKER_RUNTIME',
      'FUNCTIONS_EXTENSION_VERSION',
      'WEBSITE_RUN_FROM_PACKAGE',
    ]) {
      expect(keys).not.toContain(forbidden);
    }
    expect(api).not.toMatch(/AccountKey|listKeys\(|DefaultEndpointsProtocol/);
  });

  test('storage is identity-based with the user-assigned identity', () => {
    expect(valueOf(appSettings, 'AzureWebJobsStorage__credential')).toBe("'managedidentity'");
    expect(valueOf(appSettings, 'AzureWebJobsStorage__clientId')).toBe('identityClientId');
    expect(valueOf(appSettings, 'AzureWebJobsStorage__blobServiceUri')).toBe(
      'storage.properties.primaryEndpoints.blob',
    );
    expect(valueOf(appSettings, 'AzureWebJobsStorage__queueServiceUri')).toBe(
      'storage.properties.primaryEndpoints.queue',
    );
  });

  test('identity, tenant and Entra-authenticated telemetry', () => {
    expect(valueOf(appSettings, 'AZURE_TENANT_ID')).toBe('tenant().tenantId');
    expect(valueOf(appSettings, 'AZURE_CLIENT_ID')).toBe('identityClientId');
    expect(valueOf(appSettings, 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING')).toBe(
      "'ClientId=${identityClientId};Authorization=AAD'",
    );
    expect(valueOf(appSettings, 'APPLICATIONINSIGHTS_CONNECTION_STRING')).toBe(
      'applicationInsights.properties.ConnectionString',
    );
  });

  test('webhook URLs and the signing key are Key Vault references, never values', () => {
    const references = variable(api, 'keyVaultReference');
    for (const [setting, ref] of [
      ['TEAMS_WEBHOOK_URL', 'teams'],
      ['WEBHOOK_URL', 'webhookUrl'],
      ['WEBHOOK_SIGNING_KEY', 'webhookSigningKey'],
    ] as const) {
      expect(valueOf(appSettings, setting)).toBe(`keyVaultReference.${ref}`);
      expect(valueOf(references, ref)).toMatch(
        /^empty\(\w+SecretUri\) \? '' : '@Microsoft\.KeyVault\(SecretUri=\$\{\w+SecretUri\}\)'$/,
      );
    }
    // The references resolve with the user-assigned identity.
    const site = resources(api).find((r) => r.type === 'Microsoft.Web/sites');
    expect(site?.body).toMatch(/keyVaultReferenceIdentity:\s*identityId/);
    // Secret URIs carry no version, so a new value is picked up.
    expect(main).toMatch(/'\$\{notificationVaultUri\}\/secrets\/\$\{teamsWebhookUrlSecretName\}'/);
  });

  test('KEY_VAULT_URIS is built from the vault parameter', () => {
    expect(valueOf(appSettings, 'KEY_VAULT_URIS')).toBe('keyVaultUris');
    expect(main).toMatch(
      /var keyVaultUris = \[for vault in keyVaults: 'https:\/\/\$\{vault\.name\}\$\{environment\(\)\.suffixes\.keyvaultDns\}'\]/,
    );
    expect(main).toMatch(/keyVaultUris: join\(keyVaultUris, ','\)/);
    // The URL shape the schema accepts.
    expect(() =>
      parseSettings({
        KEY_VAULT_URIS: ['https://kv-one.vault.azure.net', 'https://kv-two.vault.azure.net'].join(','),
        AZURE_TENANT_ID: '72f988bf-0000-4000-8000-00000000a2ee',
        AzureWebJobsStorage__blobServiceUri: 'https://st.blob.core.windows.net/',
      }),
    ).not.toThrow();
  });

  test('booleans are written as "true"/"false" (string(true) would be "True", which the schema rejects)', () => {
    expect(valueOf(appSettings, 'ROTATION_DRY_RUN')).toBe("rotationDryRun ? 'true' : 'false'");
    expect(api).not.toMatch(/string\(rotationDryRun\)/);
  });

  test('SCAN_SCHEDULE comes from scanIntervalHours, and every allowed interval is a valid schedule', () => {
    expect(valueOf(appSettings, 'SCAN_SCHEDULE')).toBe('scanSchedule');
    expect(variable(main, 'scanSchedule')).toBe("'0 0 */${scanIntervalHours} * * *'");
    const interval = params(main).find((p) => p.name === 'scanIntervalHours');
    expect(interval?.defaultValue).toBe('6');
    const allowed = /@allowed\(\[([^\]]+)\]\)/.exec(interval?.decorators.join(' ') ?? '')?.[1];
    const hours = (allowed ?? '').split(',').map((h) => Number(h.trim()));
    expect(hours.length).toBeGreaterThan(0);
    for (const h of hours) {
      // Evenly spaced runs: the hour step divides the day.
      expect(24 % h).toBe(0);
      const settings = parseSettings({
        KEY_VAULT_URIS: 'https://kv.vault.azure.net',
        AZURE_TENANT_ID: '72f988bf-0000-4000-8000-00000000a2ee',
        AzureWebJobsStorage__blobServiceUri: 'https://st.blob.core.windows.net/',
        SCAN_SCHEDULE: `0 0 */${h} * * *`,
      });
      expect(settings.SCAN_SCHEDULE).toBe(`0 0 */${h} * * *`);
    }
  });

  test('numeric parameters have the bounds and defaults of the schema', () => {
    const numeric = [
      ['scanConcurrency', 'SCAN_CONCURRENCY'],
      ['rotationDefaultValidityDays', 'ROTATION_DEFAULT_VALIDITY_DAYS'],
      ['rotationDefaultWindowDays', 'ROTATION_DEFAULT_WINDOW_DAYS'],
      ['rotationDefaultGraceHours', 'ROTATION_DEFAULT_GRACE_HOURS'],
    ] as const;
    const base = {
      KEY_VAULT_URIS: 'https://kv.vault.azure.net',
      AZURE_TENANT_ID: '72f988bf-0000-4000-8000-00000000a2ee',
      AzureWebJobsStorage__blobServiceUri: 'https://st.blob.core.windows.net/',
    };
    for (const [param, setting] of numeric) {
      expect(valueOf(appSettings, setting)).toBe(`string(${param})`);
      const p = params(main).find((x) => x.name === param);
      const decorators = p?.decorators.join(' ') ?? '';
      const min = Number(/@minValue\((\d+)\)/.exec(decorators)?.[1]);
      const max = Number(/@maxValue\((\d+)\)/.exec(decorators)?.[1]);
      const fallback = Number(p?.defaultValue);
      // The schema's default when unset equals the Bicep default.
      expect(parseSettings(base)[setting]).toBe(fallback);
      // The schema accepts the Bicep bounds and rejects what lies beyond them.
      expect(parseSettings({ ...base, [setting]: String(min) })[setting]).toBe(min);
      expect(parseSettings({ ...base, [setting]: String(max) })[setting]).toBe(max);
      expect(() => parseSettings({ ...base, [setting]: String(min - 1) })).toThrow(setting);
      expect(() => parseSettings({ ...base, [setting]: String(max + 1) })).toThrow(setting);
    }
  });

  test('list settings are passed as the comma-separated text the schema splits', () => {
    for (const [setting, param] of [
      ['DATABRICKS_ALLOWED_HOSTS', 'databricksAllowedHosts'],
      ['ROTATION_BINDINGS', 'rotationBindings'],
      ['NOTIFY_DEFAULT_CHANNELS', 'notifyDefaultChannels'],
      ['MAIL_DEFAULT_TO', 'mailDefaultTo'],
      ['NOTIFY_ALLOWED_DOMAINS', 'notifyAllowedDomains'],
    ] as const) {
      expect(valueOf(appSettings, setting)).toBe(param);
      expect(params(main).find((p) => p.name === param)?.type).toBe('string');
      expect(main).toMatch(new RegExp(`\\n\\s+${param}: ${param}\\n`));
    }
  });

  test('NOTIFICATION_TOPIC_ENDPOINT is the topic endpoint when the topic is enabled, else empty', () => {
    expect(valueOf(appSettings, 'NOTIFICATION_TOPIC_ENDPOINT')).toBe('notificationTopicEndpoint');
    expect(main).toMatch(
      /notificationTopicEndpoint: notificationTopicEnabled \? notificationTopic!\.outputs\.endpoint : ''/,
    );
  });

  test('the app settings resource carries exactly this object', () => {
    const config = resources(api).find((r) => r.type === 'Microsoft.Web/sites/config');
    expect(config?.body).toMatch(/name:\s*'appsettings'/);
    expect(config?.body).toMatch(/properties:\s*appSettings\b/);
  });
});

describe('function app', () => {
  const site = resources(api).find((r) => r.type === 'Microsoft.Web/sites' && !r.existing);

  test('Flex Consumption, Node 22, HTTPS only, TLS 1.2, user-assigned identity', () => {
    expect(site).toBeDefined();
    const body = site?.body ?? '';
    expect(body).toMatch(/kind:\s*'functionapp,linux'/);
    expect(body).toMatch(/httpsOnly:\s*true/);
    expect(body).toMatch(/minTlsVersion:\s*'1\.2'/);
    expect(body).toMatch(/type:\s*'UserAssigned'/);
    expect(body).toMatch(/runtime:\s*\{\s*name:\s*'node'\s*version:\s*'22'\s*\}/);
    expect(body).toMatch(/authentication:\s*\{\s*type:\s*'UserAssignedIdentity'/);
    expect(readInfra('app/plan.bicep')).toMatch(/name:\s*'FC1'\s*tier:\s*'FlexConsumption'/);
    // package.json and .nvmrc name the same Node major.
    expect(JSON.parse(read('package.json')).engines.node).toBe('>=22.0.0');
    expect(read('.nvmrc').trim()).toBe('22');
  });

  test('tagged for azd as the api service', () => {
    expect(site?.body).toMatch(/tags:\s*union\(tags, \{ 'azd-service-name': 'api' \}\)/);
    expect(main).toMatch(/var tags = \{ 'azd-env-name': environmentName \}/);
  });

  test('no publishing passwords', () => {
    const policies = resources(api).filter(
      (r) => r.type === 'Microsoft.Web/sites/basicPublishingCredentialsPolicies',
    );
    expect(policies.map((p) => /name:\s*'(\w+)'/.exec(p.body)?.[1]).sort()).toEqual(['ftp', 'scm']);
    for (const p of policies) expect(p.body).toMatch(/allow:\s*false/);
  });
});
