// Key Vault for the secrets Bulwark resolves by reference: the repository passphrase (and SQL logins)
// that policies name, and the app storage connection string that the function app's
// AzureWebJobsStorage setting references. RBAC authorization only; no access policies.

@description('Key Vault name (3-24 letters, digits and dashes, globally unique).')
param name string

@description('Azure region of the vault.')
param location string

@description('Tags applied to the vault.')
param tags object = {}

@description('Days a deleted vault or secret stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteDays int = 90

@description('Name of the app storage account whose connection string the vault keeps for AzureWebJobsStorage.')
param appStorageAccountName string

@description('Name of the secret that holds the repository passphrase; policies name it as encryption.passphrase.key_vault_secret.')
param passphraseSecretName string = 'repository-passphrase'

@description('The repository passphrase to store now; leave empty to add it later (az keyvault secret set). Never logged, never an output.')
@secure()
param repositoryPassphrase string = ''

@description('Log Analytics workspace that receives the vault\'s audit log.')
param workspaceId string

@description('Object id of the Bulwark identity (given the secrets-reader role on this vault).')
param principalId string

@description('Role definition id of the custom secrets-reader role (roles.bicep).')
param secretsReaderRoleId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  #checkov:skip=CKV_AZURE_109:The Flex Consumption app resolves its Key Vault references, and workers in Container Instances read the passphrase, without a virtual network; access is RBAC-only and audited.
  #checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource appStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: appStorageAccountName
}

// Written at every deployment, so rotating the account key is a key rotation plus a redeployment.
resource storageConnection 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  #checkov:skip=CKV_AZURE_41:An expiry would stop the Functions host (AzureWebJobsStorage resolves through this secret); it is rewritten by every deployment instead.
  parent: vault
  name: 'app-storage-connection'
  properties: {
    contentType: 'Azure Storage connection string'
    value: 'DefaultEndpointsProtocol=https;AccountName=${appStorage.name};AccountKey=${appStorage.listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}'
  }
}

resource passphrase 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(repositoryPassphrase)) {
  #checkov:skip=CKV_AZURE_114:False positive: checkov reads a conditional resource's body one level too high and misses the contentType set below.
  #checkov:skip=CKV_AZURE_41:The passphrase must stay readable as long as the backups it protects are kept (years); an expiry would make restores through the app fail.
  parent: vault
  name: passphraseSecretName
  properties: {
    contentType: 'Bulwark repository passphrase'
    value: repositoryPassphrase
  }
}

resource audit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'bulwark-vault-audit'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, secretsReaderRoleId)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: secretsReaderRoleId
  }
}

@description('Name of the vault (BULWARK_KEY_VAULT).')
output name string = vault.name

@description('URI of the vault.')
output uri string = vault.properties.vaultUri

@description('Key Vault reference for the AzureWebJobsStorage app setting (no secret value in it).')
output storageConnectionReference string = '@Microsoft.KeyVault(SecretUri=${storageConnection.properties.secretUri})'
