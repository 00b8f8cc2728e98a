// Assigns Bulwark's roles to its identity on the whole subscription (protectionScope = 'subscription').
targetScope = 'subscription'

@description('Object id of the Bulwark identity.')
param principalId string

@description('Role definition ids to assign on the subscription .')
param roleDefinitionIds array

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in roleDefinitionIds: {
  name: guid(subscription().id, principalId, roleId)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roleId
  }
}]
