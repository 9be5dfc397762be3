// Deployed at an AKS cluster's resource group: the cluster's Event Grid system topic and, once the
// function app's code is deployed, the subscription that delivers AKS's node pool and version events
// to the aksEvents function (functions/aksEvents.ts). Polling ARM's provisioningState stays the
// fallback for a missed event. A cluster can have only one system topic: reuse an existing one by
// subscribing it to the function instead of deploying this module.
param clusterName string
@description('Resource id of the Rollcall function app.')
param functionAppId string
param resourceToken string
@description('Create the event subscription; Event Grid validates that the aksEvents function exists.')
param subscribe bool

// The events Rollcall acts on (https://learn.microsoft.com/azure/event-grid/event-schema-aks).
var eventTypes = [
  'Microsoft.ContainerService.NodePoolRollingStarted'
  'Microsoft.ContainerService.NodePoolRollingSucceeded'
  'Microsoft.ContainerService.NodePoolRollingFailed'
  'Microsoft.ContainerService.NewKubernetesVersionAvailable'
  'Microsoft.ContainerService.ClusterSupportEnding'
  'Microsoft.ContainerService.ClusterSupportEnded'
]

resource cluster 'Microsoft.ContainerService/managedClusters@2024-09-01' existing = {
  name: clusterName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'rollcall-${clusterName}-${take(resourceToken, 6)}'
  location: cluster.location
  properties: {
    source: cluster.id
    topicType: 'Microsoft.ContainerService.ManagedClusters'
  }
}

resource toFunction 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (subscribe) {
  parent: topic
  name: 'rollcall-aks-events'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/aksEvents'
        maxEventsPerBatch: 1
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: eventTypes
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}
