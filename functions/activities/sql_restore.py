"""SQL restore activities: validate, start the bacpac-restore worker, import, swap, clean up. The SQL
password and the staging blob's SAS are made inside the use cases (``shared.services.sql_restore``);
nothing secret enters or leaves an activity."""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions import names
from shared.services.sql_restore import (
    SqlRestoreCleanupRequest,
    SqlRestoreImportPoll,
    SqlRestoreJobRequest,
    SqlRestorePlan,
    SqlRestoreRequest,
)
from shared.wiring import sql_restore_services

from .guard import guarded

bp = df.Blueprint()


@bp.activity_trigger(input_name="request", activity=names.SQL_RESTORE_VALIDATE)
def sql_restore_validate(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SQL_RESTORE_VALIDATE,
        lambda: sql_restore_services().validate.run(SqlRestoreRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.START_SQL_RESTORE_JOB)
def start_sql_restore_job(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.START_SQL_RESTORE_JOB,
        lambda: sql_restore_services().jobs.start(SqlRestoreJobRequest.from_dict(request)).to_dict(),
        request=request["plan"],
    )


@bp.activity_trigger(input_name="request", activity=names.SQL_RESTORE_IMPORT)
def sql_restore_import(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SQL_RESTORE_IMPORT,
        lambda: sql_restore_services().import_.run(SqlRestorePlan.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.SQL_RESTORE_POLL_IMPORT)
def sql_restore_poll_import(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SQL_RESTORE_POLL_IMPORT,
        lambda: sql_restore_services().import_.poll(SqlRestoreImportPoll.from_dict(request)).to_dict(),
        request=request["plan"],
    )


@bp.activity_trigger(input_name="request", activity=names.SQL_RESTORE_SWAP)
def sql_restore_swap(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SQL_RESTORE_SWAP,
        lambda: sql_restore_services().swap.run(SqlRestorePlan.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.SQL_RESTORE_CLEANUP)
def sql_restore_cleanup(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SQL_RESTORE_CLEANUP,
        lambda: sql_restore_services().cleanup.run(SqlRestoreCleanupRequest.from_dict(request)).to_dict(),
        request=request["plan"],
    )
