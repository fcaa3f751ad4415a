// Pure functions of the templates, kept apart so that tests/infra evaluates them with `bicep console`
// (which reads a line at a time, and on only while a bracket is open at the end of a line).

// A system topic's identity: system-assigned (dead letters are written with it) plus every user-assigned
// identity the existing topic has, by id only (principalId and clientId are read-only, refused on write).
@export()
func mergedIdentity(existing object?) object => empty(existing.?userAssignedIdentities ?? {})
  ? { type: 'SystemAssigned' }
  : { type: 'SystemAssigned, UserAssigned', userAssignedIdentities: toObject(objectKeys(existing.?userAssignedIdentities ?? {}), id => id, id => {}) }

// The resource group ids of the vaults in subscription `sub`, each once (several vaults may share one);
// a vault without subscriptionId is in `defaultSub`.
@export()
func vaultResourceGroupIds(vaults array, sub string, defaultSub string) string[] => union(map(filter(vaults, vault => (vault.?subscriptionId ?? defaultSub) == sub), vault => '/subscriptions/${sub}/resourceGroups/${vault.resourceGroup}'), [])

// The channels of NOTIFY_DEFAULT_CHANNELS, trimmed and lower-cased.
@export()
func channelList(channels string) string[] => filter(map(split(channels, ','), channel => toLower(trim(channel))), channel => !empty(channel))

// What makes main.bicep's parameters unable to work, one sentence each; empty when they can.
@export()
func inputProblems(p object) string[] => filter([
  empty(p.notificationSecretNames) || (!empty(p.notificationVaultName) && !empty(p.notificationVaultResourceGroup)) ? '' : 'A notification secret name (teamsWebhookUrlSecretName, webhookUrlSecretName, webhookSigningKeySecretName) needs notificationVaultName and notificationVaultResourceGroup (NOTIFICATION_SECRETS_VAULT_NAME, NOTIFICATION_SECRETS_VAULT_RESOURCE_GROUP).'
  empty(filter(channelList(p.notifyDefaultChannels), c => !contains(['teams', 'webhook', 'email', 'eventgrid'], c))) ? '' : 'notifyDefaultChannels (NOTIFY_DEFAULT_CHANNELS) takes only teams, webhook, email and eventgrid.'
  !contains(channelList(p.notifyDefaultChannels), 'teams') || !empty(p.teamsWebhookUrlSecretName) ? '' : 'The teams channel needs teamsWebhookUrlSecretName (TEAMS_WEBHOOK_URL_SECRET_NAME).'
  !contains(channelList(p.notifyDefaultChannels), 'webhook') || !empty(p.webhookUrlSecretName) ? '' : 'The webhook channel needs webhookUrlSecretName (WEBHOOK_URL_SECRET_NAME).'
  empty(p.webhookUrlSecretName) || !empty(p.webhookSigningKeySecretName) ? '' : 'webhookUrlSecretName needs webhookSigningKeySecretName (WEBHOOK_SIGNING_KEY_SECRET_NAME): deliveries are signed.'
  !contains(channelList(p.notifyDefaultChannels), 'email') || !empty(p.mailSender) ? '' : 'The email channel needs mailSender (MAIL_SENDER).'
  !contains(channelList(p.notifyDefaultChannels), 'eventgrid') || p.notificationTopicEnabled ? '' : 'The eventgrid channel needs notificationTopicEnabled (NOTIFICATION_TOPIC_ENABLED=true).'
  length(union(map(p.keyVaultNames, name => toLower(name)), [])) == length(p.keyVaultNames) ? '' : 'keyVaults (KEY_VAULTS) names a vault twice.'
], problem => !empty(problem))
