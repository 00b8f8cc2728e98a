// The one user-assigned identity the function app and its workers run as. Its rights come from the
// custom roles in roles.bicep, assigned where each kind of call happens (main.bicep).

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region of the identity.')
param location string

@description('Tags applied to the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

@description('Resource id of the identity (BULWARK_WORKER_IDENTITY).')
output id string = identity.id

@description('Client id of the identity (AZURE_CLIENT_ID for DefaultAzureCredential).')
output clientId string = identity.properties.clientId

@description('Object id of the identity: the principal role assignments name.')
output principalId string = identity.properties.principalId
