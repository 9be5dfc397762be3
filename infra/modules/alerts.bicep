// Log alert rules on the Application Insights data (queries in infra/alerts/*.kql, explained in
// docs/monitoring.md) and an action group that emails them.
param location string
param tags object
param resourceToken string
param appInsightsId string
param alertEmailAddress string
param clusterNames array
param lockTtlMinutes int
param drainTimeoutMinutes int
param noCheckinAlertMinutes int
param checkinFailureThreshold int

var hasEmail = !empty(alertEmailAddress)
var expectedClusters = join(map(clusterNames, n => '"${n}"'), ', ')

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (hasEmail) {
  name: 'ag-rollcall-${resourceToken}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'rollcall'
    enabled: true
    emailReceivers: [
      {
        name: 'rollcall-operators'
        emailAddress: alertEmailAddress
        useCommonAlertSchema: true
      }
    ]
  }
}

var actions = {
  actionGroups: hasEmail ? [resourceId('Microsoft.Insights/actionGroups', 'ag-rollcall-${resourceToken}')] : []
}

resource stuckNode 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'rollcall-stuck-node-${resourceToken}'
  location: location
  tags: tags
  dependsOn: [actionGroup]
  properties: {
    displayName: 'Rollcall: node stuck past the lock TTL'
    description: 'A node held the rollout lock longer than ${lockTtlMinutes} minutes or stopped progressing (RollcallStuckNode). See docs/monitoring.md.'
    severity: 1
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    scopes: [appInsightsId]
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: replace(loadTextContent('../alerts/stuck-node.kql'), '{{LOCK_TTL_MINUTES}}', string(lockTtlMinutes))
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'cluster'
              operator: 'Include'
              values: ['*']
            }
            {
              name: 'node'
              operator: 'Include'
              values: ['*']
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: actions
  }
}

resource drainTimeout 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'rollcall-drain-timeout-${resourceToken}'
  location: location
  tags: tags
  dependsOn: [actionGroup]
  properties: {
    displayName: 'Rollcall: drain timed out'
    description: 'A node went to drain-failed because its drain did not finish within ${drainTimeoutMinutes} minutes. See docs/monitoring.md.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    scopes: [appInsightsId]
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: replace(loadTextContent('../alerts/drain-timeout.kql'), '{{DRAIN_TIMEOUT_MINUTES}}', string(drainTimeoutMinutes))
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'cluster'
              operator: 'Include'
              values: ['*']
            }
            {
              name: 'node'
              operator: 'Include'
              values: ['*']
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: actions
  }
}

resource checkinFailures 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'rollcall-checkin-failures-${resourceToken}'
  location: location
  tags: tags
  dependsOn: [actionGroup]
  properties: {
    displayName: 'Rollcall: check-ins failing'
    description: 'The checkin function answered 5xx or the orchestrator counted errors (rollcall.errors): at least ${checkinFailureThreshold} in 15 minutes for one cluster. See docs/monitoring.md.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    scopes: [appInsightsId]
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: loadTextContent('../alerts/checkin-failures.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          dimensions: [
            {
              name: 'cluster'
              operator: 'Include'
              values: ['*']
            }
          ]
          operator: 'GreaterThanOrEqual'
          threshold: checkinFailureThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: actions
  }
}

resource noCheckins 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'rollcall-no-checkins-${resourceToken}'
  location: location
  tags: tags
  dependsOn: [actionGroup]
  properties: {
    displayName: 'Rollcall: no check-ins from a cluster'
    description: 'No node of a cluster checked in for ${noCheckinAlertMinutes} minutes: agents down, network or key problem. See docs/monitoring.md.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT10M'
    windowSize: 'P1D'
    scopes: [appInsightsId]
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: replace(replace(loadTextContent('../alerts/no-checkins.kql'), '{{SILENCE_MINUTES}}', string(noCheckinAlertMinutes)), '{{EXPECTED_CLUSTERS}}', expectedClusters)
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'cluster'
              operator: 'Include'
              values: ['*']
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: actions
  }
}

output actionGroupId string = hasEmail ? resourceId('Microsoft.Insights/actionGroups', 'ag-rollcall-${resourceToken}') : ''
