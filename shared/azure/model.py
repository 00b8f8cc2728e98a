"""What the Azure ports return: small frozen dataclasses, never SDK models.

``SasUrl`` wraps a shared access signature URL. It is a secret (anyone holding it can read the
disk), so its ``repr``/``str`` show only the blob's address; ``reveal()`` is the one way to the
full URL, and only adapters that send it to Azure call it. It is deliberately not serialisable to
JSON: orchestration inputs and outputs carry resource ids and the SAS is granted in the activity
that uses it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.core.errors import UsageError

__all__ = [
    "STAGING_CONTAINER",
    "BacpacLocation",
    "ContainerGroupState",
    "ContainerSpec",
    "ContainerState",
    "DatabaseCatalog",
    "DiskInfo",
    "ExportResult",
    "ExternalReference",
    "SasUrl",
    "Secret",
    "Selection",
    "SnapshotInfo",
    "SqlDatabaseInfo",
    "SqlLogin",
    "SqlServerInfo",
    "UnsupportedPrincipal",
    "VmDisk",
    "VmInfo",
    "VmSelection",
    "WorkerGroupSpec",
]

STAGING_CONTAINER = "bulwark-bacpac-staging"
"""The app storage account's container for BACPAC exports on their way to a worker."""


class SasUrl:
    """A SAS URL whose signature never reaches a log, an exception or a repr."""

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        if not url.startswith(("https://", "http://")):
            raise UsageError("a SAS URL must start with https://")
        self._url = url

    def reveal(self) -> str:
        """The full URL, signature included: pass it to Azure, never to a log or a message."""
        return self._url

    @property
    def address(self) -> str:
        """Scheme, host and path: safe to show."""
        return self._url.split("?", 1)[0]

    def __repr__(self) -> str:
        return f"SasUrl('{self.address}?<signature hidden>')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SasUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a SasUrl is a secret and is not pickled; pass the resource id and grant access again")


@dataclass(frozen=True)
class DiskInfo:
    """A managed disk."""

    id: str
    name: str
    resource_group: str
    location: str
    size_bytes: int
    unique_id: str
    disk_state: str
    sku: str | None = None
    os_type: str | None = None
    managed_by: str | None = None
    zones: tuple[str, ...] = ()
    time_created: dt.datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class VmDisk:
    """One disk of a VM as its storage profile names it: managed (an id) or unmanaged (a VHD URI).

    ``lun`` is None for the OS disk. For managed disks discovery fills ``size_bytes`` and
    ``unique_id`` from the disk resource; for VHDs ``size_bytes`` is None until the blob is read.
    """

    name: str
    lun: int | None
    managed_disk_id: str | None = None
    vhd_uri: str | None = None
    size_bytes: int | None = None
    unique_id: str | None = None
    caching: str | None = None

    @property
    def is_os_disk(self) -> bool:
        return self.lun is None

    @property
    def is_managed(self) -> bool:
        return self.managed_disk_id is not None


@dataclass(frozen=True)
class VmInfo:
    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str
    vm_size: str | None
    os_type: str | None
    os_disk: VmDisk
    data_disks: tuple[VmDisk, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    nic_ids: tuple[str, ...] = ()

    @property
    def disks(self) -> tuple[VmDisk, ...]:
        """The OS disk first, then data disks by LUN."""
        return (self.os_disk, *self.data_disks)


@dataclass(frozen=True)
class SnapshotInfo:
    """A (normally incremental) snapshot of a managed disk."""

    id: str
    name: str
    resource_group: str
    location: str
    source_disk_id: str
    source_unique_id: str | None
    family_id: str | None
    incremental: bool
    time_created: dt.datetime
    size_bytes: int
    provisioning_state: str
    disk_state: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Selection:
    """Which resources (VMs, SQL databases) a policy protects.

    * ``vm_ids``: these VMs, whatever their tags (each must exist).
    * ``resource_groups``: every VM in these groups (each group must exist) that matches ``tags``.
    * neither: every VM of the subscription that matches ``tags``.
    * ``tags``: all must match; the value ``"*"`` matches any value of that tag.
    * ``exclude_ids`` / ``exclude_tags``: drop a VM named here, or carrying any one of these tags
      (``"*"`` again matching any value), even when it was named in ``vm_ids``.
    """

    resource_groups: tuple[str, ...] = ()
    vm_ids: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    exclude_ids: tuple[str, ...] = ()
    exclude_tags: Mapping[str, str] = field(default_factory=dict, hash=False)

    def wants_tags(self, tags: Mapping[str, str]) -> bool:
        """The positive tag filter (all of ``self.tags``)."""
        return all(_tag_matches(tags, key, value) for key, value in self.tags.items())

    def excludes(self, vm_id: str, tags: Mapping[str, str]) -> bool:
        if vm_id.lower() in {e.lower() for e in self.exclude_ids}:
            return True
        return any(_tag_matches(tags, key, value) for key, value in self.exclude_tags.items())


VmSelection = Selection
"""The selection of a VM policy (the same rules serve SQL databases)."""


class Secret:
    """A password or key: ``reveal()`` gives it to Azure; repr, str and pickling never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled; pass a reference (a Key Vault secret name) instead")


@dataclass(frozen=True)
class SqlLogin:
    """The SQL server administrator login the import/export service signs in with."""

    login: str
    password: Secret


@dataclass(frozen=True)
class BacpacLocation:
    """Where the export service writes (or import reads) a BACPAC: the blob's URL and the key for
    it, a SAS token (``SharedAccessKey``) or the account key (``StorageAccessKey``)."""

    uri: str
    key: Secret
    key_type: str = "SharedAccessKey"

    @classmethod
    def from_sas(cls, sas: SasUrl) -> BacpacLocation:
        url = sas.reveal()
        if "?" not in url:
            raise UsageError("the BACPAC location needs a SAS token (a URL with a query)")
        address, token = url.split("?", 1)
        return cls(address, Secret("?" + token), "SharedAccessKey")


@dataclass(frozen=True)
class SqlServerInfo:
    id: str
    name: str
    resource_group: str
    location: str
    fqdn: str | None
    administrator_login: str | None
    state: str | None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class SqlDatabaseInfo:
    id: str
    name: str
    server_id: str
    server_name: str
    resource_group: str
    location: str
    status: str | None
    sku: str | None
    tier: str | None
    max_size_bytes: int | None
    is_system: bool
    database_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ExternalReference:
    """An object that references another database or server (BACPAC cannot export it: SQL71562)."""

    referencing_object: str
    referencing_type: str
    referenced_server: str | None
    referenced_database: str | None
    referenced_schema: str | None
    referenced_entity: str

    def describe(self) -> str:
        target = ".".join(p for p in (self.referenced_server, self.referenced_database, self.referenced_schema) if p)
        return f"{self.referencing_type.lower()} {self.referencing_object} -> {target}.{self.referenced_entity}"


@dataclass(frozen=True)
class UnsupportedPrincipal:
    """A database user BACPAC cannot carry (e.g. Windows-authenticated: SQL71564)."""

    name: str
    type: str
    authentication_type: str


@dataclass(frozen=True)
class DatabaseCatalog:
    """What a pre-flight learns from inside the database (``ports.SqlCatalogProbe``)."""

    external_references: tuple[ExternalReference, ...] = ()
    unsupported_principals: tuple[UnsupportedPrincipal, ...] = ()
    size_bytes: int | None = None


@dataclass(frozen=True)
class ExportResult:
    request_id: str
    database_name: str
    blob_uri: str
    status: str


@dataclass(frozen=True)
class ImportExportOperation:
    """A started BACPAC export or import: where to ask how it goes (ARM operation URLs, no secret
    in them), or an export's result when Azure finished it at once."""

    status_url: str
    result_url: str
    result: ExportResult | None = None


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: tuple[str, ...] = ()
    cpu: float = 1.0
    memory_gb: float = 1.5
    environment: Mapping[str, str] = field(default_factory=dict, hash=False)
    secure_environment: Mapping[str, Secret] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class WorkerGroupSpec:
    """A container group to run once. ``identity_ids``: user-assigned managed identities (the
    worker reaches storage and Key Vault with them; the first also pulls from ``registry_server``)."""

    name: str
    resource_group: str
    location: str
    containers: tuple[ContainerSpec, ...]
    restart_policy: str = "Never"
    os_type: str = "Linux"
    identity_ids: tuple[str, ...] = ()
    registry_server: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ContainerState:
    name: str
    state: str | None
    exit_code: int | None
    detail_status: str | None
    restart_count: int
    start_time: dt.datetime | None = None
    finish_time: dt.datetime | None = None


@dataclass(frozen=True)
class ContainerGroupState:
    id: str
    name: str
    provisioning_state: str | None
    state: str | None
    containers: tuple[ContainerState, ...]

    @property
    def finished(self) -> bool:
        """Every container has ended (or the group failed to provision)."""
        if (self.provisioning_state or "").lower() == "failed":
            return True
        return bool(self.containers) and all((c.state or "").lower() == "terminated" for c in self.containers)

    @property
    def succeeded(self) -> bool:
        return self.finished and all(c.exit_code == 0 for c in self.containers)


def _tag_matches(tags: Mapping[str, str], key: str, value: str) -> bool:
    # Azure tag names are case-insensitive; values are case-sensitive.
    for name, actual in tags.items():
        if name.lower() == key.lower():
            return value == "*" or actual == value
    return False
