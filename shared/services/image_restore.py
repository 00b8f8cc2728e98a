"""The worker's restore use case: write one repository point into a managed disk (job kind
``image-restore``).

    resolve the passphrase -> open the repository -> load the point -> grant the write SAS of the
    upload disk -> write the allocated blocks (Put Page, <= 4 MiB each) -> the fixed-VHD footer
    -> end access (Azure checks the footer and the disk becomes Unattached) -> record the result

The orchestration created the disk (createOption Upload, the point's size) and deletes it if the
job fails for good. Idempotent: another attempt writes the same bytes again; a disk whose upload
already ended is reported as done (the job-status record of the earlier attempt has the result).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from shared.azure.ports import DiskAccess
from shared.core.clock import Clock
from shared.core.errors import BulwarkError, UsageError
from shared.engine.restore import restore_into
from shared.repo import walk

from .job_report import JobProgress, open_job_repository, run_reported
from .job_spec import JobSpec
from .job_status import JobStatus, JobStatusStore
from .ports import RepositoryOpener, SecretResolver, UploadTargetFactory

__all__ = ["ImageRestoreJob"]

log = logging.getLogger(__name__)

# Put Page takes at most 4 MiB: adjacent blocks go out together, a quarter of the requests.
MAX_WRITE = 4 << 20


class ImageRestoreJob:
    def __init__(
        self,
        *,
        secrets: SecretResolver,
        repositories: RepositoryOpener,
        access: DiskAccess,
        uploads: UploadTargetFactory,
        status: JobStatusStore,
        clock: Clock,
        workers: int = 4,
        progress_interval: float = 2.0,
    ) -> None:
        self._secrets = secrets
        self._repositories = repositories
        self._access = access
        self._uploads = uploads
        self._status = status
        self._clock = clock
        self._workers = workers
        self._progress_interval = progress_interval

    def run(self, spec: JobSpec) -> dict[str, Any]:
        if spec.kind != "image-restore" or spec.source.kind != "upload-disk":
            raise UsageError(f"job {spec.job_id} is not an image restore (kind {spec.kind})")
        return run_reported(
            spec, self._status, self._clock, lambda status: self._restore(spec, status), progress_key="bytes_written"
        )

    def _restore(self, spec: JobSpec, status: JobStatus) -> dict[str, Any]:
        disk_id, point_id = spec.source.disk_id, spec.source.snapshot_id
        repo = open_job_repository(spec, self._secrets, self._repositories)
        point = repo.load_point(point_id)
        size = walk.image_of(point).size
        # A footer that is the same on every attempt: the disk's identity does not change on retry.
        footer_id = uuid.uuid5(uuid.NAMESPACE_URL, f"bulwark:{spec.job_id}")
        sas = self._access.grant_write(disk_id)
        try:
            progress = JobProgress(self._status, status, self._clock, self._progress_interval)
            with self._uploads.open(sas, size) as target:
                restored = restore_into(
                    repo, point, target, workers=self._workers, progress=progress, coalesce=MAX_WRITE
                )
                target.finish(unique_id=footer_id, created=self._clock.now())
        except BaseException:
            try:
                self._access.revoke(disk_id)
            except BulwarkError as exc:  # the SAS expires on its own; the orchestration deletes the disk
                log.warning("job %s: could not end the upload of %s: %s", spec.job_id, disk_id, exc)
            raise
        self._access.revoke(disk_id)  # ends the upload: Azure validates the footer here
        log.info("job %s: wrote %d bytes of point %s into %s", spec.job_id, restored.bytes_written, point_id, disk_id)
        return {
            "job_id": spec.job_id,
            "repository": spec.repository.location,
            "point_id": point_id,
            "disk_id": disk_id,
            "size_bytes": size,
            "bytes_written": restored.bytes_written,
            "blocks": restored.blocks,
            "requests": restored.requests,
            "duration_s": round(restored.duration_s, 3),
        }
