"""restore_vm_orchestrator: one VM (or one disk) back from a restore point.

    input   RestorePlan (made and checked by the HTTP trigger: nothing exists yet)
    output  {"status": "Succeeded" | "Failed", "reason", "vm_id", "disks": [{"lun", "disk_id"}], ...}

1. create_restore_disk per disk, all at once: from its snapshot (Azure copies it; the fast path) or
   an empty upload disk of the point's size;
2. repository path: start_restore_job per disk (a worker writes the point through the disk's write
   SAS and ends the upload), then poll_backup_jobs on a durable timer until each job ends; a worker
   that ended without a result gets another attempt, up to the limit; a disk that fails (or runs
   past the deadline) stops the other workers, since the restore fails as a whole;
3. VM restores: create_restored_vm with the same LUNs (replacing: the original is deleted with its
   disks kept, and put back if the new VM cannot be created);
4. any failure: delete_restore_disks removes every disk this restore created, then the restore
   ends Failed with the reason. Nothing here raises; progress is in the custom status.
"""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import replace
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase

from functions import names
from shared.services.messages import JobState
from shared.services.vm_restore import (
    CreatedDisk,
    CreateDiskRequest,
    CreateVmRequest,
    DeleteDisksRequest,
    DiskPlan,
    RestorePlan,
    StartRestoreJob,
)

from .flow import BackoffRetry, JobsProgress, each_completed, failure_reason, run_jobs
from .tracing import OrchestrationTrace

bp = df.Blueprint()

CREATE_RETRY = BackoffRetry(10, 4)
START_RETRY = BackoffRetry(10, 4)
POLL_RETRY = BackoffRetry(5, 3)
CLEANUP_RETRY = BackoffRetry(10, 5)


class _Failed(Exception):
    """Ends the restore: the reason is for people."""


@bp.orchestration_trigger(context_name="context", orchestration=names.RESTORE_VM)
def restore_vm_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    plan = RestorePlan.from_dict(context.get_input())
    trace = OrchestrationTrace.begin(context, plan.traceparent)
    plan = replace(plan, traceparent=trace.traceparent)  # this orchestration is its steps' parent
    attributes = {"bulwark.restore": plan.restore_id, "bulwark.vm": plan.vm_id, "bulwark.source": plan.source}
    created: list[CreatedDisk] = []
    status = {"phase": "creating disks", "what": plan.what, "source": plan.source, "disks": len(plan.disks)}
    context.set_custom_status(status)
    vm_id = ""
    written = 0
    try:
        tasks = [
            context.call_activity_with_retry(
                names.CREATE_RESTORE_DISK, CREATE_RETRY, CreateDiskRequest(plan, disk).to_dict()
            )
            for disk in plan.disks
        ]
        problems = []
        for disk, (ok, value) in zip(plan.disks, (yield from each_completed(context, tasks)), strict=True):
            if ok:
                created.append(CreatedDisk.from_dict(value))
            else:
                problems.append(f"disk {disk.name} was not created: {failure_reason(value)}")
        if problems:
            raise _Failed("; ".join(problems))
        if plan.source == "repository":
            written = yield from _write_disks(context, plan, created)
        if plan.what == "vm":
            context.set_custom_status({**status, "phase": "creating the VM", "bytes_written": written})
            try:
                answer = yield context.call_activity_with_retry(
                    names.CREATE_RESTORED_VM, CREATE_RETRY, CreateVmRequest(plan, tuple(created)).to_dict()
                )
            except Exception as error:
                raise _Failed(f"the VM was not created: {failure_reason(error)}") from None
            vm_id = str(answer["vm_id"])
    except _Failed as failure:
        reason = str(failure)
        if created:
            context.set_custom_status({**status, "phase": "removing the disks of the failed restore"})
            try:
                yield context.call_activity_with_retry(
                    names.DELETE_RESTORE_DISKS,
                    CLEANUP_RETRY,
                    DeleteDisksRequest(tuple(d.disk_id for d in created)).to_dict(),
                )
            except Exception as error:
                reason += f"; the disks it created could not all be deleted: {failure_reason(error)}"
        context.set_custom_status({**status, "phase": "done: Failed"})
        trace.end(context, names.RESTORE_VM, attributes, failed=reason)
        return {"status": "Failed", "reason": reason, "restore_id": plan.restore_id, "vm_id": "", "disks": []}
    context.set_custom_status({**status, "phase": "done: Succeeded", "bytes_written": written})
    trace.end(context, names.RESTORE_VM, attributes)
    return {
        "status": "Succeeded",
        "reason": "",
        "restore_id": plan.restore_id,
        "source": plan.source,
        "vm_id": vm_id,
        "disks": [{"lun": d.lun, "disk_id": d.disk_id} for d in created],
        "bytes_written": written,
    }


def _write_disks(
    context: df.DurableOrchestrationContext, plan: RestorePlan, created: list[CreatedDisk]
) -> Generator[Any, Any, int]:
    """One worker per upload disk, run to its end (all or nothing: a failed disk stops the others);
    the bytes written. Raises _Failed."""
    by_lun = {d.lun: d for d in plan.disks}
    disks = {d.disk_id: d for d in created}

    def start(disk_id: str, attempt: int) -> TaskBase:
        disk = disks[disk_id]
        request = StartRestoreJob(plan, by_lun[disk.lun], disk.disk_id, attempt)
        return context.call_activity_with_retry(names.START_RESTORE_JOB, START_RETRY, request.to_dict())

    def written(states: Mapping[str, JobState]) -> int:
        return sum(int(state.result.get("bytes_written", 0)) for state in states.values())

    def report(progress: JobsProgress) -> None:
        status = {"phase": "writing disks", "what": plan.what, "jobs_running": progress.running}
        context.set_custom_status({**status, "bytes_written": written(progress.ended) + progress.progress_bytes})

    context.set_custom_status({"phase": "writing disks", "what": plan.what, "disks": len(created), "bytes_written": 0})
    states = yield from run_jobs(
        context, list(disks), start, POLL_RETRY, all_or_nothing=True, on_poll=report, traceparent=plan.traceparent
    )
    problems = [
        f"writing disk {_label(by_lun[disk.lun])} failed: {state.reason}"
        for disk in created
        if (state := states.get(disk.disk_id)) and state.state != "succeeded"
    ]
    if problems:
        raise _Failed("; ".join(problems))
    return written(states)


def _label(disk: DiskPlan) -> str:
    return f"{disk.name} ({'OS disk' if disk.lun is None else f'LUN {disk.lun}'})"
