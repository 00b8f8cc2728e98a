"""Worker-job activities: start an image-backup worker, poll workers, stop workers past their deadline."""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions import names
from shared.services.messages import PollJobsRequest, StartJobRequest
from shared.wiring import services

from .guard import guarded

bp = df.Blueprint()


@bp.activity_trigger(input_name="request", activity=names.START_BACKUP_JOB)
def start_backup_job(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.START_BACKUP_JOB,
        lambda: services().jobs.start(StartJobRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.POLL_BACKUP_JOBS)
def poll_backup_jobs(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.POLL_BACKUP_JOBS,
        lambda: services().jobs.poll(PollJobsRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.STOP_BACKUP_JOBS)
def stop_backup_jobs(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.STOP_BACKUP_JOBS,
        lambda: services().jobs.stop(PollJobsRequest.from_dict(request)).to_dict(),
        request=request,
    )
