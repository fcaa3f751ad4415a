// One tenant's deployment of the Key Vault credential rotator (azd: `azd up`; see docs/deploy.md).
// Conventions follow Azure-Samples/functions-quickstart-typescript-azd: subscription scope, a resource
// group per azd environment, a user-assigned identity, Flex Consumption, identity-based storage.
targetScope = 'subscription'

// ---------- Environment ----------

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; part of the unique token in every generated name.')
param environmentName string

@minLength(1)
@description('Region of the resource group and its resources. It must offer Flex Consumption: az functionapp list-flexconsumption-locations.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

// ---------- Names: every one overridable, empty means generated ----------

param resourceGroupName string = ''
param apiServiceName string = ''
param apiUserAssignedIdentityName string = ''
param appServicePlanName string = ''
param storageAccountName string = ''
param logAnalyticsName string = ''
param applicationInsightsName string = ''
param notificationTopicName string = ''
param actionGroupName string = ''
param alertRuleNamePrefix string = ''
param eventSubscriptionName string = ''
param workbookDisplayName string = 'Key Vault credential rotator'

// ---------- Vaults ----------

@description('An existing Key Vault the rotator scans and takes events from. It must use the Azure RBAC permission model.')
type keyVaultRef = {
  @description('Vault name.')
  name: string

  @description('Resource group of the vault.')
  resourceGroup: string

  @description('Subscription of the vault; default: the subscription of this deployment.')
  subscriptionId: string?

  @description('The vault\'s existing Event Grid system topic, if it already has one (a vault can have only one); default: a new topic egst-{vault}.')
  systemTopicName: string?
}

@minLength(1)
@description('The vaults to rotate secrets in, e.g. [{"name":"kv-prod","resourceGroup":"rg-secrets"}].')
param keyVaults keyVaultRef[]

@description('Create the Event Grid subscriptions. They deliver to the function onKeyVaultEvent, which exists only once the code is deployed, so the postdeploy hook turns this on after the first `azd deploy`.')
param keyVaultEventsEnabled bool = false

// ---------- Behaviour: app settings of shared/config.ts ----------

@allowed([1, 2, 3, 4, 6, 8, 12, 24])
@description('Hours between scans (SCAN_SCHEDULE). A divisor of 24, so the runs are evenly spaced; the "no scan" alert fires after twice this.')
param scanIntervalHours int = 6

@minValue(1)
@maxValue(64)
param scanConcurrency int = 4

@description('Plan and report only, change nothing (ROTATION_DRY_RUN).')
param rotationDryRun bool = false

@minValue(1)
@maxValue(730)
param rotationDefaultValidityDays int = 90

@minValue(1)
@maxValue(365)
param rotationDefaultWindowDays int = 30

@minValue(0)
@maxValue(720)
param rotationDefaultGraceHours int = 24

// Lists below are comma-separated, exactly as the app setting takes them.

@description('DATABRICKS_ALLOWED_HOSTS: hosts besides *.azuredatabricks.net that the databricks-host tag may name.')
param databricksAllowedHosts string = ''

@description('ROTATION_BINDINGS, e.g. "kv-prod/*=databricks-sp:{accountId}/{spId},kv-prod/app-secret=entra-app:{appId}".')
param rotationBindings string = ''

@description('NOTIFY_DEFAULT_CHANNELS, any of teams,webhook,email,eventgrid. Each needs its setting: teams → teamsWebhookUrlSecretName, webhook → webhookUrlSecretName and webhookSigningKeySecretName, email → mailSender, eventgrid → notificationTopicEnabled.')
param notifyDefaultChannels string = ''

@description('Mailbox (user principal name) notifications are sent from with Graph sendMail; empty disables email.')
param mailSender string = ''

@description('MAIL_DEFAULT_TO: addresses every email notification goes to.')
param mailDefaultTo string = ''

@description('NOTIFY_ALLOWED_DOMAINS: mail domains a notify tag may name; empty takes no recipient from tags.')
param notifyAllowedDomains string = ''

// ---------- Notification channels ----------

@description('Deploy an Event Grid custom topic for notifications (NOTIFICATION_TOPIC_ENDPOINT).')
param notificationTopicEnabled bool = false

@description('Vault holding the notification secrets below (only names are passed; the values stay in the vault).')
param notificationSecretsVaultName string = ''
param notificationSecretsVaultResourceGroup string = ''
param notificationSecretsVaultSubscriptionId string = ''

@description('Secret holding the Teams Workflows webhook URL (TEAMS_WEBHOOK_URL).')
param teamsWebhookUrlSecretName string = ''

@description('Secret holding the generic webhook URL (WEBHOOK_URL).')
param webhookUrlSecretName string = ''

@description('Secret holding the webhook HMAC key, at least 32 characters (WEBHOOK_SIGNING_KEY).')
param webhookSigningKeySecretName string = ''

// ---------- Scale and alerts ----------

@minValue(1)
@maxValue(1000)
@description('Upper bound of Flex Consumption instances; it also bounds concurrent calls to provider APIs.')
param maximumInstanceCount int = 40

@description('Email addresses of the alert action group, comma-separated.')
param alertEmails string = ''

// ---------- Derived values ----------

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

var functionAppName = !empty(apiServiceName) ? apiServiceName : '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(toLower(functionAppName), 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'

// Six-field NCRONTAB, as the timer trigger takes it: second 0, minute 0, every scanIntervalHours hours.
var scanSchedule = '0 0 */${scanIntervalHours} * * *'

var keyVaultUris = [for vault in keyVaults: 'https://${vault.name}${environment().suffixes.keyvaultDns}']

var notificationSecretsSubscriptionId = !empty(notificationSecretsVaultSubscriptionId) ? notificationSecretsVaultSubscriptionId : subscription().subscriptionId
// Unused when no secret name is given; the fallback only keeps the (skipped) module's scope valid.
var notificationSecretsResourceGroup = !empty(notificationSecretsVaultResourceGroup) ? notificationSecretsVaultResourceGroup : rg.name
var notificationVaultUri = 'https://${notificationSecretsVaultName}${environment().suffixes.keyvaultDns}'
var notificationSecretNames = filter([teamsWebhookUrlSecretName, webhookUrlSecretName, webhookSigningKeySecretName], secretName => !empty(secretName))

// ---------- Resource group ----------

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// ---------- Identity, hosting, storage, monitoring ----------

// The function app's only identity: no secret of its own; every service accepts it through RBAC.
module apiIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'apiUserAssignedIdentity'
  scope: rg
  params: {
    name: !empty(apiUserAssignedIdentityName) ? apiUserAssignedIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module appServicePlan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'appserviceplan'
  scope: rg
  params: {
    name: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
    location: location
    tags: tags
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.11.1' = {
  name: '${uniqueString(deployment().name, location)}-loganalytics'
  scope: rg
  params: {
    name: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    location: location
    tags: tags
    dataRetention: 30
  }
}

module appInsights 'br/public:avm/res/insights/component:0.6.0' = {
  name: '${uniqueString(deployment().name, location)}-appinsights'
  scope: rg
  params: {
    name: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    // Entra-only ingestion: the identity needs Monitoring Metrics Publisher (rbac.bicep).
    disableLocalAuth: true
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentStorageContainerName
  }
}

module notificationTopic 'app/notification-topic.bicep' = if (notificationTopicEnabled) {
  name: 'notificationTopic'
  scope: rg
  params: {
    name: !empty(notificationTopicName) ? notificationTopicName : '${abbrs.eventGridDomainsTopics}notify-${resourceToken}'
    location: location
    tags: tags
  }
}

// ---------- Vaults: each in its own resource group (and perhaps subscription) ----------

// Key Vault Secrets Officer on the vault and its Event Grid system topic.
module vaults 'app/keyvault.bicep' = [
  for (vault, i) in keyVaults: {
    name: 'keyvault-${i}-${resourceToken}'
    scope: resourceGroup(vault.?subscriptionId ?? subscription().subscriptionId, vault.resourceGroup)
    params: {
      vaultName: vault.name
      principalId: apiIdentity.outputs.principalId
      systemTopicName: vault.?systemTopicName ?? '${abbrs.eventGridSystemTopics}${vault.name}'
      tags: tags
    }
  }
]

// Read access to exactly the secrets the app settings reference (Key Vault references).
module notificationSecrets 'app/notification-secrets.bicep' = if (!empty(notificationSecretNames)) {
  name: 'notification-secrets-${resourceToken}'
  scope: resourceGroup(notificationSecretsSubscriptionId, notificationSecretsResourceGroup)
  params: {
    vaultName: notificationSecretsVaultName
    secretNames: notificationSecretNames
    principalId: apiIdentity.outputs.principalId
  }
}

// ---------- Role assignments in the service's resource group ----------

module rbac 'app/rbac.bicep' = {
  name: 'rbacAssignments'
  scope: rg
  params: {
    principalId: apiIdentity.outputs.principalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: appInsights.outputs.name
    notificationTopicName: notificationTopicEnabled ? notificationTopic!.outputs.name : ''
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    deadLetterWriterPrincipalIds: [for i in range(0, length(keyVaults)): vaults[i].outputs.systemTopicPrincipalId]
  }
}

// ---------- The function app ----------

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    appServicePlanId: appServicePlan.outputs.resourceId
    identityId: apiIdentity.outputs.resourceId
    identityClientId: apiIdentity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: appInsights.outputs.name
    maximumInstanceCount: maximumInstanceCount
    keyVaultUris: join(keyVaultUris, ',')
    scanSchedule: scanSchedule
    scanConcurrency: scanConcurrency
    rotationDryRun: rotationDryRun
    rotationDefaultValidityDays: rotationDefaultValidityDays
    rotationDefaultWindowDays: rotationDefaultWindowDays
    rotationDefaultGraceHours: rotationDefaultGraceHours
    databricksAllowedHosts: databricksAllowedHosts
    rotationBindings: rotationBindings
    notifyDefaultChannels: notifyDefaultChannels
    mailSender: mailSender
    mailDefaultTo: mailDefaultTo
    notifyAllowedDomains: notifyAllowedDomains
    notificationTopicEndpoint: notificationTopicEnabled ? notificationTopic!.outputs.endpoint : ''
    teamsWebhookUrlSecretUri: empty(teamsWebhookUrlSecretName) ? '' : '${notificationVaultUri}/secrets/${teamsWebhookUrlSecretName}'
    webhookUrlSecretUri: empty(webhookUrlSecretName) ? '' : '${notificationVaultUri}/secrets/${webhookUrlSecretName}'
    webhookSigningKeySecretUri: empty(webhookSigningKeySecretName) ? '' : '${notificationVaultUri}/secrets/${webhookSigningKeySecretName}'
  }
  // Start the host once its identity can reach storage, telemetry and the referenced secrets.
  dependsOn: [
    rbac
    notificationSecrets
  ]
}

// ---------- Key Vault events → onKeyVaultEvent (second pass, after the code is deployed) ----------

module vaultEvents 'app/keyvault-events.bicep' = [
  for (vault, i) in keyVaults: if (keyVaultEventsEnabled) {
    name: 'keyvault-events-${i}-${resourceToken}'
    scope: resourceGroup(vault.?subscriptionId ?? subscription().subscriptionId, vault.resourceGroup)
    params: {
      name: !empty(eventSubscriptionName) ? eventSubscriptionName : '${abbrs.eventGridEventSubscriptions}rotator-${resourceToken}'
      systemTopicName: vaults[i].outputs.systemTopicName
      functionAppId: api.outputs.id
      deadLetterStorageAccountId: storage.outputs.id
      deadLetterContainerName: storage.outputs.deadLetterContainerName
    }
    // The topic's identity must be able to write dead letters before events can fail.
    dependsOn: [
      rbac
    ]
  }
]

// ---------- Workbook and alerts ----------

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    applicationInsightsName: appInsights.outputs.name
    location: location
    tags: tags
    actionGroupName: !empty(actionGroupName) ? actionGroupName : '${abbrs.insightsActionGroups}rotator-${resourceToken}'
    alertRuleNamePrefix: !empty(alertRuleNamePrefix) ? alertRuleNamePrefix : '${abbrs.insightsAlertRules}rotator-${resourceToken}-'
    alertEmails: filter(map(split(alertEmails, ','), email => trim(email)), email => !empty(email))
    scanIntervalHours: scanIntervalHours
    workbookDisplayName: workbookDisplayName
  }
}

// ---------- Outputs for azd (written to .azure/{env}/.env) ----------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_CONNECTION_STRING string = appInsights.outputs.connectionString
// Not AZURE_CLIENT_ID: that name in a developer's environment would steer DefaultAzureCredential.
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = apiIdentity.outputs.clientId
output AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID string = apiIdentity.outputs.principalId
output KEY_VAULT_URIS string = join(keyVaultUris, ',')
output SCAN_SCHEDULE string = scanSchedule
output NOTIFICATION_TOPIC_ENDPOINT string = notificationTopicEnabled ? notificationTopic!.outputs.endpoint : ''
