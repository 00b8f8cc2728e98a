// The container registry for the worker image (infra/Dockerfile). The Bulwark identity pulls from it;
// no admin user, no anonymous pull.

@description('Registry name (5-50 letters and digits, globally unique).')
param name string

@description('Azure region of the registry.')
param location string

@description('Tags applied to the registry.')
param tags object = {}

@description('Registry tier. Basic holds one small image cheaply; Premium adds geo-replication, private links and content trust.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param skuName string = 'Basic'

@description('Object id of the Bulwark identity (given AcrPull: workers pull their image as this identity).')
param principalId string

// AcrPull (built-in): exactly registries/pull/read, so no custom role is needed.
var acrPullRoleId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '7f951dda-4ed3-4680-a7ca-43fe172d538d')

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  #checkov:skip=CKV_AZURE_139:Container Instances workers pull over the public endpoint (no virtual network); pulls need Entra ID (AcrPull) and there is no admin user or anonymous pull.
  #checkov:skip=CKV_AZURE_163:Image scanning is Defender for Containers, a subscription plan the customer chooses; the image is python:3.11-slim plus pinned requirements.
  #checkov:skip=CKV_AZURE_166:Quarantine needs a scanner wired to release images; images are built from this repository by the deployment.
  #checkov:skip=CKV_AZURE_233:Zone redundancy needs the Premium tier; a lost registry is rebuilt by rerunning the image build.
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
    zoneRedundancy: 'Disabled'
  }
}

resource pull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, acrPullRoleId)
  scope: registry
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: acrPullRoleId
  }
}

@description('Name of the registry.')
output name string = registry.name

@description('Login server of the registry (e.g. NAME.azurecr.io).')
output loginServer string = registry.properties.loginServer
