// Role assignments in the service's resource group: what the function app's identity needs for the calls
// the code makes, and what Event Grid needs to dead-letter. Least privilege: data roles only, each scoped
// to the one resource it is for.

@description('Principal id of the function app\'s user-assigned identity.')
param principalId string
param storageAccountName string
param applicationInsightsName string
@description('Name of the notification custom topic; empty when it is not deployed.')
param notificationTopicName string = ''
param deadLetterContainerName string
@description('Principal ids of the Key Vault system topics, which dead-letter with their own identity.')
param deadLetterWriterPrincipalIds string[] = []

// Storage Queue Data Contributor: send to, receive from and delete messages of rotation-requests,
// notifications and their -poison queues (the host creates and reads those too).
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
// Storage Blob Data Owner: lease blobs under locks/, the host's own blobs (timer schedule, leases) and
// the Flex deployment package. Owner, as the Flex Consumption sample uses for AzureWebJobsStorage.
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
// Monitoring Metrics Publisher: Entra-authenticated ingestion into Application Insights.
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'
// EventGrid Data Sender: publish notifications to the custom topic (its local auth is off).
var eventGridDataSenderRoleId = 'd5a91429-5739-47e2-a06b-3470a27159e7'
// Storage Blob Data Contributor: Event Grid writes undeliverable Key Vault events to the dead-letter container.
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// A placeholder name when the topic is off keeps the reference valid; the assignment is skipped then.
resource notificationTopic 'Microsoft.EventGrid/topics@2022-06-15' existing = {
  name: !empty(notificationTopicName) ? notificationTopicName : 'notification-topic-disabled'
}

resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageQueueDataContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwnerRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisherRoleId)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource eventGridDataSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(notificationTopicName)) {
  name: guid(notificationTopic.id, principalId, eventGridDataSenderRoleId)
  scope: notificationTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSenderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource deadLetterWriters 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for writer in deadLetterWriterPrincipalIds: {
    name: guid(deadLetterContainer.id, writer, storageBlobDataContributorRoleId)
    scope: deadLetterContainer
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
      principalId: writer
      principalType: 'ServicePrincipal'
    }
  }
]
