// The Function App on Flex Consumption (Node 22) with the app settings Rollcall reads (shared/config/config.ts).
param location string
param tags object
param resourceToken string
param identityId string
param identityClientId string
param storageAccountName string
param blobEndpoint string
param tableEndpoint string
param deploymentContainerName string
param tableName string
param appInsightsConnectionString string
param rollcallClusters array
param lockTtlMinutes int
param drainTimeoutMinutes int
param maximumInstanceCount int
param instanceMemoryMB int
param httpPerInstanceConcurrency int
@description('Rollcall settings the operator chose (name -> value, \'\' = unset); see main.bicep.')
param operatorSettings object
@description('ROLLCALL_SECRET_* settings (name -> value), already filtered to that prefix.')
param secretSettings object
@description('Subnet the app integrates into (delegated to Microsoft.App/environments); empty: no virtual network integration.')
param subnetId string
@description('Client id of Rollcall\'s Entra app registration; empty: App Service authentication off.')
param entraClientId string
param entraTenantId string
param entraAllowedAudiences array

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-rollcall-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-rollcall-${resourceToken}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Outbound through that subnet: its NAT gateway (authorized IP ranges) or its routes and private DNS (private clusters).
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    // Key Vault references in app settings resolve with the user-assigned identity (the app has no system identity).
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // Held check-ins are open executions that mostly wait: the platform's default (16 on 2,048 MB)
        // scaled out an instance per 16 queued agents (test/unit/infra.test.ts).
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

// Operators through Microsoft Entra ID (docs/security.md). App Service validates a caller's token and
// hands the app its claims in X-MS-CLIENT-PRINCIPAL, a header it strips from what clients send; that
// is why Rollcall trusts the header only under it. Requests without a token still reach the app
// (AllowAnonymous), which decides per route: check-ins prove the agent with its Kubernetes token,
// health takes the function key alone, and every operator route answers 401 without an Entra caller.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(entraClientId)) {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: entraClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${entraTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: entraAllowedAudiences
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

// The whole collection is replaced on every deployment: every setting Rollcall reads is written here
// (test/unit/infraSettings.test.ts), so nothing set outside the template survives a redeploy.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(secretSettings, operatorSettings, {
    // The host's own storage, identity-based.
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // Host and worker telemetry, sent with the identity (the component has local auth disabled).
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // Rollcall (shared/config/config.ts).
    AZURE_CLIENT_ID: identityClientId
    ROLLCALL_STORAGE_TABLE_ENDPOINT: tableEndpoint
    ROLLCALL_TABLE: tableName
    ROLLCALL_CLUSTERS: string(rollcallClusters)
    ROLLCALL_LOCK_TTL_MINUTES: string(lockTtlMinutes)
    ROLLCALL_DRAIN_TIMEOUT_MINUTES: string(drainTimeoutMinutes)
  })
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
