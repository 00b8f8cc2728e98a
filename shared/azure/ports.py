"""The Azure ports: what the rest of Bulwark needs from Azure, as narrow Protocols.

Implemented by the adapters in this package (``compute.AzureCompute`` implements the first four);
services and activities take these types, so tests can hand them fakes. Every method raises only
``shared.core.errors`` types (``AzureApiError`` and its subclasses, ``UsageError`` for malformed
ids), never an SDK exception; no return value holds an SDK model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from .model import (
    BacpacLocation,
    ContainerGroupState,
    DatabaseCatalog,
    DiskInfo,
    ExportResult,
    ImportExportOperation,
    SasUrl,
    Selection,
    SnapshotInfo,
    SqlDatabaseInfo,
    SqlLogin,
    SqlServerInfo,
    VmInfo,
    VmSelection,
    WorkerGroupSpec,
)

__all__ = [
    "ContainerGroups",
    "DiskAccess",
    "DiskSnapshots",
    "RestoreTargets",
    "SqlCatalogProbe",
    "SqlDatabases",
    "VmInventory",
]


class VmInventory(Protocol):
    """Finds the VMs a policy protects and their disks."""

    def discover(self, selection: VmSelection) -> list[VmInfo]:
        """The selected VMs sorted by id, each with its OS and data disks (managed disks with size
        and uniqueId). A named VM or resource group that does not exist raises
        ``AzureResourceNotFoundError`` / ``ResourceGroupNotFoundError`` naming it."""
        ...

    def get_vm(self, vm_id: str) -> VmInfo: ...

    def get_disk(self, disk_id: str) -> DiskInfo: ...


class DiskSnapshots(Protocol):
    """Incremental snapshots of managed disks and their chains."""

    def create_snapshot(
        self,
        disk: DiskInfo,
        *,
        resource_group: str,
        name: str,
        tags: Mapping[str, str],
        location: str | None = None,
    ) -> SnapshotInfo:
        """An incremental snapshot of ``disk`` named ``name`` in ``resource_group`` (the VM's) and the
        disk's region; PUTting the same name again returns the existing snapshot (idempotent).
        ``location`` other than the disk's raises ``WrongRegionError`` before any call."""
        ...

    def get_snapshot(self, snapshot_id: str) -> SnapshotInfo: ...

    def snapshot_chain(
        self,
        disk: DiskInfo | str,
        *,
        resource_group: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[SnapshotInfo]:
        """The disk's incremental snapshots, oldest first (``timeCreated``)."""
        ...

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete; a snapshot that is already gone is not an error."""
        ...


class DiskAccess(Protocol):
    """Short-lived SAS grants on snapshots and disks. A SasUrl is a secret: never log it."""

    def grant_read(self, resource_id: str, *, seconds: int | None = None) -> SasUrl: ...

    def grant_write(self, disk_id: str, *, seconds: int | None = None) -> SasUrl: ...

    def revoke(self, resource_id: str) -> None:
        """End every SAS of the resource; harmless when none is open."""
        ...


class RestoreTargets(Protocol):
    """Disks and VMs a restore writes into."""

    def create_upload_disk(
        self,
        *,
        resource_group: str,
        name: str,
        location: str,
        size_bytes: int,
        sku: str = "Standard_LRS",
        os_type: str | None = None,
        hyper_v_generation: str | None = None,
        zones: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
    ) -> DiskInfo: ...

    def create_disk_from_snapshot(
        self,
        *,
        resource_group: str,
        name: str,
        snapshot: SnapshotInfo,
        sku: str | None = None,
        size_gb: int | None = None,
        zones: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
    ) -> DiskInfo: ...

    def create_vm(
        self,
        *,
        resource_group: str,
        name: str,
        location: str,
        vm_size: str,
        os_disk_id: str,
        os_type: str,
        data_disks: Sequence[tuple[int, str]] = (),
        nic_ids: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
    ) -> VmInfo: ...

    def delete_disk(self, disk_id: str) -> None: ...

    def delete_vm(self, vm_id: str) -> None:
        """Delete the VM, keeping its disks; harmless when it is gone."""
        ...

    def vm_sizes(self, location: str) -> list[str]:
        """The VM sizes offered in ``location``; AzureResourceNotFoundError for an unknown region."""
        ...

    def list_disks(self, resource_group: str) -> list[DiskInfo]:
        """The group's managed disks; ResourceGroupNotFoundError when the group does not exist."""
        ...


class SqlCatalogProbe(Protocol):
    """Looks inside a database for what BACPAC cannot export. Azure: T-SQL over TDS
    (``sql_catalog.DbApiCatalogProbe``); the local simulator: its catalog endpoint."""

    def probe(self, database: SqlDatabaseInfo) -> DatabaseCatalog: ...


class SqlDatabases(Protocol):
    """Azure SQL servers and databases: discovery, staging copies, BACPAC export/import."""

    def list_servers(self, resource_group: str | None = None) -> list[SqlServerInfo]: ...

    def get_server(self, server_id: str) -> SqlServerInfo: ...

    def list_databases(self, server_id: str, *, include_system: bool = False) -> list[SqlDatabaseInfo]:
        """User databases by name; ``master`` only with ``include_system``."""
        ...

    def get_database(self, database_id: str) -> SqlDatabaseInfo: ...

    def database_size(self, database: SqlDatabaseInfo) -> int | None:
        """Bytes in use (ARM's ``database_size`` usage), None when Azure does not report it."""
        ...

    def discover(self, selection: Selection) -> list[SqlDatabaseInfo]: ...

    def copy_database(
        self,
        source: SqlDatabaseInfo,
        *,
        server_id: str,
        name: str,
        sku: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SqlDatabaseInfo:
        """A transactionally consistent copy on ``server_id`` (a staging server), online on return."""
        ...

    def preflight_export(self, database: SqlDatabaseInfo, catalog: DatabaseCatalog) -> int | None:
        """Raise SqlExportRefusedError for what BACPAC cannot export; return the size in bytes."""
        ...

    def export_database(self, database_id: str, *, destination: BacpacLocation, login: SqlLogin) -> ExportResult: ...

    def start_export(self, database_id: str, *, destination: BacpacLocation, login: SqlLogin) -> ImportExportOperation:
        """Start an export and return at once; follow it with ``export_status``."""
        ...

    def export_status(self, operation: ImportExportOperation, database_id: str) -> ExportResult | None:
        """None while it runs, the result when it succeeded; raises the translated error when it failed."""
        ...

    def start_import(
        self, server_id: str, *, name: str, source: BacpacLocation, login: SqlLogin
    ) -> ImportExportOperation:
        """Start importing a BACPAC into a new database and return at once; follow it with ``import_status``."""
        ...

    def import_status(self, operation: ImportExportOperation, server_id: str, name: str) -> SqlDatabaseInfo | None:
        """None while it runs, the new database when it succeeded; raises the translated error when it failed."""
        ...

    def import_database(
        self,
        server_id: str,
        *,
        name: str,
        source: BacpacLocation,
        login: SqlLogin,
        edition: str | None = None,
        service_objective: str | None = None,
        max_size_bytes: int | None = None,
    ) -> SqlDatabaseInfo: ...

    def rename_database(self, database_id: str, new_name: str) -> SqlDatabaseInfo:
        """Rename a database on its server; returns it under its new name."""
        ...

    def delete_database(self, database_id: str) -> None:
        """Delete; already gone is not an error; ``master`` is refused."""
        ...


class ContainerGroups(Protocol):
    """Run-to-completion workers in Azure Container Instances."""

    def launch(self, spec: WorkerGroupSpec) -> ContainerGroupState: ...

    def get(self, group_id: str) -> ContainerGroupState: ...

    def wait(self, group_id: str, *, timeout: float, poll_seconds: float = 10.0) -> ContainerGroupState:
        """Poll until every container ended; AzureOperationFailedError after ``timeout``."""
        ...

    def logs(self, group_id: str, *, container: str | None = None, tail: int | None = None) -> str: ...

    def delete(self, group_id: str) -> None:
        """Delete (stopping what still runs); already gone is not an error."""
        ...
