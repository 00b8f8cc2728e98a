"""VM and disk restore: the use cases behind the restore orchestration's activities.

    POST /api/restores/vm|disk -> VmRestores.plan(RestoreRequest) -> RestorePlan (checked, nothing created)
    restore_vm_orchestrator(RestorePlan):
      per disk: create_restore_disk -> from its snapshot (the fast path: Azure copies it), or an
                empty upload disk of the point's size that an image-restore worker fills
      repository path: start_restore_job per disk, poll_backup_jobs until each ends (retried)
      VM restores: create_restored_vm (same LUNs; replacing the original: delete it, keeping its
                   disks, create the new one under its name, and put the original back on failure)
      on failure: delete_restore_disks (nothing half-created stays)

Checks happen in ``plan`` before anything is created, so bad requests fail fast with a 4xx: the
point and the source VM exist, the target resource group exists, the VM name is free (or the
original is replaced with explicit confirmation), the snapshot path stays in the snapshots' region.
Every disk a restore creates carries the tag ``bulwark-restore=<restore id>`` and a name derived
from it, so a retried activity finds its disk instead of making a second one.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.azure.model import VmInfo
from shared.azure.ports import DiskAccess, DiskSnapshots, RestoreTargets, VmInventory
from shared.catalog.model import PointDisk, PointKind, RestorePoint
from shared.catalog.port import Catalog
from shared.core.clock import Clock, format_time
from shared.core.errors import (
    AzureConflictError,
    AzureResourceNotFoundError,
    FieldProblem,
    InvalidDocumentError,
    PointNotFoundError,
    UsageError,
)
from shared.telemetry.spans import current_traceparent

from .job_spec import JobSource, JobSpec, RepositoryRef
from .job_status import JobStatus, JobStatusStore
from .messages import JobHandle, Message
from .plan import Policies
from .ports import UploadTargetFactory, WorkerLauncher
from .worker_jobs import JobSettings, worker_name

__all__ = [
    "RESTORE_TAG",
    "DiskPlan",
    "RestorePlan",
    "RestoreRequest",
    "RestoreTarget",
    "StartRestoreJob",
    "VmRestores",
    "restore_disk_name",
]

log = logging.getLogger(__name__)

RESTORE_TAG = "bulwark-restore"
SOURCES = ("auto", "snapshot", "repository")
WHAT = ("vm", "disk")


@dataclass(frozen=True)
class RestoreTarget(Message):
    resource_group: str = ""
    """Where the restored disks (and VM) go; default: the source VM's group."""
    name: str = ""
    """The new VM's name (VM restores) or the new disk's name (disk restores); replacing: ignored."""
    region: str = ""
    """Default: the source VM's region. The snapshot path stays in the snapshots' region."""
    vm_size: str = ""
    nic_ids: tuple[str, ...] = ()
    """Network interfaces of a new VM (Azure needs one that no other VM uses); replacing: the original's."""


@dataclass(frozen=True)
class RestoreRequest(Message):
    restore_id: str
    vm_id: str
    point_id: str
    what: str = "vm"
    """``vm`` (every disk and a VM) or ``disk`` (one disk, no VM)."""
    lun: str = ""
    """Disk restores: ``os`` or a data disk's LUN."""
    source: str = "auto"
    """``snapshot`` (disks copied from the point's snapshots), ``repository`` (written from the
    image-level point by a worker) or ``auto`` (snapshots while they exist, else the repository)."""
    target: RestoreTarget = field(default_factory=RestoreTarget)
    replace_original: bool = False
    confirm: bool = False


@dataclass(frozen=True)
class DiskPlan(Message):
    name: str
    lun: int | None
    size: int
    source_disk_id: str
    snapshot_id: str | None = None
    repository_point_id: str | None = None
    sku: str | None = None
    os_type: str | None = None


@dataclass(frozen=True)
class RestorePlan(Message):
    restore_id: str
    what: str
    source: str
    """``snapshot`` or ``repository``: what this restore reads."""
    vm_id: str
    point_id: str
    resource_group: str
    region: str
    disks: tuple[DiskPlan, ...]
    vm_name: str = ""
    vm_size: str = ""
    os_type: str = ""
    nic_ids: tuple[str, ...] = ()
    replace_original: bool = False
    repository: RepositoryRef | None = None
    worker_region: str = ""
    traceparent: str = ""
    """The restore's trace (ids only): its activities and workers join it."""


@dataclass(frozen=True)
class CreatedDisk(Message):
    disk_id: str
    lun: int | None


@dataclass(frozen=True)
class CreateDiskRequest(Message):
    plan: RestorePlan
    disk: DiskPlan


@dataclass(frozen=True)
class StartRestoreJob(Message):
    plan: RestorePlan
    disk: DiskPlan
    disk_id: str
    attempt: int = 1


@dataclass(frozen=True)
class CreateVmRequest(Message):
    plan: RestorePlan
    disks: tuple[CreatedDisk, ...]


@dataclass(frozen=True)
class DeleteDisksRequest(Message):
    disk_ids: tuple[str, ...]


def restore_disk_name(restore_id: str, vm_name: str, lun: int | None) -> str:
    """A disk name unique to the restore and stable across retries (ARM: at most 80 characters)."""
    key = hashlib.sha256(restore_id.encode()).hexdigest()[:8]
    label = "os" if lun is None else f"lun{lun}"
    return f"{vm_name[:50]}-{label}-restored-{key}"


class VmRestores:
    def __init__(
        self,
        *,
        catalog: Catalog,
        policies: Policies,
        inventory: VmInventory,
        snapshots: DiskSnapshots,
        targets: RestoreTargets,
        access: DiskAccess,
        launcher: WorkerLauncher,
        uploads: UploadTargetFactory,
        status: JobStatusStore,
        jobs: JobSettings,
        subscription_id: str,
        clock: Clock,
    ) -> None:
        self._subscription_id = subscription_id
        self._catalog = catalog
        self._policies = policies
        self._inventory = inventory
        self._snapshots = snapshots
        self._targets = targets
        self._access = access
        self._launcher = launcher
        self._uploads = uploads
        self._status = status
        self._jobs = jobs
        self._clock = clock

    # -- planning: every check before anything is created ------------------------------------------

    def plan(self, request: RestoreRequest) -> RestorePlan:
        _check_fields(request)
        point = self._point(request.vm_id, request.point_id)
        disks = _chosen_disks(point, request)
        source_vm = self._source_vm(request)
        target = request.target
        if request.replace_original:
            if source_vm is None:
                raise UsageError(
                    f"the original VM {request.vm_id} no longer exists, so there is nothing to replace",
                    hint="restore to a new VM instead (leave replace_original false and give target.name)",
                )
            resource_group, vm_name, region = source_vm.resource_group, source_vm.name, source_vm.location
        else:
            resource_group = target.resource_group or (source_vm.resource_group if source_vm else "")
            region = target.region or (source_vm.location if source_vm else "")
            vm_name = target.name
            if not resource_group or not region:
                raise InvalidDocumentError(
                    "the restore request",
                    [
                        FieldProblem(
                            "target",
                            "names no resource group or region",
                            "give target.resource_group and target.region (the source VM is gone)",
                        )
                    ],
                )
        existing = {d.name.lower() for d in self._targets.list_disks(resource_group)}  # or: no such group
        vm_size = target.vm_size or (source_vm.vm_size or "" if source_vm else "")
        self._check_region(region, vm_size if request.what == "vm" else "")
        if request.what == "vm" and not request.replace_original:
            self._require_free_vm_name(resource_group, vm_name)
        source = self._source(request, point, disks, region)
        repository = None
        worker_region = ""
        if source == "repository":
            policy = self._policies.get_plan(point.policy_id)
            repository = policy.repository
            worker_region = region  # the heavy writing runs next to the disks it writes
        names = [
            target.name
            if request.what == "disk" and target.name
            else restore_disk_name(request.restore_id, vm_name or (source_vm.name if source_vm else "vm"), disk.lun)
            for disk in disks
        ]
        taken = [name for name in names if name.lower() in existing]
        if taken:
            raise AzureConflictError(
                f"a disk named {', '.join(taken)} already exists in resource group {resource_group}",
                hint="choose another target.name (a restore never writes over a disk)",
            )
        planned = tuple(self._disk_plan(source, disk, name, source_vm) for disk, name in zip(disks, names, strict=True))
        return RestorePlan(
            restore_id=request.restore_id,
            what=request.what,
            source=source,
            vm_id=request.vm_id,
            point_id=point.point_id,
            resource_group=resource_group,
            region=region,
            disks=planned,
            vm_name=vm_name,
            vm_size=vm_size,
            os_type=(source_vm.os_type or "") if source_vm else (planned[0].os_type or ""),
            nic_ids=source_vm.nic_ids if request.replace_original and source_vm else tuple(target.nic_ids),
            replace_original=request.replace_original,
            repository=repository,
            worker_region=worker_region,
        )

    def _point(self, vm_id: str, point_id: str) -> RestorePoint:
        for point in self._catalog.list_points(vm_id):
            if point.point_id == point_id:
                if point.kind not in (PointKind.SNAPSHOT, PointKind.IMAGE):
                    raise UsageError(f"point {point_id} is a {point.kind.value} point, not a VM point")
                if not point.disks:
                    raise UsageError(
                        f"point {point_id} was recorded without its disk layout (an older version of Bulwark)",
                        hint="restore its disks with `bulwark restore-image` from the repository",
                    )
                return point
        raise PointNotFoundError(
            f"VM {vm_id} has no restore point {point_id}",
            hint="list its points with GET /api/points?resource=<vm id> or `bulwark points --catalog`",
        )

    def _source_vm(self, request: RestoreRequest) -> VmInfo | None:
        try:
            return self._inventory.get_vm(request.vm_id)
        except AzureResourceNotFoundError:
            return None

    def _check_region(self, region: str, vm_size: str) -> None:
        """The region exists and offers the VM size (a restore to another region may lack it)."""
        try:
            sizes = self._targets.vm_sizes(region)
        except AzureResourceNotFoundError:
            raise InvalidDocumentError(
                "the restore request",
                [
                    FieldProblem(
                        "target.region", f"{region!r} is not an Azure region", "give a region such as westeurope"
                    )
                ],
            ) from None
        if vm_size and vm_size.lower() not in {s.lower() for s in sizes}:
            shown = ", ".join(sorted(sizes)[:8])
            raise InvalidDocumentError(
                "the restore request",
                [FieldProblem("target.vm_size", f"{vm_size} is not offered in {region}", f"choose one of {shown}")],
            )

    def _require_free_vm_name(self, resource_group: str, name: str) -> None:
        group = f"/subscriptions/{self._subscription_id}/resourceGroups/{resource_group}"
        vm_id = f"{group}/providers/Microsoft.Compute/virtualMachines/{name}"
        try:
            self._inventory.get_vm(vm_id)
        except AzureResourceNotFoundError:
            return
        raise AzureConflictError(
            f"a VM named {name} already exists in resource group {resource_group}",
            hint="choose another target.name, or replace the original with replace_original and confirm",
        )

    def _source(self, request: RestoreRequest, point: RestorePoint, disks: Sequence[PointDisk], region: str) -> str:
        wanted = request.source
        snapshots_ok = all(self._snapshot_usable(d.snapshot_id, region) for d in disks)
        if wanted == "snapshot" or (wanted == "auto" and point.kind is PointKind.SNAPSHOT):
            if not snapshots_ok:
                raise UsageError(
                    f"the snapshots of point {point.point_id} are gone, unmanaged, or in another region than {region}",
                    hint="restore from an image-level point with source 'repository' (it works in any region)",
                )
            return "snapshot"
        if point.kind is not PointKind.IMAGE or any(not d.repository_point_id for d in disks):
            raise UsageError(
                f"point {point.point_id} has no image-level backup in the repository",
                hint="choose an image-level point, or source 'snapshot'",
            )
        if wanted == "auto" and snapshots_ok:
            return "snapshot"
        return "repository"

    def _snapshot_usable(self, snapshot_id: str, region: str) -> bool:
        if not snapshot_id.lower().startswith("/subscriptions/"):
            return False  # a blob snapshot of an unmanaged disk: restored from the repository
        try:
            snapshot = self._snapshots.get_snapshot(snapshot_id)
        except AzureResourceNotFoundError:
            return False
        return snapshot.location.replace(" ", "").lower() == region.replace(" ", "").lower()

    def _disk_plan(self, source: str, disk: PointDisk, name: str, source_vm: VmInfo | None) -> DiskPlan:
        size = disk.size
        if source == "snapshot":
            size = self._snapshots.get_snapshot(disk.snapshot_id).size_bytes or size
        sku = None
        if source_vm is not None:
            match = next(
                (d for d in source_vm.disks if (d.managed_disk_id or d.vhd_uri or "").lower() == disk.disk_id.lower()),
                None,
            )
            if match is not None and match.managed_disk_id:
                try:
                    sku = self._inventory.get_disk(match.managed_disk_id).sku
                except AzureResourceNotFoundError:
                    sku = None
        return DiskPlan(
            name=name,
            lun=disk.lun,
            size=size,
            source_disk_id=disk.disk_id,
            snapshot_id=disk.snapshot_id if source == "snapshot" else None,
            repository_point_id=disk.repository_point_id if source == "repository" else None,
            sku=sku,
            os_type=(source_vm.os_type if source_vm is not None and disk.lun is None else None),
        )

    # -- the activities ----------------------------------------------------------------------------

    def create_disk(self, request: CreateDiskRequest) -> CreatedDisk:
        plan, disk = request.plan, request.disk
        tags = {RESTORE_TAG: plan.restore_id[:256], "bulwark-point": plan.point_id}
        if disk.snapshot_id is not None:
            created = self._targets.create_disk_from_snapshot(
                resource_group=plan.resource_group,
                name=disk.name,
                snapshot=self._snapshots.get_snapshot(disk.snapshot_id),
                sku=disk.sku,
                tags=tags,
            )
        else:
            created = self._targets.create_upload_disk(
                resource_group=plan.resource_group,
                name=disk.name,
                location=plan.region,
                size_bytes=disk.size,
                sku=disk.sku or "Standard_LRS",
                os_type=disk.os_type if disk.lun is None else None,
                tags=tags,
            )
        return CreatedDisk(created.id, disk.lun)

    def start_job(self, request: StartRestoreJob) -> JobHandle:
        plan, disk = request.plan, request.disk
        if plan.repository is None or disk.repository_point_id is None:
            raise UsageError("this restore reads snapshots; it has no worker job")
        job_id = "rst-" + hashlib.sha256(f"{plan.restore_id}\n{request.disk_id.lower()}".encode()).hexdigest()[:24]
        spec = JobSpec(
            job_id=job_id,
            kind="image-restore",
            attempt=request.attempt,
            repository=plan.repository,
            arm=self._jobs.arm,
            status=self._jobs.status,
            source=JobSource(kind="upload-disk", disk_id=request.disk_id, snapshot_id=disk.repository_point_id),
            tags={"restore": plan.restore_id, "vm": plan.vm_id, "point": plan.point_id},
            traceparent=current_traceparent(plan.traceparent),
        )
        self._status.put(JobStatus(job_id, request.attempt, "pending", format_time(self._clock.now())))
        worker = self._launcher.launch(
            name=worker_name(job_id, request.attempt), job_json=spec.to_json(), location=plan.worker_region
        )
        log.info("restore %s: job %s attempt %d writes %s", plan.restore_id, job_id, request.attempt, request.disk_id)
        return JobHandle(
            job_id=job_id,
            attempt=request.attempt,
            worker=worker,
            disk_id=request.disk_id,
            snapshot_id=disk.repository_point_id,
            lun=disk.lun,
            poll_seconds=self._jobs.poll_seconds,
            deadline_seconds=self._jobs.deadline_seconds,
            max_attempts=self._jobs.max_attempts,
        )

    def create_vm(self, request: CreateVmRequest) -> str:
        plan = request.plan
        os_disk = next(d for d in request.disks if d.lun is None)
        data = sorted((d.lun, d.disk_id) for d in request.disks if d.lun is not None)
        tags = {RESTORE_TAG: plan.restore_id[:256], "bulwark-point": plan.point_id}
        if not plan.replace_original:
            return self._create(plan, plan.resource_group, plan.vm_name, os_disk.disk_id, data, tags)
        original = self._inventory.get_vm(plan.vm_id)
        self._targets.delete_vm(plan.vm_id)  # its disks stay: they are the way back
        try:
            return self._create(plan, original.resource_group, original.name, os_disk.disk_id, data, tags)
        except Exception:
            log.warning("restore %s: the new VM failed; putting the original %s back", plan.restore_id, plan.vm_id)
            back = [(d.lun, d.managed_disk_id) for d in original.data_disks if d.lun is not None and d.managed_disk_id]
            self._targets.create_vm(
                resource_group=original.resource_group,
                name=original.name,
                location=original.location,
                vm_size=original.vm_size or plan.vm_size,
                os_disk_id=original.os_disk.managed_disk_id or "",
                os_type=original.os_type or plan.os_type,
                data_disks=[(lun, disk_id) for lun, disk_id in back if disk_id],
                nic_ids=original.nic_ids,
                tags=dict(original.tags),
            )
            raise

    def _create(
        self,
        plan: RestorePlan,
        resource_group: str,
        name: str,
        os_disk_id: str,
        data: Sequence[tuple[int | None, str]],
        tags: dict[str, str],
    ) -> str:
        vm = self._targets.create_vm(
            resource_group=resource_group,
            name=name,
            location=plan.region,
            vm_size=plan.vm_size,
            os_disk_id=os_disk_id,
            os_type=plan.os_type or "Linux",
            data_disks=[(int(lun), disk_id) for lun, disk_id in data if lun is not None],
            nic_ids=plan.nic_ids,
            tags=tags,
        )
        return vm.id

    def delete_disks(self, request: DeleteDisksRequest) -> int:
        """Delete the disks of a failed restore. An upload that a worker left open (it failed, or
        was killed) must end before Azure deletes the disk, and ending it needs a valid footer: the
        footer is written first, then access ends, then the disk goes."""
        for disk_id in request.disk_ids:
            try:
                disk = self._inventory.get_disk(disk_id)
            except AzureResourceNotFoundError:
                continue
            if disk.disk_state in ("ReadyToUpload", "ActiveUpload"):
                sas = self._access.grant_write(disk_id)  # a fresh SAS for the same upload
                with self._uploads.open(sas, disk.size_bytes) as target:
                    target.finish(unique_id=uuid.uuid5(uuid.NAMESPACE_URL, disk_id), created=self._clock.now())
                self._access.revoke(disk_id)
            elif disk.disk_state == "ActiveSAS":
                self._access.revoke(disk_id)
            self._targets.delete_disk(disk_id)
        return len(request.disk_ids)


def _check_fields(request: RestoreRequest) -> None:
    problems = []
    if request.what not in WHAT:
        problems.append(FieldProblem("what", f"is {request.what!r}", "use 'vm' or 'disk'"))
    if request.source not in SOURCES:
        problems.append(FieldProblem("source", f"is {request.source!r}", "use 'auto', 'snapshot' or 'repository'"))
    if not request.vm_id.lower().startswith("/subscriptions/"):
        problems.append(FieldProblem("vm_id", "is not a VM's ARM id", "give /subscriptions/.../virtualMachines/<name>"))
    if not request.point_id:
        problems.append(FieldProblem("point_id", "is missing", "give a point id from GET /api/points?resource=<vm id>"))
    if request.what == "disk" and not request.lun:
        problems.append(FieldProblem("lun", "is missing", "give 'os' or the data disk's LUN"))
    if request.what == "disk" and request.replace_original:
        problems.append(FieldProblem("replace_original", "applies to VM restores", "leave it false for a disk restore"))
    if request.what == "vm" and not request.replace_original and not request.target.name:
        problems.append(FieldProblem("target.name", "is missing", "name the new VM, or set replace_original"))
    if request.replace_original and not request.confirm:
        problems.append(
            FieldProblem(
                "confirm",
                "is not true",
                "replacing deletes the original VM (its disks are kept): set confirm to true to go ahead",
            )
        )
    if problems:
        raise InvalidDocumentError("the restore request", problems)


def _chosen_disks(point: RestorePoint, request: RestoreRequest) -> list[PointDisk]:
    if request.what == "vm":
        if not any(d.lun is None for d in point.disks):
            raise UsageError(
                f"point {point.point_id} has no OS disk, so it cannot make a VM", hint="restore its disks one by one"
            )
        return list(point.disks)
    wanted = None if request.lun == "os" else request.lun
    for disk in point.disks:
        if (disk.lun is None and wanted is None) or (wanted is not None and str(disk.lun) == wanted):
            return [disk]
    luns = ", ".join("os" if d.lun is None else str(d.lun) for d in point.disks)
    raise InvalidDocumentError(
        "the restore request",
        [FieldProblem("lun", f"is {request.lun!r}, which point {point.point_id} lacks", f"use one of: {luns}")],
    )
