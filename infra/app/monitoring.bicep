// The operator's view of the service: an Application Insights workbook and log alert rules with an
// action group. Every query reads customEvents by the names in shared/telemetry/events.ts; tests/infra
// keeps the two in step.

param applicationInsightsName string
param location string = resourceGroup().location
param tags object = {}
param actionGroupName string
@description('Prefix of the alert rule names.')
param alertRuleNamePrefix string
param alertEmails string[] = []
@allowed([1, 2, 3, 4, 6, 8, 12, 24])
@description('Hours between scans; the "no scan" alert looks back twice this.')
param scanIntervalHours int = 6
param workbookDisplayName string = 'Key Vault credential rotator'

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// ---------- Workbook ----------

resource workbook 'Microsoft.Insights/workbooks@2022-04-01' = {
  name: guid(applicationInsights.id, 'kv-rotator-workbook')
  location: location
  tags: union(tags, { 'hidden-title': workbookDisplayName })
  kind: 'shared'
  properties: {
    displayName: workbookDisplayName
    category: 'workbook'
    sourceId: applicationInsights.id
    version: 'Notebook/1.0'
    // The JSON names its data source by a placeholder, replaced here with this Application Insights.
    serializedData: replace(loadTextContent('workbook.json'), '__APPLICATION_INSIGHTS_ID__', applicationInsights.id)
  }
}

// ---------- Action group ----------

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'kv-rotator'
    enabled: true
    emailReceivers: [
      for (email, i) in alertEmails: {
        name: 'email-${i}'
        emailAddress: email
        useCommonAlertSchema: true
      }
    ]
  }
}

// ---------- Queries ----------

// Any failed rotation, revoke or reconcile, one alert per secret.
var rotationFailedQuery = '''
customEvents
| where name == "SecretRotationFailed"
| extend vault = tostring(customDimensions.vault), secret = tostring(customDimensions.secret)
'''

// A secret that opted in (has rotation-kind) and expired anyway: its rotation is not working.
var secretExpiredQuery = '''
customEvents
| where name == "SecretExpired"
| where tostring(customDimensions.optedIn) == "true"
| extend vault = tostring(customDimensions.vault), secret = tostring(customDimensions.secret)
'''

// A message on its last dequeue (host.json maxDequeueCount) failed: it is going to a -poison queue.
var poisonedQuery = '''
customEvents
| where name in ("SecretRotationFailed", "NotificationFailed")
| where tostring(customDimensions.poisoned) == "true"
| extend queue = iff(name == "NotificationFailed", "notifications-poison", "rotation-requests-poison")
| extend vault = tostring(customDimensions.vault), secret = tostring(customDimensions.secret)
'''

// No vault completed a scan in twice the scan interval: the timer, the host or Key Vault access is broken.
// The rule counts rows, so "fewer than 1" is an absence; without dimensions an empty result still evaluates.
var scanMissingHours = 2 * scanIntervalHours
var scanMissingQuery = format('''
customEvents
| where timestamp > ago({0}h)
| where name == "ScanCompleted"
| where tostring(customDimensions.outcome) == "completed"
''', scanMissingHours)

var perSecret = [
  {
    name: 'vault'
    operator: 'Include'
    values: ['*']
  }
  {
    name: 'secret'
    operator: 'Include'
    values: ['*']
  }
]

var perQueueAndSecret = concat([{ name: 'queue', operator: 'Include', values: ['*'] }], perSecret)

// ---------- Alert rules ----------

resource rotationFailedAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${alertRuleNamePrefix}rotation-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Credential rotation failed'
    description: 'A SecretRotationFailed event: a rotation, revoke or reconcile of a secret failed. The workbook shows the step and reason.'
    severity: 2
    enabled: true
    scopes: [applicationInsights.id]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: rotationFailedQuery
          timeAggregation: 'Count'
          dimensions: perSecret
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [actionGroup.id]
    }
  }
}

resource secretExpiredAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${alertRuleNamePrefix}secret-expired'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Opted-in secret expired'
    description: 'A SecretExpired event for a secret with rotation-kind: the secret expired although it should have been rotated.'
    severity: 1
    enabled: true
    scopes: [applicationInsights.id]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: secretExpiredQuery
          timeAggregation: 'Count'
          dimensions: perSecret
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [actionGroup.id]
    }
  }
}

resource poisonedAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${alertRuleNamePrefix}poison-message'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Message moved to a poison queue'
    description: 'A rotation request or a notification failed on its last attempt and went to rotation-requests-poison or notifications-poison.'
    severity: 1
    enabled: true
    scopes: [applicationInsights.id]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: poisonedQuery
          timeAggregation: 'Count'
          dimensions: perQueueAndSecret
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [actionGroup.id]
    }
  }
}

resource scanMissingAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${alertRuleNamePrefix}scan-missing'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'No completed scan'
    description: 'No ScanCompleted event with outcome "completed" in ${scanMissingHours} hours (twice the scan interval).'
    severity: 2
    enabled: true
    scopes: [applicationInsights.id]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    // Look back over the whole absence window, not only the evaluation bin.
    overrideQueryTimeRange: 'PT${scanMissingHours}H'
    criteria: {
      allOf: [
        {
          query: scanMissingQuery
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // Stateful: one alert when scans stop, resolved when they resume.
    autoMitigate: true
    actions: {
      actionGroups: [actionGroup.id]
    }
  }
}

output workbookId string = workbook.id
output actionGroupId string = actionGroup.id
