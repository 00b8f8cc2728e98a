"""The PointCatalog and SessionCatalog ports over ``shared.catalog`` (Table storage in the app).

The catalog keeps one image-level restore point per VM and session (kind ``image``): its
``snapshot_ids`` are the disks' snapshots in disk order (OS disk, then by LUN), and
``repository_point_id`` the matching repository points, comma-separated in the same order (one
repository point per disk; the catalog model holds a single id field). Per-disk facts (which
repository point and snapshot a disk's last backup made) come from that session's job-status
record of the disk (``job_id_for(session, disk)``): the worker wrote them and nobody edits them.
Each point's ``disks`` lists every disk with its LUN, snapshot, repository point and size: what a
restore needs to rebuild the VM with the same layout.

Every session also records a snapshot point (kind ``snapshot``) per VM whose disks were all
snapshotted: the fast restore path (disks created from the snapshots) while they are retained.

Sessions are saved as the catalog's ``Session`` with one ``ResourceResult`` per VM.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from shared.catalog.model import PointDisk, PointKind, ResourceResult, RestorePoint, Session, Status, TriggerKind
from shared.catalog.port import Catalog
from shared.core.clock import parse_time
from shared.policy.azure_ids import ResourceKind

from .job_status import JobStatusStore
from .messages import IMAGE_LEVEL, ON_DEMAND, PointRecord, SessionRecord
from .messages import ResourceResult as SessionResourceResult
from .sql_backup import bacpac_point_id
from .vm_backup import session_key
from .worker_jobs import job_id_for

__all__ = ["CatalogRecords", "image_point_id", "snapshot_point_id"]

_SEARCH = 50
_TEXT_LIMIT = 4000


def snapshot_point_id(session_id: str, vm_id: str) -> str:
    """The catalog id of a VM's snapshot point in a session (a valid catalog id)."""
    return f"snap-{session_key(session_id)}-{hashlib.sha256(vm_id.lower().encode()).hexdigest()[:12]}"


def image_point_id(session_id: str, vm_id: str) -> str:
    """The catalog id of a VM's image-level point in a session (a valid catalog id)."""
    return f"img-{session_key(session_id)}-{hashlib.sha256(vm_id.lower().encode()).hexdigest()[:12]}"


class CatalogRecords:
    def __init__(self, catalog: Catalog, jobs: JobStatusStore) -> None:
        self._catalog = catalog
        self._jobs = jobs

    # -- points ----------------------------------------------------------------------------------

    def record_points(self, points: Sequence[PointRecord]) -> None:
        groups: dict[tuple[str, str], list[PointRecord]] = {}
        for point in points:
            groups.setdefault((point.session_id, point.vm_id), []).append(point)
        for (session_id, vm_id), members in groups.items():
            ordered = sorted(members, key=lambda p: -1 if p.lun is None else p.lun)
            first = ordered[0]
            self._catalog.add_point(
                RestorePoint(
                    point_id=image_point_id(session_id, vm_id),
                    resource_id=vm_id,
                    kind=PointKind.IMAGE,
                    time=min(parse_time(p.time) for p in ordered),
                    policy_id=first.policy_id,
                    session_id=session_id,
                    size=sum(p.size_bytes for p in ordered),
                    snapshot_ids=tuple(p.snapshot_id for p in ordered),
                    repository_point_id=",".join(p.point_id for p in ordered),
                    disks=tuple(PointDisk(p.disk_id, p.lun, p.snapshot_id, p.point_id, p.size_bytes) for p in ordered),
                )
            )

    def last_image_point(self, policy_id: str, vm_id: str, disk_id: str) -> PointRecord | None:
        candidates = self._catalog.list_points(vm_id, kind=PointKind.IMAGE, limit=_SEARCH)
        latest = next((p for p in candidates if p.policy_id == policy_id), None)
        if latest is None:
            return None
        record = self._jobs.get(job_id_for(latest.session_id, disk_id))
        if record is None or record.state != "succeeded" or not record.result:
            return None  # this disk was not backed up in that session: the next backup reads it whole
        result = record.result
        return PointRecord(
            point_id=str(result["point_id"]),
            policy_id=policy_id,
            session_id=latest.session_id,
            vm_id=vm_id,
            disk_id=disk_id,
            lun=None,
            snapshot_id=str(result["snapshot_id"]),
            job_id=record.job_id,
            time=str(result.get("time", "")),
            repository=str(result.get("repository", "")),
            parent_point_id=result.get("parent_point_id"),
            size_bytes=int(result.get("size_bytes", 0)),
            bytes_read=int(result.get("bytes_read", 0)),
            bytes_stored=int(result.get("bytes_stored", 0)),
            kind=IMAGE_LEVEL,
        )

    # -- sessions --------------------------------------------------------------------------------

    def record_session(self, session: SessionRecord) -> None:
        scheduled = session.slot != ON_DEMAND
        resources = []
        for result in session.resources:
            backed_up = [d.point_id for d in result.disks if d.point_id]
            # A session holds VMs and SQL databases; the resource id says which.
            is_database = "/providers/microsoft.sql/" in result.resource_id.lower()
            point_id = (
                bacpac_point_id(session.session_id, result.resource_id)
                if is_database
                else image_point_id(session.session_id, result.resource_id)
            )
            resources.append(
                ResourceResult(
                    resource_id=result.resource_id,
                    kind=ResourceKind.SQL_DATABASE if is_database else ResourceKind.VM,
                    status=Status(result.status),
                    reason="; ".join(result.reasons)[:_TEXT_LIMIT],
                    started=parse_time(result.started) if result.started else None,
                    ended=parse_time(result.finished) if result.finished else None,
                    bytes_read=result.bytes_read,
                    bytes_stored=result.bytes_stored,
                    snapshot_ids=tuple(d.snapshot_id for d in result.disks if d.snapshot_id),
                    point_ids=(point_id,) if backed_up else (),
                )
            )
        for result in session.resources:
            self._record_snapshot_point(session, result)
        self._catalog.save_session(
            Session(
                session_id=session.session_id,
                policy_id=session.policy_id,
                trigger=TriggerKind.SCHEDULE if scheduled else TriggerKind.ON_DEMAND,
                started=parse_time(session.started),
                status=Status(session.status),
                ended=parse_time(session.finished),
                slot=parse_time(session.slot) if scheduled else None,
                image_backup=session.image_level,
                reason=session.reason[:_TEXT_LIMIT],
                resources=tuple(resources),
                points_forgotten=session.points_forgotten,
            )
        )

    def _record_snapshot_point(self, session: SessionRecord, result: SessionResourceResult) -> None:
        """A VM whose every disk was snapshotted gets a snapshot point: the fast restore path."""
        disks = sorted(result.disks, key=lambda d: -1 if d.lun is None else d.lun)
        if not disks or "/providers/microsoft.sql/" in result.resource_id.lower():
            return
        if any(not d.snapshot_id for d in disks):
            return  # a partial set of snapshots is not a consistent point of the VM
        self._catalog.add_point(
            RestorePoint(
                point_id=snapshot_point_id(session.session_id, result.resource_id),
                resource_id=result.resource_id,
                kind=PointKind.SNAPSHOT,
                time=parse_time(session.started),
                policy_id=session.policy_id,
                session_id=session.session_id,
                size=sum(d.size_bytes for d in disks),
                snapshot_ids=tuple(d.snapshot_id or "" for d in disks),
                disks=tuple(PointDisk(d.disk_id, d.lun, d.snapshot_id or "", size=d.size_bytes) for d in disks),
            )
        )
