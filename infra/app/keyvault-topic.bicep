// The Event Grid system topic of one vault. A vault can have only one: an existing topic is updated in
// place, keeping its tags and identities (keyvault.bicep reads them first) and adding ours: the
// system-assigned identity dead letters are written with. Other subscriptions on the topic that deliver
// or dead-letter with a user-assigned identity keep working.
import { mergedIdentity } from 'functions.bicep'

param name string
param location string
param vaultId string
param tags object = {}
@description('Tags of the existing topic being reused; null for a new topic.')
param existingTags object?
@description('Identity block of the existing topic being reused; null for a new topic.')
param existingIdentity object?

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: union(existingTags ?? {}, tags)
  // Dead letters are written with the system-assigned identity: the storage account accepts no shared keys.
  identity: mergedIdentity(existingIdentity)
  properties: {
    source: vaultId
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

output name string = topic.name
output principalId string = topic.identity.principalId
