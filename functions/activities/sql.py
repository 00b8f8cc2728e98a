"""SQL (BACPAC) activities: discover databases, pre-flight, staging copy, export, start the BACPAC
worker, record the point, clean up. The SQL password and the storage SAS are resolved inside the use
cases (``shared.services.sql_backup``); nothing secret enters or leaves an activity."""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions import names
from shared.services.messages import (
    DiscoverRequest,
    RecordPointsRequest,
    SqlBackupRequest,
    SqlExportPoll,
    SqlExportRequest,
    StartBacpacJobRequest,
)
from shared.wiring import sql_services

from .guard import guarded

bp = df.Blueprint()


@bp.activity_trigger(input_name="request", activity=names.DISCOVER_SQL_DATABASES)
def discover_sql_databases(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.DISCOVER_SQL_DATABASES,
        lambda: sql_services().discover.run(DiscoverRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.SQL_PREFLIGHT)
def sql_preflight(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SQL_PREFLIGHT,
        lambda: sql_services().preflight.run(SqlBackupRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.SQL_COPY_TO_STAGING)
def sql_copy_to_staging(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SQL_COPY_TO_STAGING,
        lambda: sql_services().copy.run(SqlBackupRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.SQL_EXPORT_BACPAC)
def sql_export_bacpac(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SQL_EXPORT_BACPAC,
        lambda: sql_services().export.run(SqlExportRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.SQL_POLL_EXPORT)
def sql_poll_export(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SQL_POLL_EXPORT,
        lambda: sql_services().export.poll(SqlExportPoll.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.START_BACPAC_JOB)
def start_bacpac_job(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.START_BACPAC_JOB,
        lambda: sql_services().jobs.start(StartBacpacJobRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.RECORD_BACPAC_POINT)
def record_bacpac_point(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.RECORD_BACPAC_POINT,
        lambda: sql_services().record_point.run(RecordPointsRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.SQL_CLEANUP)
def sql_cleanup(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SQL_CLEANUP,
        lambda: sql_services().cleanup.run(SqlBackupRequest.from_dict(request)).to_dict(),
        request=request,
    )
