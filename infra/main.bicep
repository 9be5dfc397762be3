// Rollcall: serverless reboot and upgrade orchestration for AKS.
// Deploys the Function App (Flex Consumption, Node 22), its storage (Table + deployment container),
// Application Insights + Log Analytics, a user-assigned managed identity with least-privilege role
// assignments, the alert rules and the workbook. Works with `azd up` and `az deployment group create`.
// infra/main.json is the same template as plain ARM JSON, kept in sync by hand (see infra/README.md).
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Environment name (azd: AZURE_ENV_NAME). Resource names and tags derive from it.')
param environmentName string

@description('Region of every resource.')
param location string = resourceGroup().location

@description('ROLLCALL_CLUSTERS as shared/config/config.ts reads it: [{ name, aksResourceId | kubeconfig | kubeconfigFile, aksAuth?, upgrade? }]. Clusters with aksResourceId get role assignments for the app identity.')
param clusters array = []

@description('More AKS clusters as comma-separated resource ids (azd: ROLLCALL_AKS_CLUSTER_IDS). Each is added to ROLLCALL_CLUSTERS as { name: <lowercased cluster name>, aksResourceId }.')
param aksClusterResourceIds string = ''

@allowed([
  'plan'
  'apply'
])
@description('plan: the identity may read clusters and plan upgrades. apply: it may also start upgrades (managedClusters and agentPools write). Clusters with upgrade.apply need apply.')
param upgradeMode string = 'plan'

@description('Email address that receives the alerts; empty: alert rules without an action group.')
param alertEmailAddress string = ''

@minValue(1)
@description('ROLLCALL_LOCK_TTL_MINUTES: a lock older than this is stuck.')
param lockTtlMinutes int = 60

@minValue(1)
@description('ROLLCALL_DRAIN_TIMEOUT_MINUTES: must be shorter than lockTtlMinutes.')
param drainTimeoutMinutes int = 15

@minValue(10)
@description('Alert when a cluster has not checked in for this many minutes (agents check in every 5 minutes when idle).')
param noCheckinAlertMinutes int = 30

@minValue(1)
@description('Alert when check-in server errors plus rollcall.errors reach this many in 15 minutes for one cluster.')
param checkinFailureThreshold int = 5

@description('ROLLCALL_TABLE: the table Rollcall keeps its state in.')
param tableName string = 'rollcall'

@minValue(40)
@maxValue(1000)
@description('Flex Consumption: most instances the app scales out to.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption: memory per instance.')
param instanceMemoryMB int = 2048

@description('Tags added to every resource.')
param tags object = {}

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, { 'azd-env-name': environmentName })
var idClusters = map(filter(split(aksClusterResourceIds, ','), id => !empty(trim(id))), id => {
  name: replace(toLower(last(split(trim(id), '/'))), '_', '-')
  aksResourceId: trim(id)
})
var rollcallClusters = concat(clusters, idClusters)
var aksClusters = filter(rollcallClusters, c => contains(c, 'aksResourceId'))
var clusterNames = map(rollcallClusters, c => c.name)

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-rollcall-${resourceToken}'
  location: location
  tags: allTags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'rollcall-monitoring'
  params: {
    location: location
    tags: allTags
    resourceToken: resourceToken
    principalId: identity.properties.principalId
    identityId: identity.id
  }
}

module storage 'modules/storage.bicep' = {
  name: 'rollcall-storage'
  params: {
    location: location
    tags: allTags
    resourceToken: resourceToken
    tableName: tableName
    principalId: identity.properties.principalId
    identityId: identity.id
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'rollcall-functionapp'
  params: {
    location: location
    tags: allTags
    resourceToken: resourceToken
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    tableName: tableName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    rollcallClusters: rollcallClusters
    lockTtlMinutes: lockTtlMinutes
    drainTimeoutMinutes: drainTimeoutMinutes
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'rollcall-alerts'
  params: {
    location: location
    tags: allTags
    resourceToken: resourceToken
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmailAddress: alertEmailAddress
    clusterNames: clusterNames
    lockTtlMinutes: lockTtlMinutes
    drainTimeoutMinutes: drainTimeoutMinutes
    noCheckinAlertMinutes: noCheckinAlertMinutes
    checkinFailureThreshold: checkinFailureThreshold
  }
}

// On each AKS cluster: Cluster User role (listClusterUserCredentials) and the upgrade role, scoped to the cluster.
module aksAccess 'modules/aks-access.bicep' = [
  for (cluster, i) in aksClusters: {
    name: 'rollcall-aks-access-${i}-${resourceToken}'
    scope: resourceGroup(split(cluster.aksResourceId, '/')[2], split(cluster.aksResourceId, '/')[4])
    params: {
      clusterName: split(cluster.aksResourceId, '/')[8]
      principalId: identity.properties.principalId
      upgradeMode: upgradeMode
      resourceToken: resourceToken
    }
  }
]

// Kubernetes versions are a subscription-level read (locations/kubernetesVersions): one small role per subscription.
@batchSize(1)
module aksVersions 'modules/aks-versions-reader.bicep' = [
  for (cluster, i) in aksClusters: {
    name: 'rollcall-aks-versions-${i}-${resourceToken}'
    scope: subscription(split(cluster.aksResourceId, '/')[2])
    params: {
      principalId: identity.properties.principalId
      resourceToken: resourceToken
    }
  }
]

output AZURE_LOCATION string = location
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output ROLLCALL_FUNCTION_URL string = 'https://${functionApp.outputs.defaultHostName}'
output ROLLCALL_IDENTITY_CLIENT_ID string = identity.properties.clientId
output ROLLCALL_IDENTITY_PRINCIPAL_ID string = identity.properties.principalId
output ROLLCALL_STORAGE_ACCOUNT string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output ROLLCALL_WORKBOOK_ID string = monitoring.outputs.workbookId
