"""Messages: what orchestrators, activities and the catalog pass around, as frozen dataclasses.

Every message turns into a JSON-safe dict with ``to_dict()`` and back with ``from_dict()``; the
Durable history only ever holds those dicts. No message carries a secret: resources travel as ids,
the repository's passphrase as a reference (``SecretRef``), SAS URLs not at all (the worker grants
its own). Requests carry the W3C ``traceparent`` of the span they run under (ids only; see
``shared.telemetry``), so one trace follows a session into its workers.

Flow of one session (names in ``functions/names.py``)::

    SessionRequest -> discover_vms(DiscoverRequest) -> SessionPlan
      per VmTarget: vm_backup_orchestrator(VmBackupRequest)
        per disk: snapshot_disk(SnapshotRequest) -> SnapshotResult
        per disk: start_backup_job(StartJobRequest) -> JobHandle
        poll_backup_jobs(PollJobsRequest) -> PollJobsResult (JobState per handle), until terminal
        record_restore_points(RecordPointsRequest) -> RecordPointsResult
        apply_snapshot_retention(RetentionRequest) -> RetentionResult
      -> ResourceResult
    record_session(SessionRecord) -> SessionRecord
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Self, TypeVar

from shared.core.errors import UsageError

from .job_spec import RepositoryRef, SecretRef

__all__ = [
    "IMAGE_LEVEL",
    "ON_DEMAND",
    "RESULT_FAILED",
    "RESULT_SUCCESS",
    "RESULT_WARNING",
    "DiscoverRequest",
    "DiskOutcome",
    "DiskTarget",
    "ForgottenPoints",
    "ImageRetentionPlan",
    "ImageRetentionRequest",
    "JobHandle",
    "JobState",
    "Message",
    "PointRecord",
    "PollJobsRequest",
    "PollJobsResult",
    "RecordPointsRequest",
    "RecordPointsResult",
    "ResourceResult",
    "RetentionRequest",
    "RetentionResult",
    "SessionPlan",
    "SessionProgress",
    "SessionRecord",
    "SessionRequest",
    "SnapshotRequest",
    "SnapshotResult",
    "StartJobRequest",
    "VmBackupRequest",
    "VmTarget",
    "from_plain",
    "to_plain",
    "worse",
]

ON_DEMAND = "on-demand"
IMAGE_LEVEL = "image-level"
RESULT_SUCCESS = "Success"
RESULT_WARNING = "Warning"
RESULT_FAILED = "Failed"
_SEVERITY = {RESULT_SUCCESS: 0, RESULT_WARNING: 1, RESULT_FAILED: 2}

_T = TypeVar("_T")


def worse(a: str, b: str) -> str:
    """The more severe of two results (Failed > Warning > Success)."""
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


# -- plain JSON <-> dataclasses --------------------------------------------------------------------


def to_plain(value: Any) -> Any:
    """A dataclass (recursively), mapping, tuple or list as JSON-safe plain data."""
    if is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, SecretRef | RepositoryRef):
            return value.to_dict()
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def from_plain(kind: Any, value: Any, where: str = "") -> Any:
    """Plain data as an instance of the type annotation ``kind`` (dataclasses, containers, optionals)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None:
            return None
        return from_plain(options[0], value, where)
    if kind in (SecretRef, RepositoryRef):
        if not isinstance(value, Mapping):
            raise UsageError(f"{where or 'value'} must be an object")
        return kind.from_dict(value)
    if isinstance(kind, type) and is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise UsageError(f"{where or kind.__name__} must be an object, not {type(value).__name__}")
        hints = typing.get_type_hints(kind)
        values: dict[str, Any] = {}
        for item in fields(kind):
            if item.name in value:
                values[item.name] = from_plain(hints[item.name], value[item.name], f"{where}{item.name}.")
        try:
            return kind(**values)
        except TypeError as exc:
            raise UsageError(f"{where or kind.__name__} is incomplete: {exc}") from None
    if origin in (list, tuple):
        args = typing.get_args(kind)
        items = [from_plain(args[0], v, where) for v in (value or [])]
        return items if origin is list else tuple(items)
    if origin in (dict, Mapping) or kind is Mapping:
        args = typing.get_args(kind) or (str, Any)
        return {str(k): from_plain(args[1], v, where) for k, v in (value or {}).items()}
    if kind is Any:
        return value
    if kind is float and isinstance(value, int):
        return float(value)
    if kind in (str, int, bool, float) and not isinstance(value, kind):
        raise UsageError(f"{where.rstrip('.') or 'value'} must be {kind.__name__}, not {type(value).__name__}")
    return value


class Message:
    """Mixin: ``to_dict``/``from_dict`` for a frozen dataclass of JSON-safe fields."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None) -> Self:
        result: Self = from_plain(cls, doc or {})
        return result


# -- orchestration messages -----------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRequest(Message):
    policy_id: str
    slot: str = ON_DEMAND
    image_level: bool = True
    traceparent: str = ""


@dataclass(frozen=True)
class DiscoverRequest(Message):
    policy_id: str
    session_id: str
    traceparent: str = ""


@dataclass(frozen=True)
class DiskTarget(Message):
    disk_id: str
    """The managed disk's resource id, or the VHD blob URL of an unmanaged disk."""
    name: str
    lun: int | None
    managed: bool = True
    size_bytes: int | None = None

    @property
    def lun_label(self) -> str:
        return "os" if self.lun is None else str(self.lun)


@dataclass(frozen=True)
class VmTarget(Message):
    vm_id: str
    name: str
    resource_group: str
    location: str
    disks: tuple[DiskTarget, ...] = ()


@dataclass(frozen=True)
class SessionPlan(Message):
    policy_id: str
    session_id: str
    concurrency: int
    image_level_enabled: bool
    vms: tuple[VmTarget, ...] = ()
    workers_in_flight: int = 0
    """Workers the session runs at once at most (the policy's concurrency.workers_in_flight; 0: no limit)."""


@dataclass(frozen=True)
class VmBackupRequest(Message):
    policy_id: str
    session_id: str
    image_level: bool
    vm: VmTarget
    traceparent: str = ""
    worker_slots: int = 0
    """Workers this VM may run at once (granted by the session); 0: one per disk, all at once."""


@dataclass(frozen=True)
class SnapshotRequest(Message):
    policy_id: str
    session_id: str
    vm_id: str
    resource_group: str
    disk: DiskTarget
    traceparent: str = ""


@dataclass(frozen=True)
class SnapshotResult(Message):
    disk_id: str
    snapshot_id: str
    time_created: str
    managed: bool = True


@dataclass(frozen=True)
class StartJobRequest(Message):
    policy_id: str
    session_id: str
    vm_id: str
    vm_location: str
    disk: DiskTarget
    snapshot_id: str
    attempt: int = 1
    traceparent: str = ""


@dataclass(frozen=True)
class JobHandle(Message):
    job_id: str
    attempt: int
    worker: str
    """The launcher's reference (a container group id, or a local process reference)."""
    disk_id: str
    snapshot_id: str
    lun: int | None = None
    parent_point_id: str | None = None
    previous_snapshot_id: str | None = None
    poll_seconds: int = 30
    deadline_seconds: int = 20 * 3600
    max_attempts: int = 3


@dataclass(frozen=True)
class PollJobsRequest(Message):
    jobs: tuple[JobHandle, ...]


@dataclass(frozen=True)
class JobState(Message):
    job_id: str
    attempt: int
    state: str
    """``running``, ``succeeded`` or ``failed``."""
    progress_bytes: int = 0
    retryable: bool = False
    reason: str = ""
    result: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def is_terminal(self) -> bool:
        return self.state in ("succeeded", "failed")


@dataclass(frozen=True)
class PollJobsResult(Message):
    jobs: tuple[JobState, ...]


@dataclass(frozen=True)
class PointRecord(Message):
    """A restore point as the catalog keeps it."""

    point_id: str
    policy_id: str
    session_id: str
    vm_id: str
    disk_id: str
    lun: int | None
    snapshot_id: str
    job_id: str
    time: str
    repository: str
    parent_point_id: str | None = None
    size_bytes: int = 0
    bytes_read: int = 0
    bytes_stored: int = 0
    kind: str = IMAGE_LEVEL


@dataclass(frozen=True)
class RecordPointsRequest(Message):
    points: tuple[PointRecord, ...]


@dataclass(frozen=True)
class RecordPointsResult(Message):
    recorded: int


@dataclass(frozen=True)
class RetentionRequest(Message):
    policy_id: str
    session_id: str
    vm_id: str
    resource_group: str
    disk_ids: tuple[str, ...]
    traceparent: str = ""


@dataclass(frozen=True)
class RetentionResult(Message):
    deleted: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    """Kept beyond the count because the last image-level backup of its disk used it."""


@dataclass(frozen=True)
class DiskOutcome(Message):
    disk_id: str
    lun: int | None
    snapshot_id: str | None = None
    point_id: str | None = None
    incremental: bool = False
    bytes_read: int = 0
    bytes_stored: int = 0
    error: str | None = None
    size_bytes: int = 0
    """The disk's size (0 when discovery did not know it, e.g. an unmanaged disk)."""


@dataclass(frozen=True)
class ResourceResult(Message):
    resource_id: str
    name: str
    status: str
    reasons: tuple[str, ...] = ()
    disks: tuple[DiskOutcome, ...] = ()
    snapshots_deleted: tuple[str, ...] = ()
    started: str = ""
    """When the session started this resource, and when it ended (orchestration time; set by the session)."""
    finished: str = ""

    @property
    def bytes_read(self) -> int:
        return sum(d.bytes_read for d in self.disks)

    @property
    def bytes_stored(self) -> int:
        return sum(d.bytes_stored for d in self.disks)


# -- image-level repository retention (shared.services.image_retention) ----------------------------


@dataclass(frozen=True)
class ImageRetentionRequest(Message):
    policy_id: str
    session_id: str
    vm_ids: tuple[str, ...]
    location: str
    """Where the VMs are: the worker's region when the policy's repository names none."""
    now: str
    traceparent: str = ""


@dataclass(frozen=True)
class ImageRetentionPlan(Message):
    policy_id: str
    session_id: str
    location: str
    point_ids: tuple[str, ...] = ()
    """The catalog's VM points to forget, oldest first."""
    repository_point_ids: tuple[str, ...] = ()
    """Their disks' repository points."""
    kept: int = 0
    traceparent: str = ""
    """The orchestration's span; the activity that starts the worker puts its own in the job spec."""


@dataclass(frozen=True)
class ForgottenPoints(Message):
    policy_id: str
    session_id: str
    vm_ids: tuple[str, ...]
    point_ids: tuple[str, ...]
    """The catalog points the plan dropped."""
    repository_point_ids: tuple[str, ...]
    """The repository points the worker forgot (or found gone)."""
    traceparent: str = ""


@dataclass(frozen=True)
class SessionProgress(Message):
    """The session's custom status: what the portal shows while it runs."""

    phase: str
    resources_total: int = 0
    resources_done: int = 0
    bytes_read: int = 0
    bytes_stored: int = 0
    failed: int = 0


@dataclass(frozen=True)
class SessionRecord(Message):
    """A finished session as the catalog keeps it (and the orchestration's output)."""

    session_id: str
    policy_id: str
    slot: str
    image_level: bool
    started: str
    finished: str
    status: str
    resources: tuple[ResourceResult, ...] = ()
    points_forgotten: tuple[str, ...] = ()
    """Catalog image points the policy's image retention removed after this session."""
    reason: str = ""

    @property
    def bytes_read(self) -> int:
        return sum(r.bytes_read for r in self.resources)

    @property
    def bytes_stored(self) -> int:
        return sum(r.bytes_stored for r in self.resources)


# -- SQL (BACPAC) backup messages ------------------------------------------------------------------
#
#   discover_sql_databases(DiscoverRequest) -> SqlPlan
#   per SqlTarget: sql_backup_orchestrator(SqlBackupRequest) -> ResourceResult (one DiskOutcome: the database)
#     sql_preflight(SqlBackupRequest) -> SqlPreflightResult
#     staging: sql_copy_to_staging(SqlBackupRequest) -> SqlCopyResult
#     sql_export_bacpac(SqlExportRequest) -> SqlExportResult   (the storage SAS is made inside)
#     start_bacpac_job(StartBacpacJobRequest) -> JobHandle; poll_backup_jobs / stop_backup_jobs
#     record_bacpac_point(RecordPointsRequest) -> RecordPointsResult   (PointRecord.kind == BACPAC)
#     sql_cleanup(SqlBackupRequest) -> SqlCleanupResult   (always)

BACPAC = "bacpac"
SQL_DIRECT = "direct"
SQL_STAGING = "staging"


@dataclass(frozen=True)
class SqlTarget(Message):
    database_id: str
    name: str
    server_id: str
    resource_group: str
    location: str


@dataclass(frozen=True)
class SqlPlan(Message):
    policy_id: str
    session_id: str
    mode: str = SQL_DIRECT
    """``direct`` or ``staging``."""
    staging_server: str | None = None
    staging_region: str | None = None
    databases: tuple[SqlTarget, ...] = ()


@dataclass(frozen=True)
class SqlBackupRequest(Message):
    policy_id: str
    session_id: str
    database: SqlTarget
    mode: str = SQL_DIRECT
    staging_server: str | None = None
    staging_region: str | None = None
    traceparent: str = ""


@dataclass(frozen=True)
class SqlPreflightResult(Message):
    database_id: str
    exportable: bool
    reason: str = ""
    size_bytes: int | None = None


@dataclass(frozen=True)
class SqlCopyResult(Message):
    copy_id: str
    name: str


@dataclass(frozen=True)
class SqlExportRequest(Message):
    policy_id: str
    session_id: str
    database: SqlTarget
    export_from: str
    """The database the export service reads: the source itself, or its staging copy."""
    traceparent: str = ""


@dataclass(frozen=True)
class SqlExportResult(Message):
    exported: bool
    blob_url: str = ""
    """The staging BACPAC's address, without any SAS."""
    reason: str = ""
    request_id: str = ""
    pending: bool = False
    """The export runs on: ask again (sql_poll_export) after ``poll_seconds``."""
    status_url: str = ""
    """ARM's operation URLs to follow it by (no secret in them)."""
    result_url: str = ""
    poll_seconds: int = 30


@dataclass(frozen=True)
class SqlExportPoll(Message):
    session_id: str
    export_from: str
    blob_url: str
    status_url: str
    result_url: str
    poll_seconds: int = 30
    traceparent: str = ""


@dataclass(frozen=True)
class StartBacpacJobRequest(Message):
    policy_id: str
    session_id: str
    database: SqlTarget
    blob_url: str
    exported_from: str
    worker_location: str
    attempt: int = 1
    traceparent: str = ""


@dataclass(frozen=True)
class SqlCleanupResult(Message):
    copy_deleted: str | None = None
    blob_deleted: str | None = None


__all__ += [
    "BACPAC",
    "SQL_DIRECT",
    "SQL_STAGING",
    "SqlBackupRequest",
    "SqlCleanupResult",
    "SqlCopyResult",
    "SqlExportRequest",
    "SqlExportPoll",
    "SqlExportResult",
    "SqlPlan",
    "SqlPreflightResult",
    "SqlTarget",
    "StartBacpacJobRequest",
]
