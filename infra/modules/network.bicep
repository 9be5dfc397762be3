// Network row "authorized IP ranges" (docs/deploy.md): a virtual network of Rollcall's own whose one
// subnet the Function App integrates into, with a NAT gateway and a static public IP, so that every
// call the app makes to an AKS API server leaves from that one address. Add it to the cluster's
// apiServerAccessProfile.authorizedIPRanges (output ROLLCALL_EGRESS_IP).
// - Flex Consumption integrates only with a subnet delegated to Microsoft.App/environments:
//   https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#enable-virtual-network-integration
// - A NAT gateway on the integration subnet fixes the outbound address:
//   https://learn.microsoft.com/azure/app-service/overview-nat-gateway-integration
// - Authorized IP ranges: https://learn.microsoft.com/azure/aks/api-server-authorized-ip-ranges
param location string
param tags object
param resourceToken string
param vnetAddressPrefix string
param appSubnetPrefix string

resource egressIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: 'pip-rollcall-${resourceToken}'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
  }
}

resource nat 'Microsoft.Network/natGateways@2024-05-01' = {
  name: 'ng-rollcall-${resourceToken}'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [
      {
        id: egressIp.id
      }
    ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: 'vnet-rollcall-${resourceToken}'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [vnetAddressPrefix]
    }
    subnets: [
      {
        name: 'snet-rollcall-app'
        properties: {
          addressPrefix: appSubnetPrefix
          natGateway: {
            id: nat.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
    ]
  }
}

output subnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, 'snet-rollcall-app')
output egressIp string = egressIp.properties.ipAddress
