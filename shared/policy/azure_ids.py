"""The shapes of the Azure ids a policy names: subscription GUIDs, resource groups, VMs, SQL servers
and SQL databases, and Azure region names.

Each ``problem_*`` function returns ``None`` for a good value, else ``(message, fix)`` for a
:class:`~shared.core.errors.FieldProblem`. ARM ids compare case-insensitively (:func:`id_key`), as
ARM does. Nothing here calls Azure: a well-formed id may still name nothing.
"""

from __future__ import annotations

import re
from enum import StrEnum

from shared.core.errors import redact

__all__ = [
    "GUID_EXAMPLE",
    "ResourceKind",
    "id_key",
    "problem_region",
    "problem_resource_group_id",
    "problem_resource_id",
    "problem_sql_server_id",
    "problem_subscription_id",
    "resource_group_key",
    "resource_kind",
    "sql_server_of",
    "subscription_key",
]

Problem = tuple[str, str] | None

GUID_EXAMPLE = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_GROUP_NAME = re.compile(r"^[-\w.()]{1,90}$")
_RESOURCE_NAME = re.compile(r"^[^\s\\/\"'\[\]:|<>+=;,?*@&#%]{1,128}$")
_REGION = re.compile(r"^[a-z][a-z0-9]{2,39}$")

_VM_EXAMPLE = f"/subscriptions/{GUID_EXAMPLE}/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<vm>"
_DB_EXAMPLE = (
    f"/subscriptions/{GUID_EXAMPLE}/resourceGroups/<group>/providers/Microsoft.Sql/servers/<server>/databases/<db>"
)
_SERVER_EXAMPLE = f"/subscriptions/{GUID_EXAMPLE}/resourceGroups/<group>/providers/Microsoft.Sql/servers/<server>"
_GROUP_EXAMPLE = f"/subscriptions/{GUID_EXAMPLE}/resourceGroups/<group>"


class ResourceKind(StrEnum):
    """What a policy protects."""

    VM = "vm"
    SQL_DATABASE = "sql_database"


_KINDS = {
    "microsoft.compute/virtualmachines": ResourceKind.VM,
    "microsoft.sql/servers/databases": ResourceKind.SQL_DATABASE,
}
_KIND_ADVICE = {
    "microsoft.compute/disks": "a policy protects the VM a disk is attached to; use the VM's id",
    "microsoft.compute/snapshots": "snapshots are what Bulwark makes; use the id of the VM to protect",
    "microsoft.sql/servers": "a policy protects databases; list each database, …/servers/<server>/databases/<db>",
    "microsoft.sql/managedinstances/databases": "SQL Managed Instance databases are not supported yet; "
    "use Azure SQL Database ids",
}


def id_key(resource_id: str) -> str:
    """The comparison key of an ARM id: equal keys name the same resource."""
    return resource_id.strip().strip("/").lower()


def subscription_key(resource_id: str) -> str:
    """The lower-cased subscription GUID of an ARM id (or of a bare GUID)."""
    parts = id_key(resource_id).split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "subscriptions" else parts[0]


def resource_group_key(resource_id: str) -> str:
    """``subscriptions/<guid>/resourcegroups/<group>``, lower-cased, for any id inside a group."""
    return "/".join(id_key(resource_id).split("/")[:4])


def resource_kind(resource_id: str) -> ResourceKind | None:
    parts = id_key(resource_id).split("/")
    return _KINDS.get("/".join([parts[5], *parts[6::2]])) if len(parts) >= 8 else None


def sql_server_of(database_id: str) -> str:
    """The server id of a SQL database id, lower-cased."""
    return "/".join(id_key(database_id).split("/")[:8])


def problem_subscription_id(text: str) -> Problem:
    if _GUID.match(text):
        return None
    return (
        f"{_quote(text)} is not a subscription id",
        f"use the subscription's GUID, e.g. '{GUID_EXAMPLE}' (az account list -o table)",
    )


def problem_resource_group_id(text: str) -> Problem:
    fix = f"use {_GROUP_EXAMPLE}"
    if "/" not in text and _GROUP_NAME.match(text):
        return f"{_quote(text)} is a bare name, not a resource group id", f"{fix} (the group's full id)"
    parts = _split(text)
    if parts is None or len(parts) != 4 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        return f"{_quote(text)} is not a resource group id", fix
    return _subscription_in(text, parts[1]) or _group_in(text, parts[3])


def problem_resource_id(text: str) -> Problem:
    """A VM or an Azure SQL database."""
    fix = f"use {_VM_EXAMPLE} or {_DB_EXAMPLE}"
    parts = _split(text)
    if parts is None or not _is_arm(parts):
        return f"{_quote(text)} is not an Azure resource id", fix
    problem = _subscription_in(text, parts[1]) or _group_in(text, parts[3])
    if problem:
        return problem
    kind = "/".join([parts[5], *parts[6::2]])
    if kind.lower() not in _KINDS:
        advice = _KIND_ADVICE.get(kind.lower(), "use the id of a VM or of an Azure SQL database")
        return (
            f"{_quote(text)} is a {kind}; a policy protects virtual machines "
            "(Microsoft.Compute/virtualMachines) and SQL databases (Microsoft.Sql/servers/databases)",
            advice,
        )
    for name in parts[7::2]:
        if not _RESOURCE_NAME.match(name):
            return f"{_quote(text)} has the invalid name {_quote(name)}", "copy the id from the portal or the az CLI"
    if _KINDS[kind.lower()] is ResourceKind.SQL_DATABASE and parts[-1].lower() == "master":
        return (
            f"{_quote(text)} is the master database, which cannot be exported to a BACPAC",
            "list user databases only",
        )
    return None


def problem_sql_server_id(text: str) -> Problem:
    fix = f"use {_SERVER_EXAMPLE}"
    parts = _split(text)
    if parts is None or not _is_arm(parts):
        return f"{_quote(text)} is not an Azure resource id", fix
    problem = _subscription_in(text, parts[1]) or _group_in(text, parts[3])
    if problem:
        return problem
    kind = "/".join([parts[5], *parts[6::2]])
    if kind.lower() != "microsoft.sql/servers":
        return f"{_quote(text)} is a {kind}, not a SQL server (Microsoft.Sql/servers)", fix
    return None


def problem_region(text: str) -> Problem:
    if _REGION.match(text):
        return None
    squashed = re.sub(r"[\s_-]", "", text).lower()
    if squashed != text and _REGION.match(squashed):
        return f"{_quote(text)} is a display name, not a region name", f"use '{squashed}'"
    return (
        f"{_quote(text)} is not an Azure region name",
        "use the region's name, e.g. 'westeurope' or 'eastus2' (az account list-locations -o table)",
    )


def _split(text: str) -> list[str] | None:
    if not text.startswith("/") or text != text.strip() or text.endswith("/"):
        return None
    parts = text[1:].split("/")
    return parts if all(parts) else None


def _is_arm(parts: list[str]) -> bool:
    return (
        len(parts) >= 8
        and len(parts) % 2 == 0
        and parts[0].lower() == "subscriptions"
        and parts[2].lower() == "resourcegroups"
        and parts[4].lower() == "providers"
    )


def _subscription_in(text: str, guid: str) -> Problem:
    if _GUID.match(guid):
        return None
    return (
        f"{_quote(text)} has {_quote(guid)} where the subscription GUID belongs",
        f"use the subscription's GUID, e.g. '{GUID_EXAMPLE}'",
    )


def _group_in(text: str, group: str) -> Problem:
    if _GROUP_NAME.match(group) and not group.endswith("."):
        return None
    return (
        f"{_quote(text)} has the invalid resource group name {_quote(group)}",
        "resource group names have 1-90 letters, digits, '-', '_', '.', '(' and ')' and do not end in '.'",
    )


def _quote(text: str) -> str:
    text = redact(text)
    return f"'{text[:150]}…'" if len(text) > 150 else f"'{text}'"
