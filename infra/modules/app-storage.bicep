// The function app's own storage account: the Durable task hub (queues, tables, leases), Bulwark's
// tables (policies, catalog, job status), the BACPAC staging container and the deployment package.

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
param name string

@description('Azure region of the account.')
param location string

@description('Tags applied to the account.')
param tags object = {}

@description('Replication of the account (the task hub and catalog; the backups themselves live in the repository account).')
param skuName string = 'Standard_LRS'

@description('Blob container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string = 'app-package'

@description('Blob container for BACPAC exports waiting for a worker (shared/azure/model.py STAGING_CONTAINER).')
param stagingContainerName string = 'bulwark-bacpac-staging'

@description('Days after which a BACPAC left in the staging container (by an interrupted session) is deleted.')
@minValue(1)
param stagingRetentionDays int = 3

@description('Days deleted blobs and containers stay recoverable (soft delete).')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 7

@description('Log Analytics workspace that receives the account\'s storage logs.')
param workspaceId string

@description('Object id of the Bulwark identity (given the app-data role on this account).')
param principalId string

@description('Role definition id of the custom app-data role (roles.bicep).')
param appDataRoleId string

// The Functions host and the app reach the task hub with the connection string (Settings.from_env
// requires one, and BACPAC export SAS tokens are signed with its key), so shared keys stay on; the
// string itself is kept in Key Vault and referenced, never stored in an app setting.
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  #checkov:skip=CKV_AZURE_35:Workers run in Container Instances without a virtual network and the SQL import/export service writes BACPACs here from Azure's own addresses; a deny-by-default firewall would cut both off.
  #checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: reached by the Flex Consumption host, the workers and the SQL export service over public endpoints (TLS 1.2, no anonymous access).
  #checkov:skip=CKV_AZURE_206:Replication is the skuName parameter; this account holds the task hub and catalog, not the backups (those are in the repository account, GRS by default).
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
    allowSharedKeyAccess: true
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
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
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

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource stagingContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: stagingContainerName
  properties: {
    publicAccess: 'None'
  }
}

// A session deletes its staging BACPAC itself; this only catches what a killed session left behind.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-staging-bacpacs'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${stagingContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: stagingRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

// Storage logs of the task hub's queues and of the blobs and tables (CKV_AZURE_33), for diagnosing stuck sessions.
resource queueLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'bulwark-queue-logs'
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
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

resource appDataAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, appDataRoleId)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: appDataRoleId
  }
}

@description('Resource id of the account.')
output id string = account.id

@description('Name of the account.')
output name string = account.name

@description('Blob endpoint of the account (ends with a slash).')
output blobEndpoint string = account.properties.primaryEndpoints.blob

@description('Name of the deployment package container.')
output deploymentContainerName string = deploymentContainer.name
