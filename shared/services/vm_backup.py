"""The VM use cases behind the activities: discover, snapshot, record points, snapshot retention.

Each class takes its ports through the constructor and has one ``run(message) -> message``; the
activities in ``functions/activities`` only convert dicts. Secrets never pass through here: the
repository's passphrase stays a reference, SAS URLs are granted by the worker.
"""

from __future__ import annotations

import hashlib
import logging

from shared.azure.compute import TAG_POLICY, snapshot_name, snapshot_tags
from shared.azure.model import VmDisk, VmInfo
from shared.azure.ports import DiskSnapshots, VmInventory
from shared.core.clock import Clock, format_time
from shared.core.errors import BulwarkError, UnsupportedDiskError

from .job_spec import blob_snapshot_id
from .messages import (
    DiscoverRequest,
    DiskTarget,
    RecordPointsRequest,
    RecordPointsResult,
    RetentionRequest,
    RetentionResult,
    SessionPlan,
    SessionRecord,
    SnapshotRequest,
    SnapshotResult,
    VmTarget,
)
from .plan import Policies, SnapshotRef
from .ports import BlobSnapshots, PointCatalog, SessionCatalog

__all__ = [
    "TAG_LUN",
    "TAG_VM",
    "ApplySnapshotRetention",
    "DiscoverVms",
    "RecordPoints",
    "RecordSession",
    "SnapshotDisk",
    "session_key",
]

TAG_VM = "bulwark-vm"
TAG_LUN = "bulwark-lun"
log = logging.getLogger(__name__)


def session_key(session_id: str) -> str:
    """16 hex characters naming a session in resource names (snapshot names keep 24 characters of it:
    a slot id such as ``long-policy-name@20240331T010000Z`` would lose its time there)."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


class DiscoverVms:
    """The VMs a policy protects now, each with its disks."""

    def __init__(self, policies: Policies, inventory: VmInventory) -> None:
        self._policies = policies
        self._inventory = inventory

    def run(self, request: DiscoverRequest) -> SessionPlan:
        plan = self._policies.get_plan(request.policy_id)
        found = self._inventory.discover(plan.selection)
        if plan.includes is not None:
            found = [vm for vm in found if plan.includes(vm.id, vm.tags)]
        return SessionPlan(
            policy_id=plan.policy_id,
            session_id=request.session_id,
            concurrency=plan.concurrency,
            image_level_enabled=plan.image_level,
            vms=tuple(_target(vm) for vm in found),
            workers_in_flight=plan.workers_in_flight,
        )


def _target(vm: VmInfo) -> VmTarget:
    return VmTarget(
        vm_id=vm.id,
        name=vm.name,
        resource_group=vm.resource_group,
        location=vm.location,
        disks=tuple(_disk(disk) for disk in vm.disks),
    )


def _disk(disk: VmDisk) -> DiskTarget:
    if disk.managed_disk_id:
        return DiskTarget(disk.managed_disk_id, disk.name, disk.lun, True, disk.size_bytes)
    if disk.vhd_uri:
        return DiskTarget(disk.vhd_uri, disk.name, disk.lun, False, disk.size_bytes)
    raise UnsupportedDiskError(f"disk '{disk.name}' is neither a managed disk nor a VHD blob")


class SnapshotDisk:
    """One disk's snapshot for a session: managed -> incremental snapshot in the VM's resource group;
    unmanaged -> a blob snapshot of its VHD. Retried activities get the same snapshot back."""

    def __init__(self, inventory: VmInventory, snapshots: DiskSnapshots, blobs: BlobSnapshots | None = None) -> None:
        self._inventory = inventory
        self._snapshots = snapshots
        self._blobs = blobs

    def run(self, request: SnapshotRequest) -> SnapshotResult:
        disk = request.disk
        tags = snapshot_tags(request.policy_id, request.session_id, disk.name)
        tags[TAG_VM] = request.vm_id[:256]
        tags[TAG_LUN] = disk.lun_label
        if not disk.managed:
            if self._blobs is None:
                raise UnsupportedDiskError(
                    f"disk '{disk.name}' is an unmanaged VHD and this app has no blob snapshot adapter",
                    hint="convert the VM to managed disks",
                )
            stamp = self._blobs.create_snapshot(
                disk.disk_id, metadata={k.replace("-", "_"): v for k, v in tags.items()}
            )
            return SnapshotResult(disk.disk_id, blob_snapshot_id(disk.disk_id, stamp), stamp, managed=False)
        info = self._inventory.get_disk(disk.disk_id)
        name = snapshot_name(info.id, session_key(request.session_id))
        snapshot = self._snapshots.create_snapshot(info, resource_group=request.resource_group, name=name, tags=tags)
        log.info("session %s: snapshot %s of disk %s", request.session_id, snapshot.name, info.name)
        return SnapshotResult(info.id, snapshot.id, format_time(snapshot.time_created))


class RecordPoints:
    def __init__(self, catalog: PointCatalog) -> None:
        self._catalog = catalog

    def run(self, request: RecordPointsRequest) -> RecordPointsResult:
        self._catalog.record_points(request.points)
        return RecordPointsResult(len(request.points))


class RecordSession:
    def __init__(self, catalog: SessionCatalog) -> None:
        self._catalog = catalog

    def run(self, record: SessionRecord) -> SessionRecord:
        self._catalog.record_session(record)
        return record


class ApplySnapshotRetention:
    """Delete the policy's old snapshots of a VM's disks: each disk keeps the policy's number of
    newest snapshots, and the snapshot its last image-level backup was read from (the base of the
    next diff) stays until a newer image-level point exists (the seed's rule)."""

    def __init__(self, policies: Policies, snapshots: DiskSnapshots, catalog: PointCatalog, clock: Clock) -> None:
        self._policies = policies
        self._snapshots = snapshots
        self._catalog = catalog
        self._clock = clock

    def run(self, request: RetentionRequest) -> RetentionResult:
        chain: list[SnapshotRef] = []
        protected: set[str] = set()
        for disk_id in request.disk_ids:
            snapshots = self._snapshots.snapshot_chain(
                disk_id, resource_group=request.resource_group, tags={TAG_POLICY: request.policy_id}
            )
            chain.extend(SnapshotRef(s.id, disk_id, s.time_created) for s in snapshots)
            last = self._catalog.last_image_point(request.policy_id, request.vm_id, disk_id)
            if last is not None:
                protected.add(last.snapshot_id)
        known = {ref.snapshot_id.lower(): ref.snapshot_id for ref in chain}
        protected = {known.get(p.lower(), p) for p in protected}
        doomed = self._policies.snapshots_to_delete(request.policy_id, chain, self._clock.now(), protected)
        deleted: list[str] = []
        for snapshot_id in doomed:
            try:
                self._snapshots.delete_snapshot(snapshot_id)
            except BulwarkError as exc:
                log.warning("retention: could not delete %s: %s", snapshot_id, exc)
                raise
            deleted.append(snapshot_id)
        kept = tuple(ref.snapshot_id for ref in chain if ref.snapshot_id not in set(deleted))
        return RetentionResult(
            deleted=tuple(deleted),
            kept=kept,
            protected=tuple(sorted(p for p in protected if p in set(kept))),
        )
