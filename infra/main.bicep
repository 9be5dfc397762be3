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

@minValue(1)
@maxValue(1000)
@description('Flex Consumption: concurrent HTTP executions per instance. A queued agent\'s held check-in is one (docs/api.md "Held check-ins"); the platform\'s default is 16 on 2,048 MB.')
param httpPerInstanceConcurrency int = 100

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption: memory per instance.')
param instanceMemoryMB int = 2048

@description('Tags added to every resource.')
param tags object = {}

// ---- How the app reaches the AKS API servers: one row of the decision table in docs/deploy.md,
// ---- each with a parameter set in infra/parameters/.

@allowed([
  'public'
  'authorizedIps'
  'private'
])
@description('public: API servers reachable from the internet, no virtual network. authorizedIps: the app leaves through a NAT gateway with one static IP (output ROLLCALL_EGRESS_IP) to add to apiServerAccessProfile.authorizedIPRanges. private: the app integrates into appSubnetId, a subnet that reaches the private API server.')
param networkMode string = 'public'

@description('authorizedIps: address space of the virtual network the template creates for the app.')
param vnetAddressPrefix string = '10.240.0.0/24'

@description('authorizedIps: the app\'s integration subnet inside vnetAddressPrefix (delegated to Microsoft.App/environments).')
param appSubnetPrefix string = '10.240.0.0/26'

@description('private: resource id of an existing subnet, delegated to Microsoft.App/environments, in the cluster\'s virtual network or one peered with it.')
param appSubnetId string = ''

@description('private: comma-separated resource ids of the clusters\' private DNS zones (privatelink.<region>.azmk8s.io or your own) to link to appSubnetId\'s virtual network; empty when that network is the cluster\'s own or with privateDNSZone none.')
param privateDnsZoneIds string = ''

@description('ROLLCALL_SECRET_<NAME> app settings that policies may name (bearerTokenSetting, webhookUrlSetting), as { name: value }; values may be Key Vault references (@Microsoft.KeyVault(SecretUri=…)). Other names are ignored.')
param secretSettings object = {}

@description('Resource id of a Key Vault (Azure RBAC mode) whose secrets app settings may reference as @Microsoft.KeyVault(...); the identity gets Key Vault Secrets User on it. Empty: none.')
param keyVaultResourceId string = ''

// ---- Rollcall app settings (shared/config/config.ts). The template writes every setting on each
// ---- deployment, so set them here (azd: `azd env set <SETTING> <value>`, infra/main.parameters.json),
// ---- not in the portal. '' = unset: Rollcall's default applies (README, App settings).

@description('ROLLCALL_CONCURRENCY: nodes rebooting at once (lock slots), 1-1000.')
param concurrency string = ''

@description('ROLLCALL_DRAIN_GRACE_PERIOD_SECONDS: grace period passed to evictions; unset: each pod\'s own.')
param drainGracePeriodSeconds string = ''

@description('ROLLCALL_DRAIN_DELETE_EMPTYDIR_DATA: true to evict pods that use emptyDir (their data is lost).')
param drainDeleteEmptydirData string = ''

@description('ROLLCALL_DRAIN_FORCE_UNMANAGED: true to evict pods no controller recreates.')
param drainForceUnmanaged string = ''

@description('ROLLCALL_DRAIN_SKIP_WAIT_FOR_DELETE_SECONDS: pods terminating longer than this count as gone; 0 waits.')
param drainSkipWaitForDeleteSeconds string = ''

@description('ROLLCALL_DRAIN_FAILURE_BACKOFF_MINUTES: wait before retrying a failed drain.')
param drainFailureBackoffMinutes string = ''

@description('ROLLCALL_CHECKIN_IDLE_SECONDS: check-in interval told to idle agents.')
param checkinIdleSeconds string = ''

@description('ROLLCALL_CHECKIN_BUSY_SECONDS: check-in interval while a node is in its turn.')
param checkinBusySeconds string = ''

@description('ROLLCALL_STEP_BUDGET_MS: longest one invocation spends advancing a node.')
param stepBudgetMs string = ''

@description('ROLLCALL_STEP_WAIT_MS: longest a check-in waits within its invocation for evicted pods, a budget or Ready.')
param stepWaitMs string = ''

@description('ROLLCALL_CHECKIN_HOLD_SECONDS: longest a queued node\'s check-in is held open for its turn (0: never).')
param checkinHoldSeconds string = ''

@description('ROLLCALL_UPGRADE_SCHEDULE: six-field NCRONTAB (UTC) of the upgrade planner timer.')
param upgradeSchedule string = ''

@description('ROLLCALL_UPGRADE_APPLY_SCHEDULE: six-field NCRONTAB of the upgrade apply timer.')
param upgradeApplySchedule string = ''

@description('on: subscribe each AKS cluster\'s Event Grid system topic to the aksEvents function (the function must be deployed first: azd deploy, then azd provision again); off: the topics only, Rollcall polls ARM.')
@allowed([
  'off'
  'on'
])
param aksEventSubscriptions string = 'off'

@description('ROLLCALL_UPGRADE_REPLAN_SECONDS: least seconds between two re-plans of one cluster through POST upgrade-plan; 0: no limit.')
param upgradeReplanSeconds string = ''

@description('ROLLCALL_AZURE_CLOUD: AzureCloud, AzureChinaCloud or AzureUSGovernment (ARM endpoint, token scope and Entra authority); default: the cloud this template deploys to.')
param azureCloud string = environment().name

@description('ROLLCALL_ARM_ENDPOINT: another host for Azure Resource Manager (a local simulator); empty: the cloud\'s.')
param armEndpoint string = ''

@description('ROLLCALL_AGENT_AUDIENCE: the audience the agents\' projected service-account tokens carry.')
param agentAudience string = ''

@description('ROLLCALL_PROMETHEUS_HOSTS: hosts the Prometheus blocker may call (https), names or *.suffix, comma-separated; unset: *.prometheus.monitor.azure.com.')
param prometheusHosts string = ''

@description('ROLLCALL_WEBHOOK_HOSTS: hosts notification webhooks may be posted to (https), names or *.suffix, comma-separated; unset: none.')
param webhookHosts string = ''

@description('ROLLCALL_OPERATOR_AUTH: entra (App Service authentication in front, app roles enforced) or function-key; unset: entra exactly when App Service authentication is on.')
param operatorAuth string = ''

// ---- Operators through Microsoft Entra ID (docs/security.md): App Service authentication in front
// ---- of the app, for an app registration made outside the template (`az ad app create`).

@description('Client id of Rollcall\'s Entra app registration (the API operators get tokens for, with app roles Rollcall.Read and Rollcall.Operate); empty: App Service authentication off, operators use function keys.')
param entraClientId string = ''

@description('Tenant id of that app registration; empty: the deployment\'s tenant.')
param entraTenantId string = ''

@description('Audiences App Service accepts in operators\' tokens, comma-separated; empty: api://<entraClientId> and <entraClientId>.')
param entraAllowedAudiences string = ''

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, { 'azd-env-name': environmentName })
var idClusters = map(filter(split(aksClusterResourceIds, ','), id => !empty(trim(id))), id => {
  name: replace(toLower(last(split(trim(id), '/'))), '_', '-')
  aksResourceId: trim(id)
})
var rollcallClusters = concat(clusters, idClusters)
var aksClusters = filter(rollcallClusters, c => contains(c, 'aksResourceId'))
var clusterNames = map(rollcallClusters, c => c.name)
var entraTenant = empty(entraTenantId) ? tenant().tenantId : entraTenantId
var entraAudiences = empty(trim(entraAllowedAudiences)) ? ['api://${entraClientId}', entraClientId] : filter(map(split(entraAllowedAudiences, ','), a => trim(a)), a => !empty(a))
var operatorSettings = {
  ROLLCALL_CONCURRENCY: concurrency
  ROLLCALL_DRAIN_GRACE_PERIOD_SECONDS: drainGracePeriodSeconds
  ROLLCALL_DRAIN_DELETE_EMPTYDIR_DATA: drainDeleteEmptydirData
  ROLLCALL_DRAIN_FORCE_UNMANAGED: drainForceUnmanaged
  ROLLCALL_DRAIN_SKIP_WAIT_FOR_DELETE_SECONDS: drainSkipWaitForDeleteSeconds
  ROLLCALL_DRAIN_FAILURE_BACKOFF_MINUTES: drainFailureBackoffMinutes
  ROLLCALL_CHECKIN_IDLE_SECONDS: checkinIdleSeconds
  ROLLCALL_CHECKIN_BUSY_SECONDS: checkinBusySeconds
  ROLLCALL_STEP_BUDGET_MS: stepBudgetMs
  ROLLCALL_STEP_WAIT_MS: stepWaitMs
  ROLLCALL_CHECKIN_HOLD_SECONDS: checkinHoldSeconds
  ROLLCALL_UPGRADE_SCHEDULE: upgradeSchedule
  ROLLCALL_UPGRADE_APPLY_SCHEDULE: upgradeApplySchedule
  ROLLCALL_UPGRADE_REPLAN_SECONDS: upgradeReplanSeconds
  ROLLCALL_AZURE_CLOUD: azureCloud
  ROLLCALL_ARM_ENDPOINT: armEndpoint
  ROLLCALL_AGENT_AUDIENCE: agentAudience
  ROLLCALL_PROMETHEUS_HOSTS: prometheusHosts
  ROLLCALL_WEBHOOK_HOSTS: webhookHosts
  ROLLCALL_OPERATOR_AUTH: operatorAuth
}
var secrets = toObject(filter(items(secretSettings), s => startsWith(s.key, 'ROLLCALL_SECRET_')), s => s.key, s => s.value)
var ownNetwork = networkMode == 'authorizedIps'
// …/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet> → the virtual network's id.
var appVnetId = networkMode == 'private' ? join(take(split(appSubnetId, '/'), 9), '/') : ''
var dnsZoneIds = networkMode == 'private' ? filter(map(split(privateDnsZoneIds, ','), id => trim(id)), id => !empty(id)) : []

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

module network 'modules/network.bicep' = if (ownNetwork) {
  name: 'rollcall-network'
  params: {
    location: location
    tags: allTags
    resourceToken: resourceToken
    vnetAddressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
  }
}

// private: the clusters' private DNS zones, linked to the virtual network of the app's subnet.
module privateDnsLinks 'modules/private-dns-link.bicep' = [
  for (zoneId, i) in dnsZoneIds: {
    name: 'rollcall-dns-link-${i}-${resourceToken}'
    scope: resourceGroup(split(zoneId, '/')[2], split(zoneId, '/')[4])
    params: {
      zoneName: split(zoneId, '/')[8]
      virtualNetworkId: appVnetId
      resourceToken: resourceToken
    }
  }
]

module keyVaultAccess 'modules/keyvault-access.bicep' = if (!empty(keyVaultResourceId)) {
  name: 'rollcall-keyvault-access-${resourceToken}'
  scope: resourceGroup(split(keyVaultResourceId, '/')[2], split(keyVaultResourceId, '/')[4])
  params: {
    vaultName: last(split(keyVaultResourceId, '/'))
    principalId: identity.properties.principalId
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
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    operatorSettings: operatorSettings
    secretSettings: secrets
    entraClientId: entraClientId
    entraTenantId: entraTenant
    entraAllowedAudiences: entraAudiences
    subnetId: ownNetwork ? network!.outputs.subnetId : (networkMode == 'private' ? appSubnetId : '')
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

// On each AKS cluster: its Event Grid system topic, subscribed to the aksEvents function.
module aksEvents 'modules/aks-events.bicep' = [
  for (cluster, i) in aksClusters: {
    name: 'rollcall-aks-events-${i}-${resourceToken}'
    scope: resourceGroup(split(cluster.aksResourceId, '/')[2], split(cluster.aksResourceId, '/')[4])
    dependsOn: [functionApp]
    params: {
      clusterName: split(cluster.aksResourceId, '/')[8]
      functionAppId: resourceId('Microsoft.Web/sites', 'func-rollcall-${resourceToken}')
      resourceToken: resourceToken
      subscribe: aksEventSubscriptions == 'on'
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
@description('authorizedIps: the app\'s static outbound IP; add it (as <ip>/32) to each cluster\'s apiServerAccessProfile.authorizedIPRanges. Empty in the other network modes.')
output ROLLCALL_EGRESS_IP string = ownNetwork ? network!.outputs.egressIp : ''
