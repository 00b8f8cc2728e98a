// Bulwark in one resource group: the function app (Flex Consumption, Python 3.11) and its storage,
// the backup repository, Key Vault, the worker registry, monitoring, one managed identity and the
// least-privilege custom roles it is given where Bulwark works. `azd up` deploys it (azure.yaml);
// docs/deploy.md also shows `az deployment group create`.
targetScope = 'resourceGroup'

@description('Name of the environment (azd: AZURE_ENV_NAME); part of every resource name and tag, so several deployments can share a subscription.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Azure region of the app, its storage, Key Vault, the registry and monitoring. Defaults to the resource group\'s region.')
param location string = resourceGroup().location

@description('Where the VMs and SQL databases to protect are: \'resourceGroups\' grants the backup roles on the groups listed in protectedResourceGroups only; \'subscription\' grants them on the whole subscription.')
@allowed([
  'resourceGroups'
  'subscription'
])
param protectionScope string = 'resourceGroups'

@description('Comma-separated names of the resource groups holding the VMs, disks, VHD storage accounts, SQL servers and SQL staging servers to protect (protectionScope = resourceGroups). Snapshots are made in the VMs\' groups.')
param protectedResourceGroups string = ''

@description('Also grant the restore roles (create disks and VMs, import and rename databases) wherever the backup roles are granted.')
param grantRestore bool = true

@description('Comma-separated names of resource groups that restores may create disks, VMs and databases in, besides the protected ones (which get the restore roles with grantRestore).')
param restoreResourceGroups string = ''

@description('Protect VMs with unmanaged disks: grants blob read, snapshot and snapshot-delete on the VHD storage accounts in the protected scope.')
param unmanagedDisks bool = true

@description('Azure region of the repository storage account. Workers run in the repository\'s region, next to the data they write.')
param repositoryLocation string = location

@description('Blob container of the repository.')
param repositoryContainerName string = 'bulwark'

@description('Replication of the repository storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param repositorySkuName string = 'Standard_GRS'

@description('Days a deleted or overwritten repository blob stays recoverable (soft delete and versioning).')
@minValue(1)
@maxValue(365)
param repositorySoftDeleteDays int = 14

@description('Days every repository blob version stays immutable after it is written (0 = no immutability policy). Prune cannot delete younger packs while it holds.')
@minValue(0)
@maxValue(146000)
param repositoryImmutabilityDays int = 0

@description('The repository passphrase to put in Key Vault now; empty leaves it for `az keyvault secret set` later. Never an output, never logged.')
@secure()
param repositoryPassphrase string = ''

@description('Name of the Key Vault secret holding the repository passphrase (what policies name in encryption.passphrase.key_vault_secret).')
param passphraseSecretName string = 'repository-passphrase'

@description('Replication of the app storage account (task hub, catalog, BACPAC staging).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param appStorageSkuName string = 'Standard_LRS'

@description('Container registry tier for the worker image.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param registrySkuName string = 'Basic'

@description('Tag of the worker image in the registry (azure.yaml\'s postprovision hook builds bulwark/worker:TAG from infra/Dockerfile).')
param workerImageTag string = 'latest'

@description('CPU cores of one worker container (a decimal number as text).')
param workerCpu string = '2'

@description('Memory of one worker container in GB (a decimal number as text).')
param workerMemoryGb string = '4'

@description('Seconds between a session\'s polls of its workers.')
@minValue(1)
param jobPollSeconds int = 30

@description('Seconds one worker may run before it is stopped and retried (72000 = the 20 h of a big disk).')
@minValue(60)
param jobDeadlineSeconds int = 72000

@description('Attempts per worker job.')
@minValue(1)
@maxValue(10)
param jobAttempts int = 3

@description('Client-side budget of ARM writes per hour; Azure allows about 1,200 per principal.')
@minValue(1)
param armWritesPerHour int = 1200

@description('Seconds between polls of a long-running ARM operation when Azure sends no Retry-After.')
@minValue(1)
param armPollingSeconds int = 30

@description('Memory of one Flex Consumption instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the function app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Days Log Analytics keeps logs and telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Email address for failed-session alerts; empty creates the alert rule without a notification.')
param alertEmail string = ''

@description('Extra tags for every resource (azd-env-name is always added).')
param tags object = {}

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, {
  'azd-env-name': environmentName
})
var protectedGroups = protectionScope == 'resourceGroups' && !empty(protectedResourceGroups) ? split(replace(protectedResourceGroups, ' ', ''), ',') : []
var restoreGroups = empty(restoreResourceGroups) ? [] : split(replace(restoreResourceGroups, ' ', ''), ',')

module identity 'modules/identity.bicep' = {
  name: 'bulwark-identity'
  params: {
    name: 'id-bulwark-${resourceToken}'
    location: location
    tags: allTags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'bulwark-roles-${resourceToken}'
  scope: subscription()
  params: {
    suffix: '${environmentName}-${resourceToken}'
    unmanagedDisks: unmanagedDisks
  }
}

var backupRoleIds = unmanagedDisks ? [
  roles.outputs.vmBackupId
  roles.outputs.vhdSnapshotsId
  roles.outputs.sqlBackupId
] : [
  roles.outputs.vmBackupId
  roles.outputs.sqlBackupId
]
var restoreRoleIds = [
  roles.outputs.vmRestoreId
  roles.outputs.sqlRestoreId
]
var protectedRoleIds = grantRestore ? concat(backupRoleIds, restoreRoleIds) : backupRoleIds

module monitoring 'modules/monitoring.bicep' = {
  name: 'bulwark-monitoring'
  params: {
    namePrefix: 'bulwark-${resourceToken}'
    location: location
    tags: allTags
    retentionDays: logRetentionDays
    alertEmail: alertEmail
  }
}

module appStorage 'modules/app-storage.bicep' = {
  name: 'bulwark-app-storage'
  params: {
    name: 'stbwapp${resourceToken}'
    location: location
    tags: allTags
    skuName: appStorageSkuName
    workspaceId: monitoring.outputs.workspaceId
    principalId: identity.outputs.principalId
    appDataRoleId: roles.outputs.appDataId
  }
}

module repository 'modules/repository.bicep' = {
  name: 'bulwark-repository'
  params: {
    name: 'stbwrepo${resourceToken}'
    location: repositoryLocation
    tags: allTags
    skuName: repositorySkuName
    containerName: repositoryContainerName
    softDeleteDays: repositorySoftDeleteDays
    immutabilityDays: repositoryImmutabilityDays
    workspaceId: monitoring.outputs.workspaceId
    principalId: identity.outputs.principalId
    repositoryDataRoleId: roles.outputs.repositoryDataId
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'bulwark-keyvault'
  params: {
    name: 'kv-bw-${resourceToken}'
    location: location
    tags: allTags
    appStorageAccountName: appStorage.outputs.name
    passphraseSecretName: passphraseSecretName
    repositoryPassphrase: repositoryPassphrase
    workspaceId: monitoring.outputs.workspaceId
    principalId: identity.outputs.principalId
    secretsReaderRoleId: roles.outputs.secretsReaderId
  }
}

module registry 'modules/registry.bicep' = {
  name: 'bulwark-registry'
  params: {
    name: 'crbulwark${resourceToken}'
    location: location
    tags: allTags
    skuName: registrySkuName
    principalId: identity.outputs.principalId
  }
}

// Workers are container groups in this resource group, running as the same identity.
module workerAccess 'modules/scope-access.bicep' = {
  name: 'bulwark-access-workers'
  params: {
    principalId: identity.outputs.principalId
    roleDefinitionIds: [
      roles.outputs.workersId
    ]
  }
}

module protectedAccess 'modules/scope-access.bicep' = [for (group, index) in protectedGroups: {
  name: 'bulwark-access-protected-${index}'
  scope: resourceGroup(group)
  params: {
    principalId: identity.outputs.principalId
    roleDefinitionIds: protectedRoleIds
  }
}]

// With grantRestore a protected group has the restore roles already; assigning them again would
// deploy the same role assignment from two modules.
module restoreAccess 'modules/scope-access.bicep' = [for (group, index) in restoreGroups: if (!grantRestore || !contains(protectedGroups, group)) {
  name: 'bulwark-access-restore-${index}'
  scope: resourceGroup(group)
  params: {
    principalId: identity.outputs.principalId
    roleDefinitionIds: restoreRoleIds
  }
}]

// The subscription itself: the protected roles when the whole subscription is protected, and the
// region catalog (VM sizes, a subscription-level resource) that restores read.
var subscriptionRoleIds = concat(protectionScope == 'subscription' ? protectedRoleIds : [], grantRestore ? [
  roles.outputs.regionCatalogId
] : [])

module subscriptionAccess 'modules/subscription-access.bicep' = if (protectionScope == 'subscription' || grantRestore) {
  name: 'bulwark-access-subscription-${resourceToken}'
  scope: subscription()
  params: {
    principalId: identity.outputs.principalId
    roleDefinitionIds: subscriptionRoleIds
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'bulwark-function-app'
  params: {
    name: 'func-bulwark-${resourceToken}'
    planName: 'plan-bulwark-${resourceToken}'
    location: location
    tags: allTags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: appStorage.outputs.blobEndpoint
    deploymentContainerName: appStorage.outputs.deploymentContainerName
    storageConnectionReference: vault.outputs.storageConnectionReference
    insightsConnectionString: monitoring.outputs.connectionString
    keyVaultName: vault.outputs.name
    workerImage: '${registry.outputs.loginServer}/bulwark/worker:${workerImageTag}'
    workerResourceGroup: resourceGroup().name
    workerCpu: workerCpu
    workerMemoryGb: workerMemoryGb
    jobPollSeconds: jobPollSeconds
    jobDeadlineSeconds: jobDeadlineSeconds
    jobAttempts: jobAttempts
    armWritesPerHour: armWritesPerHour
    armPollingSeconds: armPollingSeconds
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
}

@description('Name of the function app (azd deploys the code here).')
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name

@description('Base URL of the HTTP API (every route needs a function key).')
output BULWARK_API_URL string = 'https://${functionApp.outputs.hostName}/api'

@description('Name of the container registry (the postprovision hook builds the worker image there).')
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.name

@description('Login server of the container registry.')
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer

@description('Tag the worker image is built and pulled with.')
output BULWARK_WORKER_IMAGE_TAG string = workerImageTag

@description('The repository location for policies and `bulwark --repo`.')
output BULWARK_REPOSITORY_URL string = repository.outputs.url

@description('Name of the Key Vault (policies name secrets in it).')
output BULWARK_KEY_VAULT string = vault.outputs.name

@description('Name of the passphrase secret in that vault.')
output BULWARK_PASSPHRASE_SECRET string = passphraseSecretName

@description('Client id of the Bulwark identity.')
output BULWARK_IDENTITY_CLIENT_ID string = identity.outputs.clientId
