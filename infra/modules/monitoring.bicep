// Where a deployment is watched from the portal: Log Analytics, Application Insights (the app and its
// workers report there through azure-monitor-opentelemetry, shared/telemetry), a workbook of backup
// sessions and an alert on failed sessions.
//
// Two sources describe a session: the bulwark.* metrics the code emits (shared/telemetry/metrics.py;
// bulwark.sessions counts finished sessions by result), and the Durable Functions tracking traces of
// the session orchestrator (its Failed state means the orchestration itself crashed, so no result was
// ever counted). tests/infra checks that the names used here are the names the code uses.

@description('Prefix of the monitoring resources\' names.')
param namePrefix string

@description('Azure region of the workspace and Application Insights.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Days Log Analytics keeps logs and telemetry.')
@minValue(30)
@maxValue(730)
param retentionDays int = 30

@description('Email address that receives failed-session alerts; empty creates the alert rule without a notification (see it in the portal).')
param alertEmail string = ''

@description('Name of the session orchestrator whose runs the workbook and the alert follow (functions/names.py POLICY_SESSION).')
param sessionOrchestrator string = 'policy_session_orchestrator'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionDays
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-insights'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

// Durable Functions tracking events of the session orchestrator, first plays only (replays repeat them).
var sessionRuns = 'traces | where tostring(customDimensions.Category) == "Host.Triggers.DurableTask" | where tostring(customDimensions.prop__functionName) == "${sessionOrchestrator}" | where tostring(customDimensions.prop__isReplay) != "True" | extend instance = tostring(customDimensions.prop__instanceId), state = tostring(customDimensions.prop__state)'

var sessionResults = 'customMetrics | where name == "bulwark.sessions" | extend result = tostring(customDimensions.result), policy = tostring(customDimensions.policy)'

var workbook = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'title'
      content: {
        json: '## Bulwark backup sessions\nFinished sessions by result, every session run with its duration, the data workers read and stored, snapshots, and failed function executions. Session results and byte counts come from the bulwark.* metrics; runs come from the Durable Functions tracking of ${sessionOrchestrator}.'
      }
    }
    {
      type: 9
      name: 'parameters'
      content: {
        version: 'KqlParameterItem/1.0'
        parameters: [
          {
            name: 'TimeRange'
            type: 4
            isRequired: true
            value: {
              durationMs: 604800000
            }
            typeSettings: {
              selectableValues: [
                {
                  durationMs: 86400000
                }
                {
                  durationMs: 604800000
                }
                {
                  durationMs: 2592000000
                }
              ]
            }
          }
        ]
      }
    }
    {
      type: 3
      name: 'results'
      content: {
        version: 'KqlItem/1.0'
        title: 'Finished sessions by result'
        query: '${sessionResults} | summarize sessions = sum(valueSum) by result, bin(timestamp, 1d)'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'barchart'
        timeContextFromParameter: 'TimeRange'
      }
    }
    {
      type: 3
      name: 'failed-by-policy'
      content: {
        version: 'KqlItem/1.0'
        title: 'Sessions per policy'
        query: '${sessionResults} | summarize success = sumif(valueSum, result == "Success"), warning = sumif(valueSum, result == "Warning"), failed = sumif(valueSum, result == "Failed"), last = max(timestamp) by policy | order by failed desc, policy asc'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
        timeContextFromParameter: 'TimeRange'
      }
    }
    {
      type: 3
      name: 'runs'
      content: {
        version: 'KqlItem/1.0'
        title: 'Session runs (orchestrations)'
        query: '${sessionRuns} | summarize started = minif(timestamp, state == "Started"), ended = maxif(timestamp, state in ("Completed", "Failed", "Terminated")), outcome = take_anyif(state, state in ("Completed", "Failed", "Terminated")) by instance | extend duration = ended - started, outcome = iff(isempty(outcome), "Running", outcome) | order by started desc'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
        timeContextFromParameter: 'TimeRange'
      }
    }
    {
      type: 3
      name: 'bytes'
      content: {
        version: 'KqlItem/1.0'
        title: 'Data read from snapshots and stored in repositories'
        query: 'customMetrics | where name in ("bulwark.backup.bytes_read", "bulwark.backup.bytes_stored") | summarize GiB = sum(valueSum) / 1073741824.0 by name, bin(timestamp, 1h)'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
        timeContextFromParameter: 'TimeRange'
      }
    }
    {
      type: 3
      name: 'snapshots'
      content: {
        version: 'KqlItem/1.0'
        title: 'Snapshots created and deleted'
        query: 'customMetrics | where name in ("bulwark.snapshots.created", "bulwark.snapshots.deleted") | summarize snapshots = sum(valueSum) by name, bin(timestamp, 1d)'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'barchart'
        timeContextFromParameter: 'TimeRange'
      }
    }
    {
      type: 3
      name: 'failures'
      content: {
        version: 'KqlItem/1.0'
        title: 'Failed function executions'
        query: 'requests | where success == false | summarize failures = count(), last = max(timestamp) by operation_Name | order by failures desc'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
        timeContextFromParameter: 'TimeRange'
      }
    }
  ]
}

resource sessionsWorkbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, namePrefix, 'bulwark-sessions-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Bulwark sessions (${namePrefix})'
    category: 'workbook'
    sourceId: insights.id
    serializedData: string(workbook)
  }
}

resource notify 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: '${namePrefix}-alerts'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'bulwark'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// A session counts as failed when it finished with the result Failed, or when its orchestration
// itself failed (then it never reported a result).
var failedSessions = 'let reported = ${sessionResults} | where result == "Failed" | summarize failed = sum(valueSum); let crashed = ${sessionRuns} | where state == "Failed" | summarize failed = todouble(count()); union reported, crashed | summarize failed = sum(failed)'

resource failedSessionAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-failed-sessions'
  location: location
  tags: tags
  properties: {
    displayName: 'Bulwark: failed backup sessions (${namePrefix})'
    description: 'A backup session ended Failed, or its orchestration failed. Open the Bulwark sessions workbook, then GET /api/sessions/{id} for the per-resource reasons.'
    severity: 1
    enabled: true
    scopes: [
      insights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: failedSessions
          timeAggregation: 'Total'
          metricMeasureColumn: 'failed'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: empty(alertEmail) ? [] : [
        notify.id
      ]
    }
  }
}

@description('Resource id of the Log Analytics workspace.')
output workspaceId string = workspace.id

@description('Resource id of Application Insights.')
output insightsId string = insights.id

@description('Application Insights connection string (an ingestion key, not a credential that reads data).')
output connectionString string = insights.properties.ConnectionString

@description('Resource id of the sessions workbook.')
output workbookId string = sessionsWorkbook.id

@description('Resource id of the failed-session alert rule.')
output alertRuleId string = failedSessionAlert.id
