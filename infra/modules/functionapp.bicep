// The function app on the Flex Consumption plan (Linux, Python 3.11) with every setting the code reads
// (shared/config.py, shared/azure/settings.py, shared/telemetry). tests/infra/test_app_settings.py
// checks this list against the names the code reads.

@description('Function app name (globally unique: it becomes NAME.azurewebsites.net).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region of the plan and the app.')
param location string

@description('Tags applied to the plan and the app (the app also gets azd-service-name).')
param tags object = {}

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (AZURE_CLIENT_ID).')
param identityClientId string

@description('Blob endpoint of the app storage account (ends with a slash).')
param storageBlobEndpoint string

@description('Container of the app storage account the plan deploys the package from.')
param deploymentContainerName string

@description('Key Vault reference to the app storage connection string (AzureWebJobsStorage).')
param storageConnectionReference string

@description('Application Insights connection string.')
param insightsConnectionString string

@description('Name of the Key Vault that policies\' secret references resolve in (BULWARK_KEY_VAULT).')
param keyVaultName string

@description('Worker image reference, e.g. REGISTRY.azurecr.io/bulwark/worker:TAG (BULWARK_WORKER_IMAGE).')
param workerImage string

@description('Resource group where worker container groups are created (BULWARK_WORKER_RESOURCE_GROUP).')
param workerResourceGroup string

@description('CPU cores of one worker container (BULWARK_WORKER_CPU; a decimal number as text).')
param workerCpu string = '2'

@description('Memory of one worker container in GB (BULWARK_WORKER_MEMORY_GB; a decimal number as text).')
param workerMemoryGb string = '4'

@description('Seconds between a session\'s polls of its workers (BULWARK_JOB_POLL_SECONDS).')
@minValue(1)
param jobPollSeconds int = 30

@description('Seconds one worker may run before it is stopped and retried (BULWARK_JOB_DEADLINE_SECONDS; 72000 = the 20 h of a big disk).')
@minValue(60)
param jobDeadlineSeconds int = 72000

@description('Attempts per worker job (BULWARK_JOB_ATTEMPTS).')
@minValue(1)
@maxValue(10)
param jobAttempts int = 3

@description('Client-side budget of ARM writes per hour (BULWARK_ARM_WRITES_PER_HOUR); Azure allows about 1,200 per principal.')
@minValue(1)
param armWritesPerHour int = 1200

@description('Seconds between polls of a long-running ARM operation when Azure sends no Retry-After (BULWARK_ARM_POLLING_INTERVAL).')
@minValue(1)
param armPollingSeconds int = 30

@description('Memory of one Flex Consumption instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

// ARM's endpoint for this cloud without the trailing slash (Settings compares it with the public one).
var armEndpoint = endsWith(environment().resourceManager, '/') ? substring(environment().resourceManager, 0, length(environment().resourceManager) - 1) : environment().resourceManager

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  #checkov:skip=CKV_AZURE_225:Zone redundancy is not offered for Flex Consumption plans in every region; sessions resume from the task hub after an instance is lost.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  #checkov:skip=CKV_AZURE_17:Client certificates are not how callers authenticate (function keys over TLS 1.2).
  #checkov:skip=CKV_AZURE_222:The HTTP API is called from operators' machines and scripts without a virtual network; every route needs a function key.
  #checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero; an always-ready instance would bill around the clock, and a session on a lost instance resumes from the task hub.
  #checkov:skip=CKV_AZURE_213:Flex Consumption apps have no App Service health check; the platform replaces failed instances and Durable Functions replays their work.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
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
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        {
          name: 'AzureWebJobsStorage'
          value: storageConnectionReference
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: insightsConnectionString
        }
        {
          name: 'BULWARK_TELEMETRY'
          value: 'on'
        }
        {
          name: 'OTEL_SERVICE_NAME'
          value: 'bulwark-app'
        }
        {
          name: 'AZURE_SUBSCRIPTION_ID'
          value: subscription().subscriptionId
        }
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'BULWARK_ARM_ENDPOINT'
          value: armEndpoint
        }
        {
          name: 'BULWARK_ARM_WRITES_PER_HOUR'
          value: string(armWritesPerHour)
        }
        {
          name: 'BULWARK_ARM_POLLING_INTERVAL'
          value: string(armPollingSeconds)
        }
        {
          name: 'BULWARK_KEY_VAULT'
          value: keyVaultName
        }
        {
          name: 'BULWARK_WORKER_LAUNCHER'
          value: 'aci'
        }
        {
          name: 'BULWARK_WORKER_IMAGE'
          value: workerImage
        }
        {
          name: 'BULWARK_WORKER_RESOURCE_GROUP'
          value: workerResourceGroup
        }
        {
          name: 'BULWARK_WORKER_IDENTITY'
          value: identityId
        }
        {
          name: 'BULWARK_WORKER_CPU'
          value: workerCpu
        }
        {
          name: 'BULWARK_WORKER_MEMORY_GB'
          value: workerMemoryGb
        }
        {
          name: 'BULWARK_JOB_POLL_SECONDS'
          value: string(jobPollSeconds)
        }
        {
          name: 'BULWARK_JOB_DEADLINE_SECONDS'
          value: string(jobDeadlineSeconds)
        }
        {
          name: 'BULWARK_JOB_ATTEMPTS'
          value: string(jobAttempts)
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

@description('Name of the function app.')
output name string = app.name

@description('Host name of the function app (the HTTP API is https://HOST/api).')
output hostName string = app.properties.defaultHostName
