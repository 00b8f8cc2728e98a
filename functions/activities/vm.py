"""VM activities: discover the policy's VMs, snapshot a disk, record restore points, snapshot retention."""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions import names
from shared.services.messages import DiscoverRequest, RecordPointsRequest, RetentionRequest, SnapshotRequest
from shared.wiring import services

from .guard import guarded
from .observe import observe_retention, observe_snapshot

bp = df.Blueprint()


@bp.activity_trigger(input_name="request", activity=names.DISCOVER_VMS)
def discover_vms(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.DISCOVER_VMS,
        lambda: services().discover.run(DiscoverRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.SNAPSHOT_DISK)
def snapshot_disk(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.SNAPSHOT_DISK,
        lambda: services().snapshot.run(SnapshotRequest.from_dict(request)).to_dict(),
        request=request,
        observe=observe_snapshot,
    )


@bp.activity_trigger(input_name="request", activity=names.RECORD_RESTORE_POINTS)
def record_restore_points(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.RECORD_RESTORE_POINTS,
        lambda: services().record_points.run(RecordPointsRequest.from_dict(request)).to_dict(),
        request=request,
    )


@bp.activity_trigger(input_name="request", activity=names.APPLY_SNAPSHOT_RETENTION)
def apply_snapshot_retention(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.APPLY_SNAPSHOT_RETENTION,
        lambda: services().retention.run(RetentionRequest.from_dict(request)).to_dict(),
        request=request,
        observe=observe_retention,
    )
