"""Policy documents for tests: one valid document with every section, and ids to build others."""

from __future__ import annotations

import copy
from typing import Any

SUB = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
OTHER_SUB = "11111111-2222-3333-4444-555555555555"
GROUP = f"/subscriptions/{SUB}/resourceGroups/prod-rg"
VM = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web01"
VM2 = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web02"
DB = f"{GROUP}/providers/Microsoft.Sql/servers/sql-prod/databases/orders"
SERVER = f"{GROUP}/providers/Microsoft.Sql/servers/sql-staging"
DISK = f"{GROUP}/providers/Microsoft.Compute/disks/web01-os"

_VALID: dict[str, Any] = {
    "id": "prod-vms",
    "description": "Production web tier and its orders database",
    "scope": {
        "kinds": ["vm", "sql_database"],
        "subscriptions": [OTHER_SUB],
        "resource_groups": [GROUP],
        "tags": ["environment=production", "backup"],
        "tag_match": "any",
        "resources": [VM, DB],
        "exclude": {"resources": [VM2], "tags": ["backup=none"]},
    },
    "schedule": {"time_zone": "Europe/Berlin", "daily": {"times": ["02:30", "14:30"], "weekdays": ["mon", "fri"]}},
    "snapshots": {"keep": 14},
    "image_backup": {
        "enabled": True,
        "schedule": {
            "time_zone": "America/New_York",
            "weekly": {"weekday": "sat", "time": "22:00"},
            "monthly": {"week": "last", "weekday": "fri", "time": "23:00"},
            "yearly": {"month": 2, "day": 29, "time": "01:00"},
        },
        "retention": {"days": 30, "weekly": 8, "monthly": 12, "yearly": 3},
    },
    "sql": {
        "mode": "staging",
        "staging_server": SERVER,
        "staging_region": "westeurope",
        "retention": {"days": 14, "monthly": 6},
        "login": {"key_vault_secret": "sql-backup-login"},
    },
    "repository": {
        "location": "https://bulwarkrepo.blob.core.windows.net/backups/prod",
        "region": "westeurope",
        "credential": {"key_vault_secret": "repo-sas"},
    },
    "encryption": {"passphrase": {"key_vault_secret": "bulwark-repo-passphrase"}},
    "workers": {"placement": "source_region"},
    "concurrency": {"resources_in_flight": 20, "workers_in_flight": 5},
}

_MINIMAL: dict[str, Any] = {
    "id": "small",
    "scope": {"resources": [VM]},
    "schedule": {"time_zone": "UTC", "daily": {"times": ["03:00"]}},
    "snapshots": {"keep": 7},
    "repository": {"location": "/srv/bulwark/repo"},
    "encryption": {"passphrase": {"file": "/etc/bulwark/passphrase"}},
}


def valid_document() -> dict[str, Any]:
    """A fresh copy of a valid policy that uses every section."""
    return copy.deepcopy(_VALID)


def minimal_document() -> dict[str, Any]:
    """A fresh copy of the smallest valid policy (local mode, one VM)."""
    return copy.deepcopy(_MINIMAL)
