// Deployed at an AKS cluster's subscription: the list of Kubernetes versions per region is a
// subscription-level resource, so reading it needs an assignment at subscription scope. The role
// holds that read action and the reads of AKS's asynchronous operations, whose status URLs
// (Azure-AsyncOperation, Location) are subscription-level paths under locations/.
targetScope = 'subscription'

@description('Principal (object) id of the app identity.')
param principalId string
param resourceToken string

var actions = [
  'Microsoft.ContainerService/locations/kubernetesVersions/read'
  'Microsoft.ContainerService/locations/operations/read'
  'Microsoft.ContainerService/locations/operationresults/read'
]

resource versionsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'rollcall-kubernetes-versions-reader', resourceToken)
  properties: {
    roleName: 'Rollcall Kubernetes versions reader (${take(uniqueString(subscription().id, resourceToken), 6)})'
    description: 'Rollcall: list the Kubernetes versions AKS offers in a region and follow AKS operations.'
    type: 'CustomRole'
    assignableScopes: [subscription().id]
    permissions: [
      {
        actions: actions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

resource versionsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, 'rollcall-kubernetes-versions-reader')
  dependsOn: [versionsRole]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', versionsRole.name)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
