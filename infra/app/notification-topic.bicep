// Optional Event Grid custom topic that notifications are published to (the `eventgrid` channel).
// Entra-only: the function app publishes with EventGrid Data Sender (rbac.bicep), never with a key.

param name string
param location string = resourceGroup().location
param tags object = {}
@allowed(['CloudEventSchemaV1_0', 'EventGridSchema'])
param inputSchema string = 'CloudEventSchemaV1_0'

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    inputSchema: inputSchema
    publicNetworkAccess: 'Enabled'
    disableLocalAuth: true
  }
}

output name string = topic.name
output endpoint string = topic.properties.endpoint
