// Deployed at an AKS cluster's resource group: what the Rollcall identity may do on that one cluster
// through ARM. Inside the cluster (nodes, pods, evictions, TokenReviews) it is authorized by the
// Kubernetes RBAC in infra/kubernetes/rollcall-orchestrator-rbac.yaml.
param clusterName string
@description('Principal (object) id of the app identity.')
param principalId string
@allowed([
  'plan'
  'apply'
])
param upgradeMode string
param resourceToken string

// Azure Kubernetes Service Cluster User Role: Microsoft.ContainerService/managedClusters/listClusterUserCredential/action.
var clusterUserRole = '4abbcc35-e782-43d8-92c5-2d3f1bd2253f'

var readActions = [
  'Microsoft.ContainerService/managedClusters/read'
  'Microsoft.ContainerService/managedClusters/agentPools/read'
  'Microsoft.ContainerService/managedClusters/upgradeProfiles/read'
  'Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles/read'
  'Microsoft.ContainerService/managedClusters/availableAgentPoolVersions/read'
  'Microsoft.ContainerService/managedClusters/maintenanceConfigurations/read'
]
var applyActions = [
  'Microsoft.ContainerService/managedClusters/write'
  'Microsoft.ContainerService/managedClusters/agentPools/write'
  'Microsoft.ContainerService/managedClusters/agentPools/upgradeNodeImageVersion/action'
]

resource cluster 'Microsoft.ContainerService/managedClusters@2024-09-01' existing = {
  name: clusterName
}

resource upgradeRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(cluster.id, 'rollcall-upgrade-operator', resourceToken)
  properties: {
    roleName: 'Rollcall upgrade operator (${clusterName}, ${take(uniqueString(cluster.id, resourceToken), 6)})'
    description: 'Rollcall: read the cluster, its agent pools, upgrade profiles, available versions and maintenance configurations; in apply mode also start control plane, node pool and node image upgrades.'
    type: 'CustomRole'
    assignableScopes: [resourceGroup().id]
    permissions: [
      {
        actions: upgradeMode == 'apply' ? concat(readActions, applyActions) : readActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

resource clusterUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(cluster.id, principalId, clusterUserRole)
  scope: cluster
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', clusterUserRole)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource upgradeOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(cluster.id, principalId, 'rollcall-upgrade-operator')
  scope: cluster
  dependsOn: [upgradeRole]
  properties: {
    // Role definitions live at subscription level whatever scope deploys them.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', upgradeRole.name)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
