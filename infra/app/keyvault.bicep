// Per vault, deployed at the vault's resource group (vaults live apart from the service): the rotator's
// role on the vault and the vault's Event Grid system topic.

param vaultName string
@description('Principal id of the function app\'s user-assigned identity.')
param principalId string
param systemTopicName string
param tags object = {}

// Key Vault Secrets Officer: get and list secret properties (scan, re-read), get the current value
// (PAT successor, verification), set a new version, update tags. Data actions only; no access to keys,
// certificates or the vault's settings. The vault must use the Azure RBAC permission model.
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// A system topic lives in its source's region. The vault's region is known only while deploying, which a
// module parameter accepts and a resource's location does not: hence the nested module.
module topic 'keyvault-topic.bicep' = {
  name: take('${deployment().name}-topic', 64)
  params: {
    name: systemTopicName
    location: vault.location
    vaultId: vault.id
    tags: tags
  }
}

output vaultUri string = vault.properties.vaultUri
output systemTopicName string = topic.outputs.name
output systemTopicPrincipalId string = topic.outputs.principalId
