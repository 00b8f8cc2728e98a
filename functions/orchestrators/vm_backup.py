"""vm_backup_orchestrator: one VM in one session.

    input   VmBackupRequest {policy_id, session_id, image_level, vm: VmTarget with its disks}
    output  ResourceResult  {status Success | Warning | Failed, reasons, per-disk outcomes}

1. snapshot_disk per disk, all at once, retried with backoff (managed: an incremental snapshot in
   the VM's resource group; unmanaged: a blob snapshot);
2. image-level sessions: start_backup_job per disk (a worker in the repository's region), at most
   ``worker_slots`` at once (the session's grant from workers_in_flight), then poll_backup_jobs
   on a durable timer until every job ends or its deadline passes (a waiting disk starts as a
   worker ends); a worker that ended without a result (or failed transiently) gets another attempt, up to the limit;
3. record_restore_points for the disks that were backed up;
4. apply_snapshot_retention (managed disks): the policy's snapshot count per disk, keeping the
   snapshot of the last image-level backup until the next one.

Failed snapshots or backups make the VM Failed; a failed catalog write or retention only a Warning
(the data is protected). Nothing here raises: the session always gets a result with reasons.
"""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase

from functions import names
from shared.services.messages import (
    IMAGE_LEVEL,
    RESULT_FAILED,
    RESULT_SUCCESS,
    RESULT_WARNING,
    DiskOutcome,
    DiskTarget,
    JobState,
    PointRecord,
    RecordPointsRequest,
    ResourceResult,
    RetentionRequest,
    RetentionResult,
    SnapshotRequest,
    SnapshotResult,
    StartJobRequest,
    VmBackupRequest,
    worse,
)

from .flow import BackoffRetry, JobsProgress, each_completed, failure_reason, run_jobs
from .tracing import OrchestrationTrace

bp = df.Blueprint()

SNAPSHOT_RETRY = BackoffRetry(10, 5)
START_RETRY = BackoffRetry(10, 4)
POLL_RETRY = BackoffRetry(5, 3)
RECORD_RETRY = BackoffRetry(5, 5)
RETENTION_RETRY = BackoffRetry(10, 3)


@bp.orchestration_trigger(context_name="context", orchestration=names.VM_BACKUP)
def vm_backup_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    request = VmBackupRequest.from_dict(context.get_input())
    trace = OrchestrationTrace.begin(context, request.traceparent)
    request = replace(request, traceparent=trace.traceparent)  # this orchestration is its steps' parent
    vm = request.vm
    status = RESULT_SUCCESS
    reasons: list[str] = []
    outcomes = {disk.disk_id: DiskOutcome(disk.disk_id, disk.lun, size_bytes=disk.size_bytes or 0) for disk in vm.disks}
    context.set_custom_status({"phase": "snapshots", "vm": vm.name, "disks": len(vm.disks)})

    tasks = [
        context.call_activity_with_retry(
            names.SNAPSHOT_DISK,
            SNAPSHOT_RETRY,
            SnapshotRequest(
                request.policy_id, request.session_id, vm.vm_id, vm.resource_group, disk, request.traceparent
            ).to_dict(),
        )
        for disk in vm.disks
    ]
    snapshots: dict[str, SnapshotResult] = {}
    for disk, (ok, value) in zip(vm.disks, (yield from each_completed(context, tasks)), strict=True):
        if ok:
            snapshots[disk.disk_id] = SnapshotResult.from_dict(value)
            outcomes[disk.disk_id] = replace(outcomes[disk.disk_id], snapshot_id=snapshots[disk.disk_id].snapshot_id)
        else:
            status = RESULT_FAILED
            reasons.append(f"snapshot of disk {disk.name} failed: {failure_reason(value)}")
            outcomes[disk.disk_id] = replace(outcomes[disk.disk_id], error=failure_reason(value))

    points: list[PointRecord] = []
    if request.image_level and snapshots:
        disks = [d for d in vm.disks if d.disk_id in snapshots]
        context.set_custom_status({"phase": "image-level backup", "vm": vm.name, "disks": len(disks)})
        states = yield from _run_jobs(context, request, disks, snapshots)
        for disk in disks:
            state = states[disk.disk_id]
            if state.state != "succeeded":
                status = RESULT_FAILED
                reasons.append(f"image-level backup of disk {disk.name} failed: {state.reason}")
                outcomes[disk.disk_id] = replace(outcomes[disk.disk_id], error=state.reason)
                continue
            result = state.result
            points.append(_point(request, disk, snapshots[disk.disk_id], result))
            outcomes[disk.disk_id] = replace(
                outcomes[disk.disk_id],
                point_id=str(result["point_id"]),
                incremental=bool(result.get("incremental")),
                bytes_read=int(result.get("bytes_read", 0)),
                bytes_stored=int(result.get("bytes_stored", 0)),
            )

    if points:
        context.set_custom_status({"phase": "recording restore points", "vm": vm.name})
        try:
            yield context.call_activity_with_retry(
                names.RECORD_RESTORE_POINTS, RECORD_RETRY, RecordPointsRequest(tuple(points)).to_dict()
            )
        except Exception as error:
            status = worse(status, RESULT_WARNING)
            reasons.append(f"the catalog did not record the restore points: {failure_reason(error)}")

    deleted: tuple[str, ...] = ()
    retained = [d.disk_id for d in vm.disks if d.managed and d.disk_id in snapshots]
    if retained:
        context.set_custom_status({"phase": "snapshot retention", "vm": vm.name})
        retention = RetentionRequest(
            request.policy_id, request.session_id, vm.vm_id, vm.resource_group, tuple(retained), request.traceparent
        )
        try:
            applied = yield context.call_activity_with_retry(
                names.APPLY_SNAPSHOT_RETENTION, RETENTION_RETRY, retention.to_dict()
            )
        except Exception as error:
            status = worse(status, RESULT_WARNING)
            reasons.append(f"snapshot retention failed: {failure_reason(error)}")
        else:
            deleted = RetentionResult.from_dict(applied).deleted

    context.set_custom_status({"phase": f"done: {status}", "vm": vm.name})
    attributes = {"bulwark.vm": vm.vm_id, "bulwark.result": status, "bulwark.disks": len(vm.disks)}
    trace.end(context, names.VM_BACKUP, attributes, failed="; ".join(reasons) if status == RESULT_FAILED else None)
    return ResourceResult(
        resource_id=vm.vm_id,
        name=vm.name,
        status=status,
        reasons=tuple(reasons),
        disks=tuple(outcomes[d.disk_id] for d in vm.disks),
        snapshots_deleted=deleted,
    ).to_dict()


def _run_jobs(
    context: df.DurableOrchestrationContext,
    request: VmBackupRequest,
    disks: Sequence[DiskTarget],
    snapshots: dict[str, SnapshotResult],
) -> Generator[Any, Any, dict[str, JobState]]:
    """Run one worker job per disk to its end, at most ``worker_slots`` at once (the session's
    share of workers_in_flight); returns the final state per disk id."""
    by_disk = {disk.disk_id: disk for disk in disks}

    def start(disk_id: str, attempt: int) -> TaskBase:
        disk = by_disk[disk_id]
        job = StartJobRequest(
            request.policy_id,
            request.session_id,
            request.vm.vm_id,
            request.vm.location,
            disk,
            snapshots[disk_id].snapshot_id,
            attempt,
            request.traceparent,
        )
        return context.call_activity_with_retry(names.START_BACKUP_JOB, START_RETRY, job.to_dict())

    def report(progress: JobsProgress) -> None:
        status = {"phase": "image-level backup", "vm": request.vm.name, "jobs_running": progress.running}
        context.set_custom_status({**status, "bytes": progress.progress_bytes})

    return (
        yield from run_jobs(
            context,
            list(by_disk),
            start,
            POLL_RETRY,
            slots=request.worker_slots,
            on_poll=report,
            traceparent=request.traceparent,
        )
    )


def _point(
    request: VmBackupRequest, disk: DiskTarget, snapshot: SnapshotResult, result: Mapping[str, Any]
) -> PointRecord:
    return PointRecord(
        point_id=str(result["point_id"]),
        policy_id=request.policy_id,
        session_id=request.session_id,
        vm_id=request.vm.vm_id,
        disk_id=disk.disk_id,
        lun=disk.lun,
        snapshot_id=snapshot.snapshot_id,
        job_id=str(result.get("job_id", "")),
        time=snapshot.time_created,
        repository=str(result.get("repository", "")),
        parent_point_id=result.get("parent_point_id"),
        size_bytes=int(result.get("size_bytes", 0)),
        bytes_read=int(result.get("bytes_read", 0)),
        bytes_stored=int(result.get("bytes_stored", 0)),
        kind=IMAGE_LEVEL,
    )
