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
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from functions import names
from shared.services.messages import (
    IMAGE_LEVEL,
    RESULT_FAILED,
    RESULT_SUCCESS,
    RESULT_WARNING,
    DiskOutcome,
    DiskTarget,
    JobHandle,
    JobState,
    PointRecord,
    PollJobsRequest,
    PollJobsResult,
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

from .flow import BackoffRetry, each_completed, failure_reason
from .tracing import OrchestrationTrace

bp = df.Blueprint()

SNAPSHOT_RETRY = BackoffRetry(10, 5)
START_RETRY = BackoffRetry(10, 4)
POLL_RETRY = BackoffRetry(5, 3)
RECORD_RETRY = BackoffRetry(5, 5)
RETENTION_RETRY = BackoffRetry(10, 3)
MAX_POLL_FAILURES = 5


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
    """Run one worker job per disk to its end; returns the final state per disk id."""
    final: dict[str, JobState] = {}
    if not disks:
        return final

    def start(disk: DiskTarget, attempt: int) -> Any:
        job = StartJobRequest(
            request.policy_id,
            request.session_id,
            request.vm.vm_id,
            request.vm.location,
            disk,
            snapshots[disk.disk_id].snapshot_id,
            attempt,
            request.traceparent,
        )
        return context.call_activity_with_retry(names.START_BACKUP_JOB, START_RETRY, job.to_dict())

    handles: dict[str, JobHandle] = {}
    deadlines: dict[str, datetime] = {}
    # At most ``slots`` workers at once (the session's share of workers_in_flight); the rest wait.
    slots = request.worker_slots or len(disks)
    waiting = list(disks)

    def start_waiting() -> Generator[Any, Any, None]:
        batch = waiting[: max(0, slots - len(handles))]
        del waiting[: len(batch)]
        started = yield from each_completed(context, [start(disk, 1) for disk in batch])
        for disk, (ok, value) in zip(batch, started, strict=True):
            if ok:
                handle = JobHandle.from_dict(value)
                handles[disk.disk_id] = handle
                deadlines[disk.disk_id] = context.current_utc_datetime + timedelta(seconds=handle.deadline_seconds)
            else:
                final[disk.disk_id] = _failed(f"the worker did not start: {failure_reason(value)}")

    yield from start_waiting()
    by_disk = {disk.disk_id: disk for disk in disks}
    poll_failures = 0
    while handles or waiting:
        if not handles:
            yield from start_waiting()  # every running worker failed to start: the next ones may
            continue
        interval = min(handle.poll_seconds for handle in handles.values())
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=interval))
        try:
            polled = yield context.call_activity_with_retry(
                names.POLL_BACKUP_JOBS, POLL_RETRY, PollJobsRequest(tuple(handles.values())).to_dict()
            )
        except Exception as error:
            poll_failures += 1
            if poll_failures < MAX_POLL_FAILURES:
                continue
            reason = f"could not learn the workers' state: {failure_reason(error)}"
            for disk_id, handle in handles.items():
                final[disk_id] = JobState(handle.job_id, handle.attempt, "failed", reason=reason)
            for disk in waiting:
                final[disk.disk_id] = _failed(f"not started: {reason}")
            break
        poll_failures = 0
        progress = 0
        disk_of_job = {handle.job_id: disk_id for disk_id, handle in handles.items()}
        for state in PollJobsResult.from_dict(polled).jobs:
            disk_id = disk_of_job[state.job_id]
            handle = handles[disk_id]
            if state.state == "succeeded":
                final[disk_id] = state
                del handles[disk_id]
            elif state.state == "failed":
                del handles[disk_id]
                if state.retryable and handle.attempt < handle.max_attempts:
                    try:
                        again = yield start(by_disk[disk_id], handle.attempt + 1)
                    except Exception as error:
                        final[disk_id] = _failed(f"the worker did not start: {failure_reason(error)}")
                    else:
                        handles[disk_id] = JobHandle.from_dict(again)
                else:
                    tries = f" (attempt {handle.attempt} of {handle.max_attempts})" if handle.attempt > 1 else ""
                    final[disk_id] = replace(state, reason=f"{state.reason}{tries}")
            elif context.current_utc_datetime >= deadlines[disk_id]:
                del handles[disk_id]
                reason = f"the worker did not finish within {handle.deadline_seconds} s"
                try:
                    yield context.call_activity_with_retry(
                        names.STOP_BACKUP_JOBS, POLL_RETRY, PollJobsRequest((handle,)).to_dict()
                    )
                except Exception as error:
                    reason += f" and could not be stopped: {failure_reason(error)}"
                final[disk_id] = JobState(handle.job_id, handle.attempt, "failed", reason=reason)
            else:
                progress += state.progress_bytes
        if waiting and len(handles) < slots:
            yield from start_waiting()
        context.set_custom_status(
            {"phase": "image-level backup", "vm": request.vm.name, "jobs_running": len(handles), "bytes": progress}
        )
    return final


def _failed(reason: str) -> JobState:
    return JobState(job_id="", attempt=0, state="failed", reason=reason)


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
