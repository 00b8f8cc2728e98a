// Least-privilege custom roles: exactly the Azure operations Bulwark calls (shared/azure/*), one role
// per kind of scope they are assigned at. Role definitions live at the subscription, so this module
// is deployed there; main.bicep assigns them.
targetScope = 'subscription'

@description('Distinguishes these roles from another Bulwark deployment\'s in the same tenant (role names are unique per tenant).')
param suffix string

@description('Grant the data-plane rights that unmanaged disks need (blob snapshots of VHD page blobs in their storage accounts).')
param unmanagedDisks bool = true

// Long-running operations are polled at .../locations/{region}/operations/{id}-style URLs of each
// provider; reading those status documents is all the locations/*/read actions allow.

resource vmBackup 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'bulwark-vm-backup', suffix)
  properties: {
    roleName: 'Bulwark VM backup (${suffix})'
    description: 'Find VMs and their disks, take incremental snapshots, read them through a SAS, tag and delete the snapshots Bulwark made.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Compute/virtualMachines/read'
          'Microsoft.Compute/disks/read'
          'Microsoft.Compute/snapshots/read'
          'Microsoft.Compute/snapshots/write'
          'Microsoft.Compute/snapshots/delete'
          'Microsoft.Compute/snapshots/beginGetAccess/action'
          'Microsoft.Compute/snapshots/endGetAccess/action'
          'Microsoft.Compute/locations/*/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource vhdSnapshots 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (unmanagedDisks) {
  name: guid(subscription().id, 'bulwark-vhd-snapshots', suffix)
  properties: {
    roleName: 'Bulwark VHD snapshots (${suffix})'
    description: 'Unmanaged disks: read VHD page blobs and their page-range diffs, create and delete their blob snapshots.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource sqlBackup 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'bulwark-sql-backup', suffix)
  properties: {
    roleName: 'Bulwark SQL backup (${suffix})'
    description: 'Find SQL servers and databases, copy a database to a staging server, export BACPACs, delete staging copies.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Sql/servers/read'
          'Microsoft.Sql/servers/databases/read'
          'Microsoft.Sql/servers/databases/usages/read'
          'Microsoft.Sql/servers/databases/write'
          'Microsoft.Sql/servers/databases/delete'
          'Microsoft.Sql/servers/databases/export/action'
          'Microsoft.Sql/locations/*/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource vmRestore 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'bulwark-vm-restore', suffix)
  properties: {
    roleName: 'Bulwark VM restore (${suffix})'
    description: 'Create disks (from a snapshot, or empty for upload and written through a SAS) and VMs that attach them to existing network interfaces; delete what a failed restore left.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Compute/virtualMachines/read'
          'Microsoft.Compute/virtualMachines/write'
          'Microsoft.Compute/virtualMachines/delete'
          'Microsoft.Compute/disks/read'
          'Microsoft.Compute/disks/write'
          'Microsoft.Compute/disks/delete'
          'Microsoft.Compute/disks/beginGetAccess/action'
          'Microsoft.Compute/disks/endGetAccess/action'
          'Microsoft.Compute/snapshots/read'
          'Microsoft.Network/networkInterfaces/read'
          'Microsoft.Network/networkInterfaces/join/action'
          'Microsoft.Compute/locations/*/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource sqlRestore 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'bulwark-sql-restore', suffix)
  properties: {
    roleName: 'Bulwark SQL restore (${suffix})'
    description: 'Import a BACPAC into a new database, rename (move) databases to swap a restored one in, delete a half-imported one.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Sql/servers/read'
          'Microsoft.Sql/servers/databases/read'
          'Microsoft.Sql/servers/import/action'
          'Microsoft.Sql/servers/databases/move/action'
          'Microsoft.Sql/servers/databases/delete'
          'Microsoft.Sql/locations/*/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// The VM size catalog of a region is a subscription-level resource: a restore checks the requested
// size against it, so this role is assigned on the subscription (it reveals no resource of yours).
resource regionCatalog 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'bulwark-region-catalog', suffix)
  properties: {
    roleName: 'Bulwark region catalog (${suffix})'
    description: 'List the VM sizes a region offers (restores check the size they are asked for).'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Compute/locations/vmSizes/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource workers 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'bulwark-workers', suffix)
  properties: {
    roleName: 'Bulwark workers (${suffix})'
    description: 'Start, watch, read the logs of and delete worker container groups that run as the Bulwark identity.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.ContainerInstance/containerGroups/read'
          'Microsoft.ContainerInstance/containerGroups/write'
          'Microsoft.ContainerInstance/containerGroups/delete'
          'Microsoft.ContainerInstance/containerGroups/containers/logs/read'
          'Microsoft.ContainerInstance/locations/*/read'
          'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource repositoryData 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'bulwark-repository-data', suffix)
  properties: {
    roleName: 'Bulwark repository data (${suffix})'
    description: 'Read, write, lease and delete (prune) the repository\'s blobs. No container or account management.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/read'
        ]
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource appData 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'bulwark-app-data', suffix)
  properties: {
    roleName: 'Bulwark app storage data (${suffix})'
    description: 'The app\'s own storage: job status and catalog tables, BACPAC staging blobs, the deployment package.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/write'
          'Microsoft.Storage/storageAccounts/tableServices/tables/read'
          'Microsoft.Storage/storageAccounts/tableServices/tables/write'
        ]
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/read'
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/write'
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action'
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/update/action'
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/delete'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource secretsReader 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'bulwark-secrets-reader', suffix)
  properties: {
    roleName: 'Bulwark secrets reader (${suffix})'
    description: 'Read the secrets that policies and app settings reference (the repository passphrase, SQL logins, the app storage connection).'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.KeyVault/vaults/secrets/getSecret/action'
          'Microsoft.KeyVault/vaults/secrets/readMetadata/action'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

@description('Role definition id: VM backup (assigned where the protected VMs are).')
output vmBackupId string = vmBackup.id

@description('Role definition id: VHD snapshots (assigned where unmanaged disks\' storage accounts are); empty when not created.')
output vhdSnapshotsId string = unmanagedDisks ? vhdSnapshots.id : ''

@description('Role definition id: SQL backup (assigned where the protected databases and staging servers are).')
output sqlBackupId string = sqlBackup.id

@description('Role definition id: VM restore (assigned where VMs are restored).')
output vmRestoreId string = vmRestore.id

@description('Role definition id: SQL restore (assigned where databases are restored).')
output sqlRestoreId string = sqlRestore.id

@description('Role definition id: the regions\' VM size catalog (assigned on the subscription with the restore roles).')
output regionCatalogId string = regionCatalog.id

@description('Role definition id: worker container groups (assigned on the deployment\'s resource group).')
output workersId string = workers.id

@description('Role definition id: repository blobs (assigned on the repository storage account).')
output repositoryDataId string = repositoryData.id

@description('Role definition id: the app storage account\'s tables and blobs.')
output appDataId string = appData.id

@description('Role definition id: Key Vault secrets reader.')
output secretsReaderId string = secretsReader.id
