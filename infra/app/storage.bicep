// The service's storage account: queues for work, lease blobs for locks, the Flex deployment package and
// Event Grid dead letters. Shared keys are off: every client (host, code, Event Grid) uses Entra ID.

param name string
param location string = resourceGroup().location
param tags object = {}
@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainerName string

// Names shared with the code: shared/constants.ts STORAGE. tests/infra keeps them equal.
var rotationQueueName = 'rotation-requests'
var notificationQueueName = 'notifications'
var lockContainerName = 'locks'
// The issuance record (shared/issuance.ts): what the service asked providers for; only it writes here.
var issuanceContainerName = 'issuance'
// Key Vault events Event Grid could not deliver to onKeyVaultEvent (after its retries).
var deadLetterContainerName = 'eventgrid-deadletter'

// The host moves a message to {queue}-poison after maxDequeueCount (host.json) attempts and would create
// these itself; creating them here means they exist, and can be watched, from the start.
var queueNames = [
  rotationQueueName
  '${rotationQueueName}-poison'
  notificationQueueName
  '${notificationQueueName}-poison'
]
var containerNames = [
  deploymentContainerName
  lockContainerName
  issuanceContainerName
  deadLetterContainerName
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output deploymentContainerName string = deploymentContainerName
output deadLetterContainerName string = deadLetterContainerName
output rotationQueueName string = rotationQueueName
output notificationQueueName string = notificationQueueName
output lockContainerName string = lockContainerName
