"""The worker's use case: back up one disk snapshot into the repository (job kind ``image-backup``).

    resolve the passphrase -> open the repository -> a point tagged with this job id exists? report it
    -> grant read SAS (snapshot, and the previous snapshot for the diff; VHD blobs are read with the
worker's identity instead) -> read changed or allocated
    ranges -> backup_image -> revoke every SAS (also on failure) -> record the result

Idempotent: the restore point carries the tag ``job=<job id>``, so a run after a crash that got as
far as saving the point reports that point instead of backing up again; a run killed earlier left
only unreferenced data, which the repository's design makes harmless (prune removes it).

Falls back to a full read, never to a wrong incremental: when the parent point is gone, belongs to
another disk, or the previous snapshot can no longer be diffed, every allocated range is read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, cast

from shared.azure.model import SasUrl
from shared.azure.ports import DiskAccess
from shared.core.clock import Clock
from shared.core.errors import (
    AzureResourceNotFoundError,
    BulwarkError,
    ConfigError,
    PointNotFoundError,
    SourceError,
)
from shared.core.ranges import ChangeSet
from shared.engine.backup import backup_image
from shared.repo.point import Point
from shared.repo.repository import Repository

from .job_report import JobProgress, is_retryable, open_job_repository, run_reported
from .job_spec import JobSpec, split_blob_snapshot
from .job_status import JobStatus, JobStatusStore
from .ports import (
    ChangeAwareSource,
    RepositoryOpener,
    SecretResolver,
    SnapshotSourceFactory,
    VhdSource,
    VhdSourceFactory,
)

# JobProgress and is_retryable live in job_report; they stay importable from here for older callers.
__all__ = ["JOB_TAG", "ImageBackupJob", "JobProgress", "find_job_point", "is_retryable"]

JOB_TAG = "job"
log = logging.getLogger(__name__)


class ImageBackupJob:
    def __init__(
        self,
        *,
        secrets: SecretResolver,
        repositories: RepositoryOpener,
        access: DiskAccess,
        sources: SnapshotSourceFactory,
        status: JobStatusStore,
        vhds: VhdSourceFactory | None = None,
        clock: Clock,
        workers: int = 2,
        progress_interval: float = 2.0,
    ) -> None:
        self._secrets = secrets
        self._repositories = repositories
        self._access = access
        self._sources = sources
        self._vhds = vhds
        self._status = status
        self._clock = clock
        self._workers = workers
        self._progress_interval = progress_interval

    def run(self, spec: JobSpec) -> dict[str, Any]:
        """Run the job; the result (also written to the status record) holds ids and counts only."""
        return run_reported(
            spec, self._status, self._clock, lambda status: self._run(spec, status), progress_key="bytes_read"
        )

    def _run(self, spec: JobSpec, status: JobStatus) -> dict[str, Any]:
        repo = open_job_repository(spec, self._secrets, self._repositories)
        existing = find_job_point(repo, spec.job_id)
        if existing is not None:
            log.info("job %s: restore point %s exists already; reporting it", spec.job_id, existing.point_id)
            return _result(spec, existing, reused=True)
        return self._backup(spec, repo, status)

    # -- the backup ------------------------------------------------------------------------------

    def _backup(self, spec: JobSpec, repo: Repository, status: JobStatus) -> dict[str, Any]:
        parent = self._parent(repo, spec)
        granted: list[str] = []
        try:
            with self._open(spec, granted) as source:
                changes = self._changes(spec, source, granted) if parent is not None else None
                if changes is None:
                    parent = None
                reporter = JobProgress(self._status, status, self._clock, self._progress_interval)
                tags = {**spec.tags, JOB_TAG: spec.job_id}
                outcome = backup_image(
                    repo,
                    source,
                    parent=parent,
                    changes=changes,
                    tags=tags,
                    workers=self._workers,
                    progress=reporter,
                )
        finally:
            for resource_id in granted:
                try:
                    self._access.revoke(resource_id)
                except BulwarkError as exc:  # the SAS expires on its own; say so and go on
                    log.warning("job %s: could not end access to %s: %s", spec.job_id, resource_id, exc)
        return _result(spec, outcome.point, reused=False)

    def _open(self, spec: JobSpec, granted: list[str]) -> AbstractContextManager[ChangeAwareSource | VhdSource]:
        """The snapshot as a source: a managed snapshot through a SAS this job grants (and renews if
        it is refused), or a VHD blob snapshot through the worker's identity."""
        ref = spec.source
        if ref.kind == "vhd-blob":
            if self._vhds is None:
                raise ConfigError("this worker cannot read VHD blobs (no blob source configured)")
            vhd_uri, stamp = split_blob_snapshot(ref.snapshot_id)
            return self._vhds.open(vhd_uri, stamp, source_id=ref.disk_id)
        sas = self._grant(ref.snapshot_id, granted)
        return self._sources.open(sas, source_id=ref.disk_id, renew=lambda: self._access.grant_read(ref.snapshot_id))

    def _grant(self, resource_id: str, granted: list[str]) -> SasUrl:
        sas = self._access.grant_read(resource_id)
        granted.append(resource_id)
        return sas

    def _parent(self, repo: Repository, spec: JobSpec) -> Point | None:
        parent_id = spec.source.parent_point_id
        if parent_id is None:
            return None
        try:
            parent = repo.load_point(parent_id)
        except PointNotFoundError:
            log.warning("job %s: parent point %s is gone; reading the whole disk", spec.job_id, parent_id)
            return None
        if parent.source != spec.source.disk_id or parent.image is None:
            log.warning("job %s: point %s is not of this disk; reading the whole disk", spec.job_id, parent_id)
            return None
        return parent

    def _changes(self, spec: JobSpec, source: ChangeAwareSource | VhdSource, granted: list[str]) -> ChangeSet | None:
        previous_id = spec.source.previous_snapshot_id
        if previous_id is None:
            return None
        try:
            if spec.source.kind == "vhd-blob":
                changes = cast(VhdSource, source).changes_since(split_blob_snapshot(previous_id)[1])
            else:
                previous = self._grant(previous_id, granted)
                changes = cast(ChangeAwareSource, source).changes_since(previous)
        except (AzureResourceNotFoundError, SourceError) as exc:
            log.warning("job %s: cannot diff against %s (%s); reading the whole disk", spec.job_id, previous_id, exc)
            return None
        return changes


def find_job_point(repo: Repository, job_id: str) -> Point | None:
    """The restore point a previous attempt of ``job_id`` saved, if any."""
    matches = [p for p in repo.list_points() if p.tags.get(JOB_TAG) == job_id]
    return max(matches, key=lambda p: p.time) if matches else None


def _result(spec: JobSpec, point: Point, *, reused: bool) -> dict[str, Any]:
    stats: Mapping[str, Any] = point.stats or {}
    return {
        "job_id": spec.job_id,
        "repository": spec.repository.location,
        "point_id": point.point_id,
        "time": point.time,
        "reused": reused,
        "parent_point_id": point.parent,
        "incremental": point.parent is not None,
        "disk_id": spec.source.disk_id,
        "snapshot_id": spec.source.snapshot_id,
        "size_bytes": point.image.size if point.image else 0,
        "bytes_read": int(stats.get("bytes_read", 0)),
        "bytes_new": int(stats.get("bytes_new", 0)),
        "bytes_stored": int(stats.get("bytes_stored", 0)),
        "duration_s": float(stats.get("duration_s", 0.0)),
    }
