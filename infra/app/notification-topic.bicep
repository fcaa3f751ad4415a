// Optional Event Grid custom topic that notifications are published to (the `eventgrid` channel).
// Entra-only: the function app publishes with EventGrid Data Sender (rbac.bicep), never with a key.

param name string
param location string = resourceGroup().location
param tags object = {}

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    // The schema shared/notifications/channels/eventgrid.ts publishes in (EventGridPublisherClient 'EventGrid').
    inputSchema: 'EventGridSchema'
    publicNetworkAccess: 'Enabled'
    disableLocalAuth: true
  }
}

output name string = topic.name
output endpoint string = topic.properties.endpoint
