"""The worker's use case for job kind ``bacpac-restore``: rebuild a BACPAC point into a staging blob.

    resolve the passphrase -> open the repository -> load the point (a BACPAC file set)
    -> rebuild it into a scratch file (BacpacWriter: every CRC-32 and Origin.xml checksum checked)
    -> upload it to the staging blob the spec names (the worker's own identity) -> record the result

The app's SQL restore orchestration (``shared.services.sql_restore``) then imports that blob with an
ARM import and deletes it. Re-running the job rewrites the same blob, so a retried attempt is harmless.
A damaged point fails the job for good (IntegrityError is not retried) and nothing is uploaded:
the BACPAC only appears once it was rebuilt whole.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared.core.errors import UsageError
from shared.engine.fileset import restore_fileset
from shared.repo import walk
from shared.repo.point import Point
from shared.repo.repository import Repository
from shared.sources.bacpac import CONTAINER, BacpacWriter

from .job_report import RepositoryJob
from .job_spec import JobSpec
from .job_status import JobStatus

__all__ = ["BacpacRestoreJob", "BacpacUploads", "load_bacpac_point", "rebuild_bacpac"]

log = logging.getLogger(__name__)


class BacpacUploads(Protocol):
    def upload(self, source: Path, url: str) -> int:
        """Write the file ``source`` to the blob at ``url`` (no SAS), replacing it; its size."""
        ...


def load_bacpac_point(repo: Repository, point_id: str) -> Point:
    """The BACPAC point ``point_id`` (an id or unique prefix); UsageError when it is another kind."""
    point = repo.load_point(repo.resolve_point(point_id))
    if point.files is None or point.files.container != CONTAINER:
        raise UsageError(
            f"restore point {point.point_id} is not a BACPAC point (it is a {point.kind} point)",
            hint="choose a point of kind bacpac: `bulwark points` or GET /api/points?resource=<database id>",
        )
    return point


def rebuild_bacpac(
    repo: Repository, point: Point, target: Path, *, workers: int = 2, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Rebuild ``point`` at ``target`` (created whole or not at all); what was written."""
    files = walk.files_of(point)
    with BacpacWriter(target, files) as sink:
        result = restore_fileset(repo, point, sink, workers=workers, progress=progress)
    return {"point_id": point.point_id, "members": result.members, "bytes": target.stat().st_size}


@dataclass(frozen=True, kw_only=True)
class BacpacRestoreJob(RepositoryJob, kind="bacpac-restore", source_kind="bacpac-point", title="a BACPAC restore"):
    uploads: BacpacUploads

    def work(self, spec: JobSpec, running: JobStatus) -> dict[str, Any]:
        repo = self.open_repository(spec)
        point = load_bacpac_point(repo, spec.source.snapshot_id)
        progress = self.progress(running)
        with tempfile.TemporaryDirectory(prefix="bulwark-bacpac-restore-", dir=self.scratch) as folder:
            path = Path(folder) / "restore.bacpac"
            rebuilt = rebuild_bacpac(repo, point, path, workers=self.workers, progress=progress)
            log.info("job %s: rebuilt point %s (%d bytes)", spec.job_id, point.point_id, rebuilt["bytes"])
            self.uploads.upload(path, spec.source.disk_id)
        return {
            "job_id": spec.job_id,
            "kind": "bacpac-restore",
            "repository": spec.repository.location,
            "blob": spec.source.disk_id,
            "reused": False,
            "bytes_read": rebuilt["bytes"],
            "bytes_stored": 0,
            **rebuilt,
        }
