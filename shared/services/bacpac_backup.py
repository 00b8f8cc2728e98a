"""The worker's use case for job kind ``bacpac-backup``: store a staging BACPAC in the repository.

    resolve the passphrase -> open the repository -> a point tagged with this job id exists? report it
    -> download the staging BACPAC (the worker's own identity; Azurite: its development account)
    -> validate it (BacpacFile) -> backup_fileset(kind "bacpac") -> record the result

Idempotent like the image job: the point carries ``job=<job id>``, so a re-run after a crash that
got as far as saving the point reports it. Each BACPAC member is cut into content-defined chunks,
so an unchanged table costs no new chunks: ``chunks_new``/``bytes_new`` in the result say what the
session added.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared.engine.fileset import backup_fileset
from shared.repo.point import Point
from shared.sources.bacpac import BacpacFile

from .image_backup import JOB_TAG, find_job_point
from .job_report import RepositoryJob
from .job_spec import JobSpec
from .job_status import JobStatus

__all__ = ["BacpacBackupJob", "BacpacDownloads"]

log = logging.getLogger(__name__)


class BacpacDownloads(Protocol):
    def download(self, url: str, target: Path) -> int:
        """Copy the blob at ``url`` (no SAS) into ``target``; returns its size."""
        ...


@dataclass(frozen=True, kw_only=True)
class BacpacBackupJob(RepositoryJob, kind="bacpac-backup", source_kind="bacpac-blob", title="a BACPAC backup"):
    downloads: BacpacDownloads

    def work(self, spec: JobSpec, running: JobStatus) -> dict[str, Any]:
        repo = self.open_repository(spec)
        existing = find_job_point(repo, spec.job_id)
        if existing is not None:
            log.info("job %s: restore point %s exists already; reporting it", spec.job_id, existing.point_id)
            return _result(spec, existing, reused=True)
        with tempfile.TemporaryDirectory(prefix="bulwark-bacpac-", dir=self.scratch) as folder:
            path = Path(folder) / "export.bacpac"
            size = self.downloads.download(spec.source.snapshot_id, path)
            log.info("job %s: downloaded the staging BACPAC (%d bytes)", spec.job_id, size)
            with BacpacFile(path, source_id=spec.source.disk_id) as bacpac:
                tables = len(bacpac.tables())
                outcome = backup_fileset(
                    repo,
                    bacpac,
                    kind="bacpac",
                    tags={**spec.tags, JOB_TAG: spec.job_id},
                    workers=self.workers,
                    progress=self.progress(running),
                )
        result = _result(spec, outcome.point, reused=False)
        result.update(
            members=outcome.members,
            tables=tables,
            chunks=outcome.chunks,
            chunks_new=outcome.chunks_new,
            chunks_dedup=outcome.chunks_dedup,
            bacpac_bytes=size,
        )
        return result


def _result(spec: JobSpec, point: Point, *, reused: bool) -> dict[str, Any]:
    stats: Mapping[str, Any] = point.stats or {}
    size = sum(m.size for m in point.files.members) if point.files is not None else 0
    return {
        "job_id": spec.job_id,
        "kind": "bacpac",
        "repository": spec.repository.location,
        "point_id": point.point_id,
        "time": point.time,
        "reused": reused,
        "parent_point_id": None,
        "incremental": False,
        "database_id": spec.source.disk_id,
        "blob": spec.source.snapshot_id,
        "size_bytes": size,
        "bytes_read": int(stats.get("bytes_read", 0)),
        "bytes_new": int(stats.get("bytes_new", 0)),
        "bytes_stored": int(stats.get("bytes_stored", 0)),
        "duration_s": float(stats.get("duration_s", 0.0)),
    }
