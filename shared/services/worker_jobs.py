"""Start image-backup workers and report on them: the use cases behind ``start_backup_job`` and
``poll_backup_jobs``.

``start`` builds a job spec that holds references only (repository location, passphrase
reference, how to reach ARM and the job-status table, snapshot ids), marks the job ``pending`` in
the status table and has the launcher start a worker in the right region: the repository's
(the seed's rule) or, when the policy says so, the VM's. The diff base is the disk's newest
image-level point in the catalog, when it was made into the same repository.

``poll`` reads the status record of each job's attempt and the launcher's view of its worker: a
terminal record ends the job; a worker that ended (or vanished) without one is a failed attempt
worth retrying. Finished workers are removed (best effort).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from shared.core.clock import Clock, format_time
from shared.core.errors import BulwarkError
from shared.telemetry.spans import current_traceparent

from .job_spec import ArmRef, JobSource, JobSpec, StatusRef
from .job_status import JobStatus, JobStatusStore
from .messages import JobHandle, JobState, PollJobsRequest, PollJobsResult, StartJobRequest
from .plan import Policies
from .ports import PointCatalog, WorkerLauncher, WorkerRun

__all__ = ["JobSettings", "WorkerJobs", "job_id_for", "worker_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSettings:
    arm: ArmRef
    status: StatusRef
    poll_seconds: int = 30
    deadline_seconds: int = 20 * 3600
    max_attempts: int = 3


def job_id_for(session_id: str, disk_id: str) -> str:
    """The job of one disk in one session: the same on every retry (the worker's idempotency key)."""
    digest = hashlib.sha256(f"{session_id}\n{disk_id.lower()}".encode()).hexdigest()
    return f"job-{digest[:24]}"


def worker_name(job_id: str, attempt: int) -> str:
    """A container group name: lowercase letters, digits and hyphens, at most 63 characters."""
    return f"bulwark-{job_id}-a{attempt}"


class WorkerJobs:
    def __init__(
        self,
        *,
        policies: Policies,
        catalog: PointCatalog,
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

    def start(self, request: StartJobRequest) -> JobHandle:
        plan = self._policies.get_plan(request.policy_id)
        disk = request.disk
        job_id = job_id_for(request.session_id, disk.disk_id)
        previous = self._catalog.last_image_point(request.policy_id, request.vm_id, disk.disk_id)
        if previous is not None and (
            previous.repository != plan.repository.location or previous.snapshot_id == request.snapshot_id
        ):
            previous = None
        spec = JobSpec(
            job_id=job_id,
            kind="image-backup",
            attempt=request.attempt,
            traceparent=current_traceparent(request.traceparent),
            repository=plan.repository,
            arm=self._settings.arm,
            status=self._settings.status,
            source=JobSource(
                kind="managed-disk" if disk.managed else "vhd-blob",
                disk_id=disk.disk_id,
                snapshot_id=request.snapshot_id,
                previous_snapshot_id=previous.snapshot_id if previous else None,
                parent_point_id=previous.point_id if previous else None,
            ),
            tags={
                "policy": request.policy_id,
                "session": request.session_id,
                "vm": request.vm_id,
                "disk": disk.disk_id,
                "lun": disk.lun_label,
                "snapshot": request.snapshot_id,
            },
        )
        self._status.put(JobStatus(job_id, request.attempt, "pending", format_time(self._clock.now())))
        region = plan.worker_region(request.vm_location)
        worker = self._launcher.launch(
            name=worker_name(job_id, request.attempt), job_json=spec.to_json(), location=region
        )
        log.info("job %s attempt %d: worker %s in %s", job_id, request.attempt, worker, region)
        return JobHandle(
            job_id=job_id,
            attempt=request.attempt,
            worker=worker,
            disk_id=disk.disk_id,
            snapshot_id=request.snapshot_id,
            lun=disk.lun,
            parent_point_id=spec.source.parent_point_id,
            previous_snapshot_id=spec.source.previous_snapshot_id,
            poll_seconds=self._settings.poll_seconds,
            deadline_seconds=self._settings.deadline_seconds,
            max_attempts=self._settings.max_attempts,
        )

    def poll(self, request: PollJobsRequest) -> PollJobsResult:
        return PollJobsResult(tuple(self._poll_one(handle) for handle in request.jobs))

    def stop(self, request: PollJobsRequest) -> PollJobsResult:
        """Remove the workers of ``request`` (a deadline passed); they count as failed attempts."""
        states = []
        for handle in request.jobs:
            self._remove(handle)
            states.append(JobState(handle.job_id, handle.attempt, "failed", reason="stopped: the deadline passed"))
        return PollJobsResult(tuple(states))

    def _poll_one(self, handle: JobHandle) -> JobState:
        record = self._record(handle)
        if record is not None and record.is_terminal:
            self._finish(handle, failed=record.state == "failed")
            return _state(record)
        run = self._launcher.state(handle.worker)
        if run.state in ("pending", "running"):
            progress = record.progress_bytes if record is not None else 0
            return JobState(handle.job_id, handle.attempt, "running", progress_bytes=progress)
        record = self._record(handle)  # it may have finished between the two reads
        if record is not None and record.is_terminal:
            self._finish(handle, failed=record.state == "failed")
            return _state(record)
        self._finish(handle, failed=True)
        return JobState(handle.job_id, handle.attempt, "failed", retryable=True, reason=_lost(run))

    def _finish(self, handle: JobHandle, *, failed: bool) -> None:
        """Keep the worker's last words in the app's log, then remove it."""
        try:
            tail = self._launcher.logs(handle.worker)
        except BulwarkError as exc:
            tail = f"(its logs could not be read: {exc})"
        level = logging.WARNING if failed else logging.DEBUG
        log.log(level, "job %s attempt %d ended; the worker's last lines:\n%s", handle.job_id, handle.attempt, tail)
        self._remove(handle)

    def _record(self, handle: JobHandle) -> JobStatus | None:
        record = self._status.get(handle.job_id)
        if record is None or record.attempt != handle.attempt:
            return None
        return record

    def _remove(self, handle: JobHandle) -> None:
        try:
            self._launcher.remove(handle.worker)
        except BulwarkError as exc:  # a leftover container costs little; the next poll or session retries
            log.warning("job %s: could not remove worker %s: %s", handle.job_id, handle.worker, exc)


def _state(record: JobStatus) -> JobState:
    if record.state == "succeeded":
        return JobState(
            record.job_id,
            record.attempt,
            "succeeded",
            progress_bytes=record.progress_bytes,
            result=dict(record.result or {}),
        )
    return JobState(
        record.job_id,
        record.attempt,
        "failed",
        retryable=record.retryable,
        reason=record.error or "the worker failed",
    )


def _lost(run: WorkerRun) -> str:
    if run.state == "missing":
        return "the worker is gone and left no result"
    code = f" with exit code {run.exit_code}" if run.exit_code is not None else ""
    detail = f" ({run.detail})" if run.detail else ""
    return f"the worker ended{code} without a result{detail}"
