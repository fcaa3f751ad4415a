// The operator's view of the service: an Application Insights workbook and log alert rules with an
// action group. Every query reads customEvents by the names and dimensions in
// shared/telemetry/events.ts; tests/infra/kql.test.ts parses each query with the Kusto language service
// and keeps the two in step. What each tile and alert means: docs/deploy.md, "Watching it".

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
@description('Names of the vaults the rotator scans: the "no completed scan" alert expects a completed scan of each, including one that never scanned.')
param vaultNames string[] = []
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

// A rotation, revoke or reconcile that FINALLY failed: permanent, or the queue's last delivery
// (host.json maxDequeueCount). Attempts that will be retried carry final=false and alert nobody; an
// Event Grid delivery that keeps failing ends as a dead letter, which the poison alert reports.
var rotationFailedQuery = '''
customEvents
| where name == "SecretRotationFailed"
| where tostring(customDimensions.final) == "true"
| extend vault = tostring(customDimensions.vault), secret = tostring(customDimensions.secret)
'''

// A secret that opted in (has rotation-kind) and expired anyway: its rotation is not working.
var secretExpiredQuery = '''
customEvents
| where name == "SecretExpired"
| where tostring(customDimensions.optedIn) == "true"
| extend vault = tostring(customDimensions.vault), secret = tostring(customDimensions.secret)
'''

// Every message that left its queue unprocessed: a malformed rotation request or notification (parked
// at once), one whose last delivery failed, and a Key Vault event Event Grid dead-lettered (found by the
// scan in the dead-letter container). One MessagePoisoned event each. A malformed message names no
// secret: its dimensions read "(none)" rather than an empty value.
var poisonedQuery = '''
customEvents
| where name == "MessagePoisoned"
| extend queue = tostring(customDimensions.poisonQueue), cause = tostring(customDimensions.cause)
| extend vault = tostring(customDimensions.vault), secret = tostring(customDimensions.secret)
| extend vault = iff(isempty(vault), "(none)", vault), secret = iff(isempty(secret), "(none)", secret)
'''

// Scans measure every poison queue and the dead-letter container (QueueBacklog). A non-empty one waits
// for a person, whatever put the messages there, including a message the host poisoned before any of
// our code ran. The latest measurement counts; twice the scan interval always holds one.
var backlogQuery = format('''
customEvents
| where name == "QueueBacklog"
| extend queue = tostring(customDimensions.queue)
| where queue endswith "-poison" or queue == "{0}"
| summarize arg_max(timestamp, customDimensions) by queue
| extend messages = tolong(customDimensions.messages)
| where messages > 0
| project queue, messages
''', deadLetterContainerName)
var deadLetterContainerName = 'eventgrid-deadletter'

// One row per vault whose latest COMPLETED scan is older than twice the scan interval: the configured
// vaults (a vault that never scanned has no lastCompleted) and any vault seen scanning in the query's
// two-day range. A failed scan (outcome "failed") does not count as a scan.
var scanMissingHours = 2 * scanIntervalHours
var scanMissingQuery = format('''
let scans = customEvents
| where name == "ScanCompleted"
| extend vault = tostring(customDimensions.vault), outcome = tostring(customDimensions.outcome);
let configured = print vault = dynamic({1})
| mv-expand vault to typeof(string);
union configured, (scans | distinct vault)
| where isnotempty(vault)
| distinct vault
| join kind=leftouter (scans
    | where outcome == "completed"
    | summarize lastCompleted = max(timestamp) by vault) on vault
| where isnull(lastCompleted) or lastCompleted < ago({0}h)
| project vault, lastCompleted
''', scanMissingHours, string(vaultNames))

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

var perQueue = [{ name: 'queue', operator: 'Include', values: ['*'] }]
var perPoisonedMessage = concat(perQueue, [{ name: 'cause', operator: 'Include', values: ['*'] }], perSecret)
var perVault = [{ name: 'vault', operator: 'Include', values: ['*'] }]

// ---------- Alert rules ----------
// Events (a final failure, an expiry, a poisoned message) happen once: those rules are stateless and
// evaluate windows as long as their frequency, so each event is counted in exactly one window and
// alerts once. Conditions (a vault not scanning, a non-empty poison queue) are stateful: one alert
// when the condition starts, resolved when it ends.

resource rotationFailedAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${alertRuleNamePrefix}rotation-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Credential rotation failed'
    description: 'A SecretRotationFailed event with final=true: a rotation, revoke or reconcile of this secret failed and nothing will retry it (permanent, or the queue\'s last attempt). The workbook shows the step, reason and the service\'s error.'
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
    // Stateless: one alert per secret per final failure. "Resolved" 15 minutes later would not mean fixed.
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
    // Stateless: the scan reports an expiry once per secret version.
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
    description: 'A MessagePoisoned event: a rotation request or notification was malformed or failed on its last attempt (now in rotation-requests-poison or notifications-poison), or Event Grid dead-lettered a Key Vault event (eventgrid-deadletter).'
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
          dimensions: perPoisonedMessage
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // Stateless: one alert per poisoned message (per queue, cause and secret in a window).
    autoMitigate: false
    actions: {
      actionGroups: [actionGroup.id]
    }
  }
}

resource backlogAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${alertRuleNamePrefix}poison-backlog'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Poison queue or dead letters waiting'
    description: 'The latest scan measured messages in a -poison queue or blobs in ${deadLetterContainerName}: someone must read, fix and clear them.'
    severity: 2
    enabled: true
    scopes: [applicationInsights.id]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    // The latest measurement: one per scan, so twice the scan interval always holds one.
    overrideQueryTimeRange: 'PT${scanMissingHours}H'
    criteria: {
      allOf: [
        {
          query: backlogQuery
          timeAggregation: 'Count'
          dimensions: perQueue
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // Stateful: one alert per queue while it holds messages, resolved once a scan measures it empty.
    autoMitigate: true
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
    description: 'A vault without a ScanCompleted event with outcome "completed" in ${scanMissingHours} hours (twice the scan interval), or a configured vault that never completed one: the timer, the host or this vault\'s access is broken.'
    severity: 2
    enabled: true
    scopes: [applicationInsights.id]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    // The query decides what "too old" is (ago(2 × interval)); it reads two days, the longest range a
    // log alert may query, so a vault that scanned before is still known while it is missing.
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          query: scanMissingQuery
          timeAggregation: 'Count'
          dimensions: perVault
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // Stateful: one alert per vault when its scans stop, resolved when one completes again.
    autoMitigate: true
    actions: {
      actionGroups: [actionGroup.id]
    }
  }
}

output workbookId string = workbook.id
output actionGroupId string = actionGroup.id
