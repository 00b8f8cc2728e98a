"""The backup policy: frozen dataclasses whose field names are the JSON names.

A policy says what to protect (:class:`~shared.policy.scope.Scope`), when sessions run
(``schedule``), how many snapshots each disk keeps, whether and when image-level backups copy VM
snapshots into the repository and how long they stay there, how SQL databases are exported, where
the repository is and where its secrets are (by reference only), where workers run and how much runs
at once.

Every session (a slot of ``schedule``) takes a snapshot of every disk of every protected VM and
exports every protected SQL database to the repository. A slot of ``image_backup.schedule`` also
runs a session for the VMs only, and marks it for an image-level backup: the worker copies the new
snapshot into the repository, and that snapshot stays until the next image-level session (it is the
base of the next changed-block diff).

Construct policies with :func:`shared.policy.document.policy_from_dict`, or build the dataclasses
and call :func:`shared.policy.document.validate_policy`: the dataclasses do not check themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from shared.policy.codec import spec
from shared.policy.formats import (
    KEY_VAULT_SECRET_NAME,
    POLICY_ID,
    REGION,
    REPOSITORY_LOCATION,
    SECRET_FILE,
    SQL_SERVER_ID,
)
from shared.policy.schedule import Schedule
from shared.policy.scope import Scope

__all__ = [
    "AZURE_MAX_INCREMENTAL_SNAPSHOTS_PER_DISK",
    "BackupRetention",
    "Concurrency",
    "Encryption",
    "ImageBackup",
    "Policy",
    "RepositoryRef",
    "SecretRef",
    "SnapshotSettings",
    "SqlMode",
    "SqlSettings",
    "WorkerPlacement",
    "Workers",
]

AZURE_MAX_INCREMENTAL_SNAPSHOTS_PER_DISK = 500
"""Azure refuses the 501st incremental snapshot of a managed disk."""

_SECRET_AS_TEXT = (
    "is text, and secrets are never accepted inline",
    'store the secret in Key Vault and reference it, e.g. {"key_vault_secret": "bulwark-repo-passphrase"} '
    '(in local mode, {"file": "/etc/bulwark/passphrase"})',
)


class SqlMode(StrEnum):
    DIRECT = "direct"
    """Export the source database itself."""
    STAGING = "staging"
    """Copy the database to a staging server (transactionally consistent), export the copy, delete it."""


class WorkerPlacement(StrEnum):
    REPOSITORY_REGION = "repository_region"
    """Workers run where the repository is (the seed's rule): the snapshot is read across regions."""
    SOURCE_REGION = "source_region"
    """Workers run where the VM or database is: only compressed data crosses regions."""


@dataclass(frozen=True)
class SecretRef:
    """Where a secret is kept: exactly one of a Key Vault secret name or a local file path."""

    key_vault_secret: str | None = field(
        default=None,
        metadata=spec(
            "name of a secret in the app's Key Vault", example="bulwark-repo-passphrase", format=KEY_VAULT_SECRET_NAME
        ),
    )
    file: str | None = field(
        default=None,
        metadata=spec(
            "local mode: absolute path of a file holding the secret",
            example="/etc/bulwark/passphrase",
            format=SECRET_FILE,
        ),
    )


@dataclass(frozen=True)
class SnapshotSettings:
    """Snapshot retention for the disks of protected VMs."""

    keep: int = field(
        metadata=spec(
            "snapshots kept per disk; with the one being taken and the image-level base, at most Azure's 500",
            example=14,
            minimum=1,
            maximum=AZURE_MAX_INCREMENTAL_SNAPSHOTS_PER_DISK,
            range_fix=f"use 1 to {AZURE_MAX_INCREMENTAL_SNAPSHOTS_PER_DISK - 2}: Azure allows at most "
            f"{AZURE_MAX_INCREMENTAL_SNAPSHOTS_PER_DISK} incremental snapshots per disk, and a session adds one "
            "before retention runs and image-level backup keeps one more",
        )
    )


@dataclass(frozen=True)
class BackupRetention:
    """How long repository restore points stay: every point for ``days``, then the newest point of
    each of the last ``weekly`` ISO weeks, ``monthly`` months and ``yearly`` years (UTC)."""

    days: int = field(metadata=spec("keep every point this many days", example=30, minimum=1, maximum=36500))
    weekly: int = field(default=0, metadata=spec("weekly points to keep", example=8, minimum=0, maximum=5200))
    monthly: int = field(default=0, metadata=spec("monthly points to keep", example=12, minimum=0, maximum=1200))
    yearly: int = field(default=0, metadata=spec("yearly points to keep", example=3, minimum=0, maximum=100))


@dataclass(frozen=True)
class ImageBackup:
    """Image-level backup of VMs: a worker copies snapshots into the repository."""

    enabled: bool = field(default=False, metadata=spec("copy VM snapshots into the repository"))
    schedule: Schedule | None = field(default=None, metadata=spec("when (required when enabled)"))
    retention: BackupRetention | None = field(default=None, metadata=spec("how long (required when enabled)"))


@dataclass(frozen=True)
class SqlSettings:
    """How SQL databases are exported to BACPAC and kept in the repository."""

    retention: BackupRetention = field(
        metadata=spec("how long BACPAC restore points stay", example={"days": 30, "monthly": 12})
    )
    mode: SqlMode = field(default=SqlMode.DIRECT, metadata=spec("export directly, or from a copy on a staging server"))
    staging_server: str | None = field(
        default=None, metadata=spec("staging mode: the server that holds the copy", format=SQL_SERVER_ID)
    )
    staging_region: str | None = field(
        default=None,
        metadata=spec(
            "staging mode: the staging server's region (its worker runs there)", example="westeurope", format=REGION
        ),
    )
    login: SecretRef | None = field(
        default=None,
        metadata=spec(
            "a SQL login's password, by reference; without it the app's Microsoft Entra identity is used",
            if_string=_SECRET_AS_TEXT,
        ),
    )


@dataclass(frozen=True)
class RepositoryRef:
    """The target repository: where it is and how to reach it (never the credential itself)."""

    location: str = field(
        metadata=spec(
            "container URL, or a folder in local mode",
            example="https://myaccount.blob.core.windows.net/bulwark/prod",
            format=REPOSITORY_LOCATION,
        )
    )
    region: str | None = field(
        default=None,
        metadata=spec("the storage account's region (required for Azure)", example="westeurope", format=REGION),
    )
    credential: SecretRef | None = field(
        default=None,
        metadata=spec(
            "an account key or SAS by reference; without it the app's managed identity is used",
            if_string=_SECRET_AS_TEXT,
        ),
    )


@dataclass(frozen=True)
class Encryption:
    """The repository's key, by reference."""

    passphrase: SecretRef = field(
        metadata=spec(
            "the repository passphrase",
            example={"key_vault_secret": "bulwark-repo-passphrase"},
            if_string=_SECRET_AS_TEXT,
        )
    )


@dataclass(frozen=True)
class Workers:
    """Where workers (the container jobs that move data) run."""

    placement: WorkerPlacement = field(
        default=WorkerPlacement.REPOSITORY_REGION,
        metadata=spec("the repository's region (default) or the source's region (less cross-region traffic)"),
    )


@dataclass(frozen=True)
class Concurrency:
    """How much of a session runs at once."""

    resources_in_flight: int = field(
        default=10, metadata=spec("VMs and databases processed at once", example=10, minimum=1, maximum=200)
    )
    workers_in_flight: int = field(
        default=4, metadata=spec("workers running at once", example=4, minimum=1, maximum=50)
    )


@dataclass(frozen=True)
class Policy:
    """A backup policy."""

    id: str = field(metadata=spec("the policy's id", example="prod-vms", format=POLICY_ID))
    scope: Scope = field(
        metadata=spec("what to protect", example={"resource_groups": ["/subscriptions/<GUID>/resourceGroups/<group>"]})
    )
    schedule: Schedule = field(
        metadata=spec("when sessions run", example={"time_zone": "Europe/Berlin", "daily": {"times": ["02:30"]}})
    )
    repository: RepositoryRef = field(
        metadata=spec(
            "where restore points are stored",
            example={"location": "https://myaccount.blob.core.windows.net/bulwark/prod", "region": "westeurope"},
        )
    )
    encryption: Encryption = field(
        metadata=spec(
            "the repository's key, by reference",
            example={"passphrase": {"key_vault_secret": "bulwark-repo-passphrase"}},
        )
    )
    description: str = field(default="", metadata=spec("free text for people", max_length=1000))
    enabled: bool = field(default=True, metadata=spec("whether the schedule starts sessions"))
    snapshots: SnapshotSettings | None = field(
        default=None, metadata=spec("snapshot retention (required when scope.kinds has 'vm')")
    )
    image_backup: ImageBackup = field(default=ImageBackup(), metadata=spec("image-level backup of VMs"))
    sql: SqlSettings | None = field(
        default=None, metadata=spec("SQL export (required when scope.kinds has 'sql_database')")
    )
    workers: Workers = field(default=Workers(), metadata=spec("where workers run"))
    concurrency: Concurrency = field(default=Concurrency(), metadata=spec("how much runs at once"))
