// Deployed at an AKS cluster's subscription: the list of Kubernetes versions per region is a
// subscription-level resource, so reading it needs an assignment at subscription scope. The role
// holds that one read action and nothing else.
targetScope = 'subscription'

@description('Principal (object) id of the app identity.')
param principalId string
param resourceToken string

resource versionsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'rollcall-kubernetes-versions-reader', resourceToken)
  properties: {
    roleName: 'Rollcall Kubernetes versions reader (${take(uniqueString(subscription().id, resourceToken), 6)})'
    description: 'Rollcall: list the Kubernetes versions AKS offers in a region.'
    type: 'CustomRole'
    assignableScopes: [subscription().id]
    permissions: [
      {
        actions: [
          'Microsoft.ContainerService/locations/kubernetesVersions/read'
        ]
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
