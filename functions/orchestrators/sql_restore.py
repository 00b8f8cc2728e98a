"""sql_restore_orchestrator: a BACPAC point into a new database (optionally swapped in by name).

    input   SqlRestoreRequest {restore_id, point_id | repository + point_id, server_id, name, stamp,
                               login?, swap_with_original, confirm}
    output  SqlRestoreResult  {status Success | Failed, database_id, aside_id, reasons}

1. sql_restore_validate: resolve the point, check the server and the name (nothing is created; a
   refusal ends the restore Failed with the reason, as the HTTP trigger's own check would);
2. start_sql_restore_job, then poll_backup_jobs on a durable timer: a ``bacpac-restore`` worker in
   the server's region rebuilds the BACPAC into the staging container (a lost worker gets another
   attempt; past the deadline stop_backup_jobs);
3. sql_restore_import: ARM import into a new database (not retried: a second import would meet the
   first one's half-made database);
4. sql_restore_swap, when the restored database takes another's name;
5. sql_restore_cleanup ALWAYS (``finally``): the staging blob; after a failed job or import, the
   database the import may have begun.

Custom status: ``{"phase", "point", "server", "name", "bytes", "total"}``. Nothing secret is in the
input, the plan or the results: the SQL password and the staging blob's SAS are made in activities.
"""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase

from functions import names
from shared.services.messages import RESULT_FAILED, RESULT_SUCCESS, JobState
from shared.services.sql_restore import (
    SqlRestoreCleanupRequest,
    SqlRestoreImport,
    SqlRestoreImportPoll,
    SqlRestoreJobRequest,
    SqlRestorePlan,
    SqlRestoreRequest,
    SqlRestoreResult,
    SqlRestoreSwap,
)

from .flow import BackoffRetry, JobsProgress, failure_reason, run_job
from .tracing import OrchestrationTrace

bp = df.Blueprint()

START_RETRY = BackoffRetry(10, 4)
POLL_RETRY = BackoffRetry(5, 3)
SWAP_RETRY = BackoffRetry(10, 3)
CLEANUP_RETRY = BackoffRetry(10, 5)
IMPORT_HOURS = 21  # the import/export service cancels operations after 20 hours


class _StepFailed(Exception):
    """A step ended the restore; its text is the reason."""


@bp.orchestration_trigger(context_name="context", orchestration=names.SQL_RESTORE)
def sql_restore_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    request = SqlRestoreRequest.from_dict(context.get_input())
    trace = OrchestrationTrace.begin(context, request.traceparent)
    request = replace(request, traceparent=trace.traceparent)  # this orchestration is its steps' parent
    attributes = {"bulwark.restore": request.restore_id, "bulwark.server": request.server_id}
    result = SqlRestoreResult(
        restore_id=request.restore_id,
        status=RESULT_SUCCESS,
        server_id=request.server_id,
        name=request.name,
        point_id=request.point_id,
    )

    def phase(name: str, **more: Any) -> None:
        status = {"phase": name, "point": request.point_id, "server": request.server_id, "name": request.name}
        context.set_custom_status({**status, **more})

    phase("validating")
    try:
        plan = SqlRestorePlan.from_dict((yield context.call_activity(names.SQL_RESTORE_VALIDATE, request.to_dict())))
    except Exception as error:
        phase(f"done: {RESULT_FAILED}")
        trace.end(context, names.SQL_RESTORE, attributes, failed=failure_reason(error))
        return replace(result, status=RESULT_FAILED, reasons=(failure_reason(error),)).to_dict()
    result = replace(result, repository_point_id=plan.repository_point_id, name=plan.final_name)

    imported = False
    closing = False
    try:
        phase("rebuilding the BACPAC", bytes=0, total=plan.size_bytes)
        state = yield from _run_job(context, plan, phase)
        if state.state != "succeeded":
            raise _StepFailed(f"rebuilding the BACPAC from the repository failed: {state.reason}")

        phase("importing", database=plan.import_name)
        try:
            done = yield context.call_activity(names.SQL_RESTORE_IMPORT, plan.to_dict())
        except Exception as error:
            raise _StepFailed(f"the import into '{plan.import_name}' failed: {failure_reason(error)}") from None
        imported = True
        database = SqlRestoreImport.from_dict(done)
        # The import service may work for hours: follow it on a durable timer, not in an activity.
        import_deadline = context.current_utc_datetime + timedelta(hours=IMPORT_HOURS)
        while database.pending:
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=database.poll_seconds))
            if context.current_utc_datetime > import_deadline:
                raise _StepFailed(f"the import into '{plan.import_name}' did not finish within {IMPORT_HOURS} hours")
            try:
                polled = yield context.call_activity_with_retry(
                    names.SQL_RESTORE_POLL_IMPORT, POLL_RETRY, SqlRestoreImportPoll(plan, database).to_dict()
                )
            except Exception as error:
                raise _StepFailed(f"the import into '{plan.import_name}' failed: {failure_reason(error)}") from None
            database = SqlRestoreImport.from_dict(polled)
        result = replace(result, database_id=database.database_id, name=database.name)

        if plan.swap_target_id is not None:
            phase("swapping names", aside=plan.aside_name)
            try:
                swapped = yield context.call_activity_with_retry(names.SQL_RESTORE_SWAP, SWAP_RETRY, plan.to_dict())
            except Exception as error:
                raise _StepFailed(
                    f"the restored database is '{plan.import_name}', but the swap with "
                    f"'{plan.final_name}' failed: {failure_reason(error)}"
                ) from None
            swap = SqlRestoreSwap.from_dict(swapped)
            result = replace(result, database_id=swap.database_id, aside_id=swap.aside_id, name=plan.final_name)
    except _StepFailed as failed:
        result = replace(result, status=RESULT_FAILED, reasons=(*result.reasons, str(failed)))
    except GeneratorExit:
        closing = True  # the replay ended here (the generator is being discarded): nothing to schedule
        raise
    except Exception as error:
        result = replace(result, status=RESULT_FAILED, reasons=(*result.reasons, failure_reason(error)))
    finally:
        if not closing:
            phase("cleanup")
            cleanup = SqlRestoreCleanupRequest(plan, remove_database=not imported)
            try:
                yield context.call_activity_with_retry(names.SQL_RESTORE_CLEANUP, CLEANUP_RETRY, cleanup.to_dict())
            except Exception as error:
                reason = f"the staging BACPAC or a half-imported database may be left over: {failure_reason(error)}"
                result = replace(result, reasons=(*result.reasons, reason))

    phase(f"done: {result.status}", database=result.database_id)
    trace.end(
        context,
        names.SQL_RESTORE,
        attributes,
        failed="; ".join(result.reasons) if result.status == RESULT_FAILED else None,
    )
    return result.to_dict()


def _run_job(
    context: df.DurableOrchestrationContext, plan: SqlRestorePlan, phase: Callable[..., None]
) -> Generator[Any, Any, JobState]:
    """Run the ``bacpac-restore`` worker to its end (another attempt when one is lost); its final state."""

    def start(attempt: int) -> TaskBase:
        job = SqlRestoreJobRequest(plan, attempt)
        return context.call_activity_with_retry(names.START_SQL_RESTORE_JOB, START_RETRY, job.to_dict())

    def report(progress: JobsProgress) -> None:
        if progress.progress_bytes:
            phase("rebuilding the BACPAC", bytes=progress.progress_bytes, total=plan.size_bytes)

    return (yield from run_job(context, start, POLL_RETRY, on_poll=report, traceparent=plan.traceparent))
