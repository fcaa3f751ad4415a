// One event subscription per vault (not per secret): the event types the handler acts on, delivered to
// the function onKeyVaultEvent, retried, then dead-lettered with the system topic's own identity.

@description('Name of the event subscription.')
param name string
param systemTopicName string
@description('Resource id of the function app.')
param functionAppId string
param deadLetterStorageAccountId string
param deadLetterContainerName string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: name
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        // The name the Event Grid trigger is registered under in functions/.
        resourceId: '${functionAppId}/functions/onKeyVaultEvent'
        // app.eventGrid handles one event per invocation.
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    // shared/constants.ts HANDLED_EVENT_TYPES; tests/infra keeps the two equal.
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
      ]
    }
    eventDeliverySchema: 'EventGridSchema'
    // The handler throws on transient failures so Event Grid retries; the scan is the backstop after that.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    // Written with the topic's system-assigned identity, authorized by Storage Blob Data Contributor on
    // this one container (rbac.bicep): an Entra data-plane write, which an account without shared keys
    // accepts, rather than the identity-less deadLetterDestination.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output id string = eventSubscription.id
