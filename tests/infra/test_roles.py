"""The custom roles allow exactly the Azure Resource Manager operations the adapters call.

Every management-SDK call in ``shared/azure`` (``self._client.<operations>.<method>``, plus the
disk/snapshot access calls) is found by reading the sources; OPERATIONS says which RBAC action each
needs. A new SDK call without an entry fails here (map it, then grant it in infra/modules/roles.bicep);
an action a role grants that no call needs fails too, so the roles stay least-privilege.
"""

from __future__ import annotations

import ast
from typing import Any

from tests.infra.trees import ROOT, resources_of_type

OPERATIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("virtual_machines", "get"): ("Microsoft.Compute/virtualMachines/read",),
    ("virtual_machines", "list"): ("Microsoft.Compute/virtualMachines/read",),
    ("virtual_machines", "list_all"): ("Microsoft.Compute/virtualMachines/read",),
    ("virtual_machines", "begin_create_or_update"): (
        "Microsoft.Compute/virtualMachines/write",
        "Microsoft.Compute/disks/write",  # attaching existing managed disks
        "Microsoft.Network/networkInterfaces/read",
        "Microsoft.Network/networkInterfaces/join/action",
    ),
    ("virtual_machines", "begin_delete"): ("Microsoft.Compute/virtualMachines/delete",),
    ("virtual_machine_sizes", "list"): ("Microsoft.Compute/locations/vmSizes/read",),
    ("disks", "get"): ("Microsoft.Compute/disks/read",),
    ("disks", "list_by_resource_group"): ("Microsoft.Compute/disks/read",),
    ("disks", "begin_create_or_update"): ("Microsoft.Compute/disks/write", "Microsoft.Compute/snapshots/read"),
    ("disks", "begin_delete"): ("Microsoft.Compute/disks/delete",),
    ("snapshots", "get"): ("Microsoft.Compute/snapshots/read",),
    ("snapshots", "list"): ("Microsoft.Compute/snapshots/read",),
    ("snapshots", "list_by_resource_group"): ("Microsoft.Compute/snapshots/read",),
    ("snapshots", "begin_create_or_update"): ("Microsoft.Compute/snapshots/write", "Microsoft.Compute/disks/read"),
    ("snapshots", "begin_delete"): ("Microsoft.Compute/snapshots/delete",),
    # _access_target picks the disks or the snapshots operations: a snapshot is read (backup), an
    # upload disk written (restore).
    ("operations", "begin_grant_access"): (
        "Microsoft.Compute/snapshots/beginGetAccess/action",
        "Microsoft.Compute/disks/beginGetAccess/action",
    ),
    ("operations", "begin_revoke_access"): (
        "Microsoft.Compute/snapshots/endGetAccess/action",
        "Microsoft.Compute/disks/endGetAccess/action",
    ),
    ("servers", "get"): ("Microsoft.Sql/servers/read",),
    ("servers", "list"): ("Microsoft.Sql/servers/read",),
    ("servers", "list_by_resource_group"): ("Microsoft.Sql/servers/read",),
    ("servers", "begin_import_database"): ("Microsoft.Sql/servers/import/action",),
    ("databases", "get"): ("Microsoft.Sql/servers/databases/read",),
    ("databases", "list_by_server"): ("Microsoft.Sql/servers/databases/read",),
    ("databases", "begin_create_or_update"): ("Microsoft.Sql/servers/databases/write",),
    ("databases", "begin_delete"): ("Microsoft.Sql/servers/databases/delete",),
    ("databases", "begin_export"): ("Microsoft.Sql/servers/databases/export/action",),
    ("databases", "rename"): ("Microsoft.Sql/servers/databases/move/action",),
    ("database_usages", "list_by_database"): ("Microsoft.Sql/servers/databases/usages/read",),
    ("container_groups", "get"): ("Microsoft.ContainerInstance/containerGroups/read",),
    ("container_groups", "begin_create_or_update"): (
        "Microsoft.ContainerInstance/containerGroups/write",
        "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",  # the group runs as the identity
    ),
    ("container_groups", "begin_delete"): ("Microsoft.ContainerInstance/containerGroups/delete",),
    ("containers", "list_logs"): ("Microsoft.ContainerInstance/containerGroups/containers/logs/read",),
}
POLLING = {
    "Microsoft.Compute/locations/*/read",
    "Microsoft.Sql/locations/*/read",
    "Microsoft.ContainerInstance/locations/*/read",
}
"""Status reads of long-running operations (every begin_* call polls one of these)."""
DATA_PLANE_CONTAINERS = {
    "Microsoft.Storage/storageAccounts/blobServices/containers/read",
    "Microsoft.Storage/storageAccounts/blobServices/containers/write",
    "Microsoft.Storage/storageAccounts/tableServices/tables/read",
    "Microsoft.Storage/storageAccounts/tableServices/tables/write",
}
"""Blob and table requests signed in with Entra ID need these on the container or table itself
(container properties, the BACPAC staging container and the app's tables created on first use)."""


def sdk_calls() -> dict[tuple[str, str], list[str]]:
    calls: dict[tuple[str, str], list[str]] = {}
    for path in sorted((ROOT / "shared" / "azure").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Attribute):
                if owner.value.attr != "_client":
                    continue
                group = owner.attr
            elif isinstance(owner, ast.Name) and owner.id == "operations":
                group = "operations"
            else:
                continue
            calls.setdefault((group, node.func.attr), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return calls


def granted_actions(bicep: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    roles: dict[str, set[str]] = {}
    for _, role in resources_of_type(bicep["modules/roles.bicep"], "Microsoft.Authorization/roleDefinitions"):
        name = role["properties"]["roleName"]
        roles[name] = {a for p in role["properties"]["permissions"] for a in p["actions"]}
    return roles


def test_every_sdk_call_is_mapped_to_an_rbac_action() -> None:
    calls = sdk_calls()
    assert len(calls) >= 25, f"only {len(calls)} SDK calls found in shared/azure: did the adapters' shape change?"
    unmapped = {call: places for call, places in calls.items() if call not in OPERATIONS}
    assert not unmapped, f"map these SDK calls to the RBAC actions they need (OPERATIONS): {unmapped}"


def test_the_roles_grant_what_the_calls_need_and_nothing_else(bicep: dict[str, dict[str, Any]]) -> None:
    roles = granted_actions(bicep)
    granted = set().union(*roles.values())
    needed = {action for call in sdk_calls() for action in OPERATIONS.get(call, ())}
    missing = sorted(needed - granted)
    assert not missing, f"no role in infra/modules/roles.bicep grants: {missing}"
    unused = sorted(granted - needed - POLLING - DATA_PLANE_CONTAINERS)
    assert not unused, f"roles grant actions no Bulwark call needs: {unused}"
    assert not any(action.endswith("*") and action not in POLLING for action in granted), "no wildcard grants"
