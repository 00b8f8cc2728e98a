"""What the catalog records: backup sessions with their per-resource results, and restore points.

Field names are the JSON names (the HTTP API returns these documents; :func:`catalog_components`
describes them for its OpenAPI description). Times are timezone-aware and stored as UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from shared.core.errors import FieldProblem, IntegrityError, InvalidDocumentError, UsageError
from shared.policy.azure_ids import ResourceKind
from shared.policy.codec import StringFormat, decode, encode, schema_definitions, show, spec
from shared.policy.formats import POLICY_ID, RESOURCE_ID

__all__ = [
    "CATALOG_ID",
    "PointDisk",
    "PointKind",
    "ResourceResult",
    "RestorePoint",
    "Session",
    "Status",
    "TriggerKind",
    "catalog_components",
    "check_point",
    "check_same_run",
    "check_session",
    "overall_status",
    "point_from_dict",
    "session_from_dict",
    "to_dict",
]

T = TypeVar("T")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@:._-]{0,127}$")


def _catalog_id(text: str) -> tuple[str, str] | None:
    if _ID.match(text):
        return None
    return f"{show(text)} is not a catalog id", "use 1-128 letters, digits and '@:._-', starting with a letter or digit"


CATALOG_ID = StringFormat(
    "catalog-id",
    "a session, point or snapshot id: 1-128 letters, digits and @:._- (valid in storage keys and instance ids)",
    _catalog_id,
    pattern=_ID.pattern,
)


class TriggerKind(StrEnum):
    SCHEDULE = "schedule"
    ON_DEMAND = "on_demand"


class Status(StrEnum):
    RUNNING = "Running"
    SUCCESS = "Success"
    WARNING = "Warning"
    FAILED = "Failed"


class PointKind(StrEnum):
    SNAPSHOT = "snapshot"
    """Cloud-native snapshots of a VM's disks (``snapshot_ids``), outside the repository."""
    IMAGE = "image"
    """An image-level backup of a VM in the repository, made from ``snapshot_ids``."""
    BACPAC = "bacpac"
    """A SQL database's BACPAC in the repository."""


@dataclass(frozen=True)
class ResourceResult:
    """How one VM or database fared in a session."""

    resource_id: str = field(metadata=spec("the VM or SQL database", format=RESOURCE_ID))
    kind: ResourceKind = field(metadata=spec("vm or sql_database"))
    status: Status = field(metadata=spec("Running until the resource is done"))
    reason: str = field(default="", metadata=spec("why it failed or warned, for people", max_length=4000))
    started: dt.datetime | None = field(default=None, metadata=spec("when work on it began"))
    ended: dt.datetime | None = field(default=None, metadata=spec("when work on it ended"))
    bytes_read: int = field(default=0, metadata=spec("bytes read from the source", minimum=0))
    bytes_stored: int = field(default=0, metadata=spec("new bytes written to the repository", minimum=0))
    snapshot_ids: tuple[str, ...] = field(
        default=(), metadata=spec("snapshots taken (ARM ids or blob snapshot times)", max_items=256)
    )
    point_ids: tuple[str, ...] = field(
        default=(), metadata=spec("restore points recorded for it", format=CATALOG_ID, max_items=16)
    )

    @property
    def duration(self) -> dt.timedelta | None:
        return self.ended - self.started if self.started and self.ended else None


@dataclass(frozen=True)
class Session:
    """One run of a policy."""

    session_id: str = field(metadata=spec("the session's id (its orchestration instance id)", format=CATALOG_ID))
    policy_id: str = field(metadata=spec("the policy that ran", format=POLICY_ID))
    trigger: TriggerKind = field(metadata=spec("the schedule, or someone asking"))
    started: dt.datetime = field(metadata=spec("when the session began"))
    status: Status = field(metadata=spec("Running, then Success, Warning or Failed"))
    ended: dt.datetime | None = field(default=None, metadata=spec("when it ended"))
    slot: dt.datetime | None = field(default=None, metadata=spec("the scheduled slot it ran for"))
    image_backup: bool = field(default=False, metadata=spec("whether it made image-level backups"))
    reason: str = field(default="", metadata=spec("a summary for people", max_length=4000))
    resources: tuple[ResourceResult, ...] = field(
        default=(), metadata=spec("per resource, in the order they started", max_items=10_000)
    )
    points_forgotten: tuple[str, ...] = field(
        default=(),
        metadata=spec("image points the policy's retention removed after it", format=CATALOG_ID, max_items=10_000),
    )

    @property
    def duration(self) -> dt.timedelta | None:
        return self.ended - self.started if self.ended else None

    @property
    def bytes_read(self) -> int:
        return sum(result.bytes_read for result in self.resources)

    @property
    def bytes_stored(self) -> int:
        return sum(result.bytes_stored for result in self.resources)


@dataclass(frozen=True)
class PointDisk:
    """One disk of a VM's point: where it was attached and what restores it."""

    disk_id: str = field(metadata=spec("the disk: an ARM id, or an unmanaged disk's VHD blob URL", max_length=2048))
    lun: int | None = field(default=None, metadata=spec("its LUN; null for the OS disk", minimum=0, maximum=63))
    snapshot_id: str = field(default="", metadata=spec("the snapshot taken of it", max_length=2048))
    repository_point_id: str | None = field(default=None, metadata=spec("its repository point (image points)"))
    size: int = field(default=0, metadata=spec("the disk's size in bytes", minimum=0))


@dataclass(frozen=True)
class RestorePoint:
    """A state of one resource that can be restored."""

    point_id: str = field(metadata=spec("the catalog's id of the point", format=CATALOG_ID))
    resource_id: str = field(metadata=spec("the VM or SQL database", format=RESOURCE_ID))
    kind: PointKind = field(metadata=spec("snapshot, image or bacpac"))
    time: dt.datetime = field(metadata=spec("the moment the point captures"))
    policy_id: str = field(metadata=spec("the policy that made it", format=POLICY_ID))
    session_id: str = field(metadata=spec("the session that made it", format=CATALOG_ID))
    size: int = field(default=0, metadata=spec("bytes of source data it represents", minimum=0))
    snapshot_ids: tuple[str, ...] = field(
        default=(), metadata=spec("snapshots it is (snapshot) or was made from (image)", max_items=256)
    )
    repository_point_id: str | None = field(
        default=None, metadata=spec("the point's id in the repository (image, bacpac)")
    )
    disks: tuple[PointDisk, ...] = field(
        default=(), metadata=spec("a VM point's disks: the OS disk, then data disks by LUN", max_items=64)
    )


def overall_status(results: Iterable[ResourceResult]) -> Status:
    """A finished session's status: the worst of its resources; Warning when it had none."""
    statuses = {result.status for result in results}
    for status in (Status.RUNNING, Status.FAILED, Status.WARNING, Status.SUCCESS):
        if status in statuses:
            return status
    return Status.WARNING


def to_dict(value: Session | RestorePoint) -> dict[str, Any]:
    document: dict[str, Any] = encode(value)
    return document


def session_from_dict(document: object) -> Session:
    return _read(Session, document, "the session")


def point_from_dict(document: object) -> RestorePoint:
    return _read(RestorePoint, document, "the restore point")


def check_session(session: Session) -> None:
    """Raise InvalidDocumentError unless ``session`` is fit to store."""
    times = [("started", session.started), ("ended", session.ended), ("slot", session.slot)]
    for index, result in enumerate(session.resources):
        times += [(f"resources[{index}].started", result.started), (f"resources[{index}].ended", result.ended)]
    problems = _naive(times) or _field_problems(session)
    if not problems and session.ended is not None and session.ended < session.started:
        problems.append(FieldProblem("ended", "is before started", "record when the session really ended"))
    if problems:
        raise InvalidDocumentError(f"session '{session.session_id}'", problems)


def check_point(point: RestorePoint) -> None:
    """Raise InvalidDocumentError unless ``point`` is fit to store."""
    problems = _naive([("time", point.time)]) or _field_problems(point)
    if problems:
        raise InvalidDocumentError(f"restore point '{point.point_id}'", problems)


def check_same_run(new: Session, *, policy_id: str, started: dt.datetime) -> None:
    """A session id names one run for good: ``new`` must have the stored policy and start time."""
    if new.policy_id != policy_id or new.started != started:
        raise UsageError(
            f"Session '{new.session_id}' exists already for policy '{policy_id}', started {started.isoformat()}.",
            hint="a session id names one run; give a new run a new id",
        )


def catalog_components(ref_prefix: str = "#/components/schemas/") -> dict[str, dict[str, Any]]:
    """OpenAPI 3.1 ``components.schemas`` entries for Session and RestorePoint."""
    return {
        **schema_definitions(Session, ref_prefix=ref_prefix),
        **schema_definitions(RestorePoint, ref_prefix=ref_prefix),
    }


def _field_problems(value: Session | RestorePoint) -> list[FieldProblem]:
    """The codec's checks (formats, bounds) on a value built in code."""
    _, problems = decode(type(value), encode(value))
    return problems


def _naive(times: list[tuple[str, dt.datetime | None]]) -> list[FieldProblem]:
    """Naive datetimes, which encoding would silently read as local time."""
    return [
        FieldProblem(path, "has no time zone", "use an aware datetime, e.g. datetime.now(UTC)")
        for path, moment in times
        if moment is not None and moment.tzinfo is None
    ]


def _read(cls: type[T], document: object, what: str) -> T:
    value, problems = decode(cls, document)
    if value is None:
        details = "; ".join(str(problem) for problem in problems[:3])
        raise IntegrityError(
            f"The stored record of {what} is not valid: {details}.",
            hint="it was written by another version or changed outside Bulwark",
        )
    return value
