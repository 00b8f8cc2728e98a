"""Image-level repository retention, the app's side: decide, start the worker, record.

After an image-level session the session orchestrator runs, for its policy:

1. ``plan`` (activity ``plan_image_retention``): the policy's image-level points in the catalog (one
   per VM and session, each naming its disks' repository points) through
   ``select_points_to_delete`` with ``image_backup.retention``. Time is measured from the later of
   the orchestration's clock and the newest point (the snapshot's time, Azure's clock), so a clock
   that lags Azure never keeps too much or drops too early. The newest point of each VM is always
   kept: it is the parent of the next incremental.
2. ``start`` (activity ``start_maintenance_job``): a ``repository-maintenance`` worker
   (``shared.services.repo_maintenance``) in the repository's region forgets those repository
   points and prunes, with the repository key it resolves itself. Its spec carries this activity's
   ``traceparent``, so the worker's span joins the session's trace.
3. ``record`` (activity ``record_forgotten_points``): the catalog drops the VM points whose
   repository points are all gone; the session record lists them (``points_forgotten``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

from shared.catalog.model import PointKind
from shared.catalog.port import Catalog
from shared.core.clock import Clock, format_time, parse_time
from shared.policy.retention import BackupPoint, select_points_to_delete
from shared.telemetry.spans import current_traceparent

from .job_status import JobStatus, JobStatusStore
from .messages import ForgottenPoints, ImageRetentionPlan, ImageRetentionRequest, JobHandle
from .plan import Policies
from .ports import WorkerLauncher
from .repo_maintenance import MaintenanceSpec
from .worker_jobs import JobSettings, worker_name

__all__ = ["ImageRetention", "maintenance_job_id"]

log = logging.getLogger(__name__)

_SEARCH = 1000
"""Image points read per VM (a daily policy keeping ~2.7 years of points)."""


def maintenance_job_id(session_id: str) -> str:
    """One maintenance job per session, the same on every retry of the activity."""
    return f"maint-{hashlib.sha256(session_id.encode()).hexdigest()[:24]}"


class ImageRetention:
    def __init__(
        self,
        *,
        policies: Policies,
        catalog: Catalog,
        launcher: WorkerLauncher,
        status: JobStatusStore,
        settings: JobSettings,
        clock: Clock,
    ) -> None:
        self._policies = policies
        self._catalog = catalog
        self._launcher = launcher
        self._status = status
        self._settings = settings
        self._clock = clock

    def plan(self, request: ImageRetentionRequest) -> ImageRetentionPlan:
        retention = self._policies.get_plan(request.policy_id).image_retention
        empty = ImageRetentionPlan(
            request.policy_id, request.session_id, request.location, traceparent=request.traceparent
        )
        if retention is None:
            return empty
        points = [
            point
            for vm_id in sorted(set(request.vm_ids))
            for point in self._catalog.list_points(vm_id, kind=PointKind.IMAGE, limit=_SEARCH)
            if point.policy_id == request.policy_id
        ]
        if not points:
            return empty
        now = max([parse_time(request.now), *(p.time for p in points)])
        decided = select_points_to_delete(
            [BackupPoint(p.point_id, p.resource_id.lower(), p.time) for p in points], retention, now
        )
        for line in decided.explain():
            log.info("policy %s image retention: %s", request.policy_id, line)
        by_id = {p.point_id: p for p in points}
        doomed = [by_id[point_id] for point_id in decided.to_delete]
        repository = tuple(
            disk.repository_point_id for point in doomed for disk in point.disks if disk.repository_point_id
        )
        return ImageRetentionPlan(
            request.policy_id,
            request.session_id,
            request.location,
            point_ids=tuple(p.point_id for p in doomed),
            repository_point_ids=repository,
            kept=len(points) - len(doomed),
            traceparent=request.traceparent,
        )

    def start(self, plan: ImageRetentionPlan) -> JobHandle:
        backup = self._policies.get_plan(plan.policy_id)
        job_id = maintenance_job_id(plan.session_id)
        spec = MaintenanceSpec(
            job_id=job_id,
            repository=backup.repository,
            arm=self._settings.arm,
            status=self._settings.status,
            policy_id=plan.policy_id,
            forget=plan.repository_point_ids,
            traceparent=current_traceparent(plan.traceparent),  # this activity's span: the worker's joins it
            tags={"policy": plan.policy_id, "session": plan.session_id},
        )
        self._status.put(JobStatus(job_id, 1, "pending", format_time(self._clock.now())))
        region = backup.repository_region or plan.location
        worker = self._launcher.launch(name=worker_name(job_id, 1), job_json=spec.to_json(), location=region)
        log.info("policy %s: maintenance job %s forgets %d point(s)", plan.policy_id, job_id, len(spec.forget))
        return JobHandle(
            job_id=job_id,
            attempt=1,
            worker=worker,
            disk_id="",
            snapshot_id="",
            poll_seconds=self._settings.poll_seconds,
            deadline_seconds=self._settings.deadline_seconds,
            max_attempts=1,
        )

    def record(self, forgotten: ForgottenPoints) -> ForgottenPoints:
        """Drop the catalog points whose every repository point is gone; returns what was dropped."""
        gone = set(forgotten.repository_point_ids)
        wanted = set(forgotten.point_ids)
        dropped: list[str] = []
        for vm_id in sorted(set(forgotten.vm_ids)):
            for point in self._catalog.list_points(vm_id, kind=PointKind.IMAGE, limit=_SEARCH):
                disks = [d.repository_point_id for d in point.disks if d.repository_point_id]
                if point.point_id in wanted and disks and all(d in gone for d in disks):
                    self._catalog.remove_point(point)
                    dropped.append(point.point_id)
        return replace(forgotten, point_ids=tuple(sorted(dropped)))
