// The custom role the rotator holds on each vault: exactly the secret data actions the code calls, where
// the built-in Key Vault Secrets Officer would also grant delete, purge, backup, restore and recover.
//   getSecret     getSecret (PAT successor, verify, reconcile)
//   readMetadata  listPropertiesOfSecrets (scan) and the properties getSecret returns
//   setSecret     setSecret (the new version)
//   update        updateSecretProperties (state tags on the previous version)
// No control-plane actions: the vault's settings, keys and certificates stay out of reach. One definition
// per deployment, assignable in the vaults' resource groups only.
targetScope = 'subscription'

@description('Unique part of the role\'s name (role names are unique in a tenant).')
param nameToken string
@description('Resource group ids (/subscriptions/…/resourceGroups/…) of the vaults.')
param assignableScopes string[]

var dataActions = [
  'Microsoft.KeyVault/vaults/secrets/getSecret/action'
  'Microsoft.KeyVault/vaults/secrets/readMetadata/action'
  'Microsoft.KeyVault/vaults/secrets/setSecret/action'
  'Microsoft.KeyVault/vaults/secrets/update/action'
]

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, nameToken, 'kv-credential-rotator-secrets')
  properties: {
    // Role names are unique in the tenant: one deployment may define the role in several subscriptions.
    roleName: 'Key Vault credential rotator (${nameToken}-${take(uniqueString(subscription().id), 6)})'
    description: 'Read, list, set and update secrets (not delete, purge, backup, restore or recover): what the Key Vault credential rotator calls.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: dataActions
        notDataActions: []
      }
    ]
    assignableScopes: assignableScopes
  }
}

output id string = role.id
output dataActions string[] = dataActions
