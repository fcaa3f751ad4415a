// Read access to exactly the secrets the function app's Key Vault references point at (Teams webhook
// URL, webhook URL, webhook signing key), deployed at that vault's resource group. Scoped to each secret,
// not the vault: the values stay readable only to the references that need them.

param vaultName string
param secretNames string[]
@description('Principal id of the function app\'s user-assigned identity.')
param principalId string

// Key Vault Secrets User: read a secret's value (App Service resolving @Microsoft.KeyVault(SecretUri=…)).
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [
  for secretName in secretNames: {
    parent: vault
    name: secretName
  }
]

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for i in range(0, length(secretNames)): {
    name: guid(secrets[i].id, principalId, keyVaultSecretsUserRoleId)
    scope: secrets[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]
