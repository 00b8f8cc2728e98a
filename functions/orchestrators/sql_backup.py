"""sql_backup_orchestrator: one SQL database in one session.

    input   SqlBackupRequest {policy_id, session_id, database: SqlTarget, mode, staging_server}
    output  ResourceResult   {status Success | Warning | Failed, reasons, one DiskOutcome: the database}

1. sql_preflight: refuse early what BACPAC cannot export (external references, unsupported logins,
   over 200 GB), with the adapter's message;
2. staging mode: sql_copy_to_staging, a transactionally consistent copy on the staging server
   (retried with backoff; the copy's name is the session's, so a retry finds it);
3. sql_export_bacpac starts the export of the source (or its copy) into the staging container (the
   storage SAS and the SQL password are made inside the activity), then sql_poll_export on a
   durable timer until the export service says it ended (it may work for hours);
4. start_bacpac_job, then poll_backup_jobs on a durable timer until the worker ends, a lost worker
   getting another attempt; past the deadline (the export service's 20 hours by default:
   BULWARK_JOB_DEADLINE_SECONDS) stop_backup_jobs;
5. record_bacpac_point (kind bacpac);
6. sql_cleanup ALWAYS (``finally``): delete the staging copy and the staging BACPAC, also when a
   step failed. A failed cleanup is a Warning.

The outcome's ``snapshot_id`` names the database the BACPAC was exported from (the source, or the
staging copy), ``point_id`` the repository point. Nothing here raises: the session gets a result.
"""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase

from functions import names
from shared.services.messages import (
    BACPAC,
    RESULT_FAILED,
    RESULT_SUCCESS,
    RESULT_WARNING,
    SQL_STAGING,
    DiskOutcome,
    JobState,
    PointRecord,
    RecordPointsRequest,
    ResourceResult,
    SqlBackupRequest,
    SqlCopyResult,
    SqlExportPoll,
    SqlExportRequest,
    SqlExportResult,
    SqlPreflightResult,
    StartBacpacJobRequest,
    worse,
)

from .flow import BackoffRetry, JobsProgress, failure_reason, run_job
from .tracing import OrchestrationTrace

bp = df.Blueprint()

PREFLIGHT_RETRY = BackoffRetry(5, 3)
COPY_RETRY = BackoffRetry(10, 4)
EXPORT_RETRY = BackoffRetry(30, 3)
START_RETRY = BackoffRetry(10, 4)
POLL_RETRY = BackoffRetry(5, 3)
RECORD_RETRY = BackoffRetry(5, 5)
CLEANUP_RETRY = BackoffRetry(10, 5)
EXPORT_HOURS = 21  # the export service cancels exports after 20 hours


class _StepFailed(Exception):
    """A step ended the database's backup; its text is the reason."""


@bp.orchestration_trigger(context_name="context", orchestration=names.SQL_BACKUP)
def sql_backup_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    request = SqlBackupRequest.from_dict(context.get_input())
    trace = OrchestrationTrace.begin(context, request.traceparent)
    request = replace(request, traceparent=trace.traceparent)  # this orchestration is its steps' parent
    database = request.database
    status = RESULT_SUCCESS
    reasons: list[str] = []
    outcome = DiskOutcome(database.database_id, None)

    def phase(name: str) -> None:
        context.set_custom_status({"phase": name, "database": database.name, "mode": request.mode})

    closing = False
    try:
        phase("pre-flight")
        checked = yield context.call_activity_with_retry(names.SQL_PREFLIGHT, PREFLIGHT_RETRY, request.to_dict())
        preflight = SqlPreflightResult.from_dict(checked)
        if not preflight.exportable:
            raise _StepFailed(preflight.reason)

        export_from = database.database_id
        if request.mode == SQL_STAGING:
            phase("staging copy")
            try:
                copied = yield context.call_activity_with_retry(
                    names.SQL_COPY_TO_STAGING, COPY_RETRY, request.to_dict()
                )
            except Exception as error:
                raise _StepFailed(f"the copy to the staging server failed: {failure_reason(error)}") from None
            export_from = SqlCopyResult.from_dict(copied).copy_id
        outcome = replace(outcome, snapshot_id=export_from)

        phase("BACPAC export")
        export = SqlExportRequest(request.policy_id, request.session_id, database, export_from, request.traceparent)
        try:
            done = yield context.call_activity_with_retry(names.SQL_EXPORT_BACPAC, EXPORT_RETRY, export.to_dict())
        except Exception as error:
            raise _StepFailed(f"the BACPAC export failed: {failure_reason(error)}") from None
        exported = SqlExportResult.from_dict(done)
        # The export service works for up to 20 hours; follow it on a durable timer, not in an activity.
        export_deadline = context.current_utc_datetime + timedelta(hours=EXPORT_HOURS)
        while exported.pending:
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=exported.poll_seconds))
            if context.current_utc_datetime > export_deadline:
                raise _StepFailed(f"the BACPAC export did not finish within {EXPORT_HOURS} hours")
            poll = SqlExportPoll(
                request.session_id,
                export_from,
                exported.blob_url,
                exported.status_url,
                exported.result_url,
                exported.poll_seconds,
                request.traceparent,
            )
            try:
                polled = yield context.call_activity_with_retry(names.SQL_POLL_EXPORT, POLL_RETRY, poll.to_dict())
            except Exception as error:
                raise _StepFailed(f"could not learn how the BACPAC export goes: {failure_reason(error)}") from None
            exported = SqlExportResult.from_dict(polled)
        if not exported.exported:
            raise _StepFailed(exported.reason)

        phase("storing the BACPAC")
        location = (request.staging_region or database.location) if request.mode == SQL_STAGING else database.location
        state = yield from _run_job(context, request, exported.blob_url, export_from, location)
        if state.state != "succeeded":
            raise _StepFailed(f"storing the BACPAC in the repository failed: {state.reason}")
        result = state.result
        outcome = replace(
            outcome,
            point_id=str(result["point_id"]),
            bytes_read=int(result.get("bytes_read", 0)),
            bytes_stored=int(result.get("bytes_stored", 0)),
        )

        phase("recording the restore point")
        point = PointRecord(
            point_id=str(result["point_id"]),
            policy_id=request.policy_id,
            session_id=request.session_id,
            vm_id=database.database_id,
            disk_id=database.database_id,
            lun=None,
            snapshot_id=export_from,
            job_id=str(result.get("job_id", "")),
            time=str(result.get("time", "")),
            repository=str(result.get("repository", "")),
            size_bytes=int(result.get("size_bytes", 0)),
            bytes_read=int(result.get("bytes_read", 0)),
            bytes_stored=int(result.get("bytes_stored", 0)),
            kind=BACPAC,
        )
        try:
            yield context.call_activity_with_retry(
                names.RECORD_BACPAC_POINT, RECORD_RETRY, RecordPointsRequest((point,)).to_dict()
            )
        except Exception as error:
            status = worse(status, RESULT_WARNING)
            reasons.append(f"the catalog did not record the restore point: {failure_reason(error)}")
    except _StepFailed as failed:
        status = RESULT_FAILED
        reasons.append(str(failed))
        outcome = replace(outcome, error=str(failed))
    except GeneratorExit:
        closing = True  # the replay ended here (the generator is being discarded): nothing to schedule
        raise
    except Exception as error:
        status = RESULT_FAILED
        reasons.append(failure_reason(error))
        outcome = replace(outcome, error=failure_reason(error))
    finally:
        if not closing:
            phase("cleanup")
            try:
                yield context.call_activity_with_retry(names.SQL_CLEANUP, CLEANUP_RETRY, request.to_dict())
            except Exception as error:
                status = worse(status, RESULT_WARNING)
                reasons.append(f"the staging copy or BACPAC may be left over: {failure_reason(error)}")

    phase(f"done: {status}")
    attributes = {"bulwark.database": database.database_id, "bulwark.result": status, "bulwark.mode": request.mode}
    trace.end(context, names.SQL_BACKUP, attributes, failed="; ".join(reasons) if status == RESULT_FAILED else None)
    return ResourceResult(
        resource_id=database.database_id,
        name=database.name,
        status=status,
        reasons=tuple(reasons),
        disks=(outcome,),
    ).to_dict()


def _run_job(
    context: df.DurableOrchestrationContext,
    request: SqlBackupRequest,
    blob_url: str,
    export_from: str,
    location: str,
) -> Generator[Any, Any, JobState]:
    """Run the BACPAC worker job to its end (another attempt when a worker is lost); its final state."""

    def start(attempt: int) -> TaskBase:
        job = StartBacpacJobRequest(
            request.policy_id,
            request.session_id,
            request.database,
            blob_url,
            export_from,
            location,
            attempt,
            request.traceparent,
        )
        return context.call_activity_with_retry(names.START_BACPAC_JOB, START_RETRY, job.to_dict())

    def report(progress: JobsProgress) -> None:
        status = {"phase": "storing the BACPAC", "database": request.database.name}
        context.set_custom_status({**status, "bytes": progress.progress_bytes})

    return (yield from run_job(context, start, POLL_RETRY, on_poll=report, traceparent=request.traceparent))
