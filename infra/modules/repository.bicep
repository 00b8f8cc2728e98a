// The backup repository: a blob container holding Bulwark's encrypted packs, indexes and restore
// points (docs/format.md). Reached with Entra ID only: workers and the CLI sign in, no account keys.

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
param name string

@description('Azure region of the account: workers run here, next to the data they write.')
param location string

@description('Tags applied to the account.')
param tags object = {}

@description('Replication of the account that holds the backups.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GRS'

@description('Blob container of the repository.')
param containerName string = 'bulwark'

@description('Days a deleted or overwritten blob stays recoverable (blob soft delete; previous versions are kept as long).')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 14

@description('Days every blob version is immutable (write once, read many) after it is written; 0 turns the policy off. While it runs, prune cannot delete younger packs. The policy is created unlocked: lock it with az storage container immutability-policy lock once you are sure.')
@minValue(0)
@maxValue(146000)
param immutabilityDays int = 0

@description('Log Analytics workspace that receives the repository\'s blob logs.')
param workspaceId string

@description('Object id of the Bulwark identity (given the repository-data role on this account).')
param principalId string

@description('Role definition id of the custom repository-data role (roles.bicep).')
param repositoryDataRoleId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  #checkov:skip=CKV_AZURE_35:Workers run in Container Instances in the repository's region without a virtual network; access is Entra ID only (shared keys off), TLS 1.2, no anonymous access.
  #checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35.
  #checkov:skip=CKV_AZURE_206:Replication is the skuName parameter, geo-redundant (Standard_GRS) by default.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
      }
    }
    // Version-level immutability needs the account-level switch before a container can use it.
    immutableStorageWithVersioning: immutabilityDays > 0 ? {
      enabled: true
    } : null
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
    immutableStorageWithVersioning: immutabilityDays > 0 ? {
      enabled: true
    } : null
  }
}

resource immutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (immutabilityDays > 0) {
  parent: container
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: immutabilityDays
    allowProtectedAppendWrites: false
  }
}

// Old versions are what soft delete and versioning keep; without a limit they would be billed forever.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-previous-versions'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
            }
            actions: {
              version: {
                delete: {
                  daysAfterCreationGreaterThan: max(softDeleteDays, immutabilityDays)
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource blobLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'bulwark-blob-logs'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource repositoryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, repositoryDataRoleId)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: repositoryDataRoleId
  }
}

@description('Resource id of the repository account.')
output id string = account.id

@description('The repository location for policies and the CLI: https://ACCOUNT.blob.../CONTAINER.')
output url string = '${account.properties.primaryEndpoints.blob}${container.name}'
