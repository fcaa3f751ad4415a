// The function app: Flex Consumption (FC1), Node 20, the user-assigned identity for everything, HTTPS
// only, TLS 1.2. Its app settings are every setting of shared/config.ts the deployment decides.

param name string
param location string = resourceGroup().location
param tags object = {}
param appServicePlanId string
@description('Resource id of the user-assigned identity.')
param identityId string
@description('Client id of the user-assigned identity (AZURE_CLIENT_ID, storage and telemetry auth).')
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048

// ---------- Values of the app settings (shared/config.ts settingsSchema), built in main.bicep ----------

@description('Comma-separated https:// vault URLs.')
param keyVaultUris string
@description('Six-field NCRONTAB.')
param scanSchedule string
param scanConcurrency int
param rotationDryRun bool
param rotationDefaultValidityDays int
param rotationDefaultWindowDays int
param rotationDefaultGraceHours int
param databricksAllowedHosts string = ''
param rotationBindings string = ''
param notifyDefaultChannels string = ''
param mailSender string = ''
param mailDefaultTo string = ''
param notifyAllowedDomains string = ''
param notificationTopicEndpoint string = ''
@description('Key Vault secret URIs (no version, so a new value is picked up); empty when not configured.')
param teamsWebhookUrlSecretUri string = ''
param webhookUrlSecretUri string = ''
param webhookSigningKeySecretUri string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: appServicePlanId
    httpsOnly: true
    // Key Vault references resolve with this identity (there is no system-assigned one).
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: '20'
      }
    }
  }
}

// An empty value is how an app setting says "not set" (parseSettings drops it).
var keyVaultReference = {
  teams: empty(teamsWebhookUrlSecretUri) ? '' : '@Microsoft.KeyVault(SecretUri=${teamsWebhookUrlSecretUri})'
  webhookUrl: empty(webhookUrlSecretUri) ? '' : '@Microsoft.KeyVault(SecretUri=${webhookUrlSecretUri})'
  webhookSigningKey: empty(webhookSigningKeySecretUri) ? '' : '@Microsoft.KeyVault(SecretUri=${webhookSigningKeySecretUri})'
}

// Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and
// WEBSITE_RUN_FROM_PACKAGE: the runtime and the package location live in functionAppConfig.
var appSettings = {
  // Host storage, identity-based: no connection string, no key.
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId

  // Telemetry, Entra-authenticated (Application Insights has local auth disabled).
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'

  // Who the service is.
  AZURE_TENANT_ID: tenant().tenantId
  AZURE_CLIENT_ID: identityClientId
  KEY_VAULT_URIS: keyVaultUris

  // Scanning and rotation policy defaults (booleans as 'true'/'false': string(true) would be 'True').
  SCAN_SCHEDULE: scanSchedule
  SCAN_CONCURRENCY: string(scanConcurrency)
  ROTATION_DRY_RUN: rotationDryRun ? 'true' : 'false'
  ROTATION_DEFAULT_VALIDITY_DAYS: string(rotationDefaultValidityDays)
  ROTATION_DEFAULT_WINDOW_DAYS: string(rotationDefaultWindowDays)
  ROTATION_DEFAULT_GRACE_HOURS: string(rotationDefaultGraceHours)
  DATABRICKS_ALLOWED_HOSTS: databricksAllowedHosts
  ROTATION_BINDINGS: rotationBindings

  // Notifications. URLs and keys are Key Vault references, never values in the template.
  NOTIFY_DEFAULT_CHANNELS: notifyDefaultChannels
  TEAMS_WEBHOOK_URL: keyVaultReference.teams
  WEBHOOK_URL: keyVaultReference.webhookUrl
  WEBHOOK_SIGNING_KEY: keyVaultReference.webhookSigningKey
  MAIL_SENDER: mailSender
  MAIL_DEFAULT_TO: mailDefaultTo
  NOTIFY_ALLOWED_DOMAINS: notifyAllowedDomains
  NOTIFICATION_TOPIC_ENDPOINT: notificationTopicEndpoint
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: appSettings
}

// No publishing passwords: azd deploys to Flex Consumption with an Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output id string = functionApp.id
output defaultHostName string = functionApp.properties.defaultHostName
