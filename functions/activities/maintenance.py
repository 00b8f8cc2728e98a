"""Repository-maintenance activities: image-level retention's plan, its worker, and the catalog."""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions import names
from shared.services.image_retention import ImageRetention
from shared.services.messages import ForgottenPoints, ImageRetentionPlan, ImageRetentionRequest
from shared.wiring import services

from .guard import guarded

bp = df.Blueprint()


def _retention() -> ImageRetention:
    retention = services().image_retention
    assert retention is not None, "build_services wires image retention"
    return retention


@bp.activity_trigger(input_name="request", activity=names.PLAN_IMAGE_RETENTION)
def plan_image_retention(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.PLAN_IMAGE_RETENTION,
        lambda: _retention().plan(ImageRetentionRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.START_MAINTENANCE_JOB)
def start_maintenance_job(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.START_MAINTENANCE_JOB,
        lambda: _retention().start(ImageRetentionPlan.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.RECORD_FORGOTTEN_POINTS)
def record_forgotten_points(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.RECORD_FORGOTTEN_POINTS,
        lambda: _retention().record(ForgottenPoints.from_dict(request)).to_dict(),
        request=request,
    )
