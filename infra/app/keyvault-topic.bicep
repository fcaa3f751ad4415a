// The Event Grid system topic of one vault. A vault can have only one: to reuse an existing topic, pass its
// name (keyVaults[].systemTopicName); this then updates it in place, adding the identity below.

param name string
param location string
param vaultId string
param tags object = {}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  // Dead letters are written with this identity: the storage account accepts no shared keys.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: vaultId
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

output name string = topic.name
output principalId string = topic.identity.principalId
