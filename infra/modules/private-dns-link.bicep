// Network row "private cluster" (docs/deploy.md), deployed at a private DNS zone's resource group:
// links the zone to the virtual network the Function App integrates into, so the private FQDN in the
// cluster's kubeconfig (<name>.<guid>.privatelink.<region>.azmk8s.io) resolves to the API server's
// private endpoint from the app. Not needed when the app's subnet is in the cluster's own virtual
// network (AKS links the zone to that one) or with privateDNSZone 'none'.
// https://learn.microsoft.com/azure/aks/private-clusters#hub-and-spoke-with-custom-dns
param zoneName string
param virtualNetworkId string
param resourceToken string

resource zone 'Microsoft.Network/privateDnsZones@2024-06-01' existing = {
  name: zoneName
}

resource link 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: zone
  name: 'rollcall-${resourceToken}'
  location: 'global'
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: virtualNetworkId
    }
  }
}
