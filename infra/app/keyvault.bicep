// Per vault, deployed at the vault's resource group (vaults live apart from the service): the rotator's
// role on the vault and the vault's Event Grid system topic.

param vaultName string
@description('Principal id of the function app\'s user-assigned identity.')
param principalId string
@description('Resource id of the rotator\'s custom role (vault-role.bicep): get, read metadata, set, update.')
param roleDefinitionId string
@description('The vault\'s existing Event Grid system topic (a vault has at most one); empty: create newSystemTopicName.')
param existingSystemTopicName string = ''
param newSystemTopicName string
param tags object = {}

var reuseTopic = !empty(existingSystemTopicName)

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secretsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roleDefinitionId)
  scope: vault
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Read before it is written: a reused topic keeps the identities and tags other subscriptions rely on.
resource existingTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = if (reuseTopic) {
  name: existingSystemTopicName
}

// A system topic lives in its source's region. The vault's region is known only while deploying, which a
// module parameter accepts and a resource's location does not: hence the nested module.
module topic 'keyvault-topic.bicep' = {
  name: take('${deployment().name}-topic', 64)
  params: {
    name: reuseTopic ? existingSystemTopicName : newSystemTopicName
    location: vault.location
    vaultId: vault.id
    tags: tags
    existingTags: reuseTopic ? existingTopic.?tags : null
    existingIdentity: reuseTopic ? existingTopic.?identity : null
  }
}

output vaultUri string = vault.properties.vaultUri
output systemTopicName string = topic.outputs.name
output systemTopicPrincipalId string = topic.outputs.principalId
