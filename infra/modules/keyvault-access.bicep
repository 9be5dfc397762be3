// Deployed at the resource group of an operator's Key Vault: lets the app identity read secrets, so
// app settings written as Key Vault references (@Microsoft.KeyVault(SecretUri=…)) resolve. The site's
// keyVaultReferenceIdentity names the same user-assigned identity (it has no system identity).
// The vault must use Azure RBAC (enableRbacAuthorization); with access policies grant Get on secrets instead.
// https://learn.microsoft.com/azure/app-service/app-service-key-vault-references#access-vaults-with-a-user-assigned-identity
param vaultName string
@description('Principal (object) id of the app identity.')
param principalId string

// Key Vault Secrets User: Microsoft.KeyVault/vaults/secrets/getSecret/action, readMetadata/action.
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
