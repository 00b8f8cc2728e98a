// Assigns Bulwark's roles to its identity on one resource group (a protected or restore scope).

@description('Object id of the Bulwark identity.')
param principalId string

@description('Role definition ids to assign on this resource group .')
param roleDefinitionIds array

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in roleDefinitionIds: {
  name: guid(resourceGroup().id, principalId, roleId)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roleId
  }
}]
