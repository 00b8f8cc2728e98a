"""policy_session_orchestrator: one backup session of a policy.

    input   SessionRequest {policy_id, slot ("on-demand" or the slot time), image_level}
    output  SessionRecord  {status Success | Warning | Failed, per-resource results with reasons}

discover_vms, discover_sql_databases -> one vm_backup_orchestrator per VM and one
sql_backup_orchestrator per database, at most ``concurrency`` (resources_in_flight) in flight together
and at most ``workers_in_flight`` workers: a resource that needs workers is granted up to that many
when it starts (a VM one per disk, a database one) and gives them back when it ends; it waits while
none is free, so its snapshots are taken just before its workers can read them -> aggregate (each
resource's start and end, from the orchestration clock) -> image-level sessions that made points:
the policy's image retention (plan_image_retention, a repository-maintenance worker that forgets and
prunes, record_forgotten_points; a failure there only warns) -> record_session. The custom status is
what the portal shows while it runs: {phase, resources_total, resources_done, bytes_read, bytes_stored, failed}.
"""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskState

from functions import names
from shared.core.clock import format_time
from shared.services.messages import (
    RESULT_FAILED,
    RESULT_SUCCESS,
    RESULT_WARNING,
    DiscoverRequest,
    ForgottenPoints,
    ImageRetentionPlan,
    ImageRetentionRequest,
    ResourceResult,
    SessionPlan,
    SessionProgress,
    SessionRecord,
    SessionRequest,
    SqlBackupRequest,
    SqlPlan,
    VmBackupRequest,
    worse,
)

from .flow import BackoffRetry, failure_reason, run_job
from .tracing import OrchestrationTrace, traced

bp = df.Blueprint()

DISCOVER_RETRY = BackoffRetry(5, 4)
RECORD_RETRY = BackoffRetry(5, 5)
START_RETRY = BackoffRetry(10, 4)
POLL_RETRY = BackoffRetry(5, 3)


@bp.orchestration_trigger(context_name="context", orchestration=names.POLICY_SESSION)
def policy_session_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    request = SessionRequest.from_dict(context.get_input())
    session_id = context.instance_id
    started = format_time(context.current_utc_datetime)
    trace = OrchestrationTrace.begin(context, request.traceparent)
    discover = DiscoverRequest(request.policy_id, session_id, trace.traceparent)
    context.set_custom_status(SessionProgress(phase="discovering").to_dict())

    try:
        discovered = yield context.call_activity_with_retry(names.DISCOVER_VMS, DISCOVER_RETRY, discover.to_dict())
    except Exception as error:
        plan = None
        reason = f"discovery failed: {failure_reason(error)}"
    else:
        plan = SessionPlan.from_dict(discovered)
        reason = ""

    sql: SqlPlan | None = None
    if plan is not None:
        try:
            found = yield context.call_activity_with_retry(
                names.DISCOVER_SQL_DATABASES, DISCOVER_RETRY, discover.to_dict()
            )
        except Exception as error:  # the VMs are still backed up; the session fails with the reason
            reason = f"discovery of SQL databases failed: {failure_reason(error)}"
        else:
            sql = SqlPlan.from_dict(found)
    if plan is not None and sql is not None and not plan.vms and not sql.databases:
        reason = "the policy's scope selects no VM or SQL database"

    results: list[ResourceResult] = []
    image_level = bool(plan and request.image_level and plan.image_level_enabled)
    # One entry per resource (VMs, then databases): the orchestrator, its request, the child instance id,
    # the resource's id and name, and how many workers it runs at once at most (0: none).
    children: list[tuple[str, VmBackupRequest | SqlBackupRequest, str, str, str, int]] = []
    if plan is not None:
        for index, vm in enumerate(plan.vms):
            child = VmBackupRequest(request.policy_id, session_id, image_level, vm, trace.traceparent)
            wanted = len(vm.disks) if image_level else 0
            children.append((names.VM_BACKUP, child, f"{session_id}:vm:{index}", vm.vm_id, vm.name, wanted))
    if plan is not None and sql is not None:
        for index, database in enumerate(sql.databases):
            job = SqlBackupRequest(
                request.policy_id,
                session_id,
                database,
                sql.mode,
                sql.staging_server,
                sql.staging_region,
                trace.traceparent,
            )
            instance = f"{session_id}:sql:{index}"
            children.append((names.SQL_BACKUP, job, instance, database.database_id, database.name, 1))
    if plan is not None and children:
        total = len(children)
        progress = SessionProgress(phase="backing up", resources_total=total)
        context.set_custom_status(progress.to_dict())
        queue = list(enumerate(children))
        # (task, index, workers granted, started): at most plan.concurrency resources and
        # plan.workers_in_flight workers at once; a resource that runs workers starts when one is free.
        running: list[tuple[Any, int, int, str]] = []
        free_workers = plan.workers_in_flight or sum(child[5] for child in children) or 1
        done: dict[int, ResourceResult] = {}
        while queue or running:
            while len(running) < plan.concurrency:
                startable = next((entry for entry in queue if not entry[1][5] or free_workers > 0), None)
                if startable is None:
                    break
                queue.remove(startable)
                index, (orchestrator, message, instance_id, _, _, wanted) = startable
                granted = min(wanted, free_workers)
                free_workers -= granted
                if isinstance(message, VmBackupRequest):
                    message = replace(message, worker_slots=granted)
                task = context.call_sub_orchestrator(orchestrator, message.to_dict(), instance_id)
                running.append((task, index, granted, format_time(context.current_utc_datetime)))
            finished = yield context.task_any([task for task, _, _, _ in running])
            entry = next(item for item in running if item[0] is finished)
            running.remove(entry)
            _, index, granted, began = entry
            free_workers += granted
            if finished.state is TaskState.SUCCEEDED:
                result = ResourceResult.from_dict(finished.result)
            else:
                _, _, _, resource_id, name, _ = children[index]
                result = ResourceResult(resource_id, name, RESULT_FAILED, (failure_reason(finished.result),))
            done[index] = replace(result, started=began, finished=format_time(context.current_utc_datetime))
            progress = SessionProgress(
                phase="backing up",
                resources_total=total,
                resources_done=len(done),
                bytes_read=progress.bytes_read + result.bytes_read,
                bytes_stored=progress.bytes_stored + result.bytes_stored,
                failed=progress.failed + (result.status == RESULT_FAILED),
            )
            context.set_custom_status(progress.to_dict())
        results = [done[i] for i in sorted(done)]

    status = RESULT_SUCCESS if plan is not None and children else (RESULT_WARNING if plan else RESULT_FAILED)
    if plan is not None and sql is None:
        status = RESULT_FAILED  # SQL discovery failed (reason says so)
    for result in results:
        status = worse(status, result.status)
    forgotten: tuple[str, ...] = ()
    vm_ids = {vm.vm_id for vm in plan.vms} if plan is not None else set()
    image_points = any(d.point_id for r in results if r.resource_id in vm_ids for d in r.disks)  # not BACPACs
    if plan is not None and image_level and image_points:
        context.set_custom_status({"phase": "image retention", "policy": request.policy_id})
        forgotten, note = yield from _image_retention(context, request.policy_id, session_id, plan, trace.traceparent)
        if note:  # the points are safe; only the clean-up did not happen
            status = worse(status, RESULT_WARNING)
            reason = f"{reason}; {note}" if reason else note
    record = SessionRecord(
        session_id=session_id,
        policy_id=request.policy_id,
        slot=request.slot,
        image_level=image_level,
        started=started,
        finished=format_time(context.current_utc_datetime),
        status=status,
        resources=tuple(results),
        points_forgotten=forgotten,
        reason=reason,
    )
    context.set_custom_status(_final(record).to_dict())
    try:
        # the record is also the output and the catalog's document: the trace context rides beside it
        yield context.call_activity_with_retry(
            names.RECORD_SESSION, RECORD_RETRY, traced(record.to_dict(), trace.traceparent)
        )
    except Exception as error:
        note = f"the catalog did not record the session: {failure_reason(error)}"
        record = replace(
            record,
            status=worse(record.status, RESULT_WARNING),
            reason=f"{record.reason}; {note}" if record.reason else note,
        )
    attributes = {"bulwark.policy": request.policy_id, "bulwark.slot": request.slot, "bulwark.result": record.status}
    failed = record.reason or "failed" if record.status == RESULT_FAILED else None
    trace.end(context, names.POLICY_SESSION, attributes, failed=failed)
    return record.to_dict()


def _image_retention(
    context: df.DurableOrchestrationContext, policy_id: str, session_id: str, plan: SessionPlan, traceparent: str
) -> Generator[Any, Any, tuple[tuple[str, ...], str]]:
    """Apply the policy's image retention to its repository points: plan, a maintenance worker
    forgets and prunes, the catalog drops them. Returns (catalog points dropped, a note on failure)."""
    vm_ids = tuple(vm.vm_id for vm in plan.vms)
    now = format_time(context.current_utc_datetime)
    request = ImageRetentionRequest(policy_id, session_id, vm_ids, plan.vms[0].location, now, traceparent)
    try:
        planned = ImageRetentionPlan.from_dict(
            (yield context.call_activity_with_retry(names.PLAN_IMAGE_RETENTION, DISCOVER_RETRY, request.to_dict()))
        )
        if not planned.repository_point_ids:
            return (), ""
        # The start activity's span is the worker's parent (its spec carries it), under this orchestration.
        maintenance = replace(planned, traceparent=traceparent).to_dict()
        # One attempt (its handle allows no other): what it leaves, the next session's plan finds again.
        state = yield from run_job(
            context,
            lambda _: context.call_activity_with_retry(names.START_MAINTENANCE_JOB, START_RETRY, maintenance),
            POLL_RETRY,
            traceparent=traceparent,
        )
        if state.state != "succeeded":
            return (), f"image retention: the maintenance worker failed: {state.reason}"
        gone = tuple(str(point) for point in state.result.get("forgotten", []))
        dropped = ForgottenPoints(policy_id, session_id, vm_ids, planned.point_ids, gone, traceparent)
        recorded = yield context.call_activity_with_retry(
            names.RECORD_FORGOTTEN_POINTS, RECORD_RETRY, dropped.to_dict()
        )
    except Exception as error:
        return (), f"image retention failed: {failure_reason(error)}"
    return ForgottenPoints.from_dict(recorded).point_ids, ""


def _final(record: SessionRecord) -> SessionProgress:
    return SessionProgress(
        phase=f"done: {record.status}",
        resources_total=len(record.resources),
        resources_done=len(record.resources),
        bytes_read=record.bytes_read,
        bytes_stored=record.bytes_stored,
        failed=sum(r.status == RESULT_FAILED for r in record.resources),
    )
