"""The narrow ports the use cases in ``shared.services`` take through their constructors.

The Azure ports (VM inventory, disk snapshots, disk access) live in ``shared.azure.ports``; the
ones here are what the services need beyond them. Adapters: ``shared.worker`` (secret files,
job-status tables, worker launchers), ``shared.wiring`` (composition), in-memory fakes in
``shared.services.memory`` for tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.azure.model import SasUrl
from shared.core.ranges import ChangeSet, Extent
from shared.repo.repository import Repository

from .job_spec import SecretRef
from .messages import PointRecord, SessionRecord

__all__ = [
    "ChangeAwareSource",
    "BlobSnapshots",
    "PointCatalog",
    "RepositoryOpener",
    "SecretResolver",
    "SessionCatalog",
    "SnapshotSourceFactory",
    "UploadTarget",
    "UploadTargetFactory",
    "VhdSource",
    "VhdSourceFactory",
    "WorkerLauncher",
    "WorkerRun",
]


class SecretResolver(Protocol):
    """Turns a secret reference into the secret. The value must never be logged or returned."""

    def resolve(self, reference: SecretRef) -> str: ...


class RepositoryOpener(Protocol):
    def open(self, location: str, passphrase: str) -> Repository:
        """Open the repository at ``location`` (directory or blob URL) with ``passphrase``."""
        ...


class ChangeAwareSource(Protocol):
    """A snapshot as the engine reads it (``BlockSource``) that can also say what changed."""

    @property
    def size(self) -> int: ...

    @property
    def source_id(self) -> str: ...

    def allocated(self) -> Iterator[Extent]: ...

    def read(self, offset: int, length: int) -> bytes: ...

    def changes_since(self, previous: SasUrl) -> ChangeSet: ...


class SnapshotSourceFactory(Protocol):
    def open(
        self, sas: SasUrl, *, source_id: str, renew: Callable[[], SasUrl]
    ) -> AbstractContextManager[ChangeAwareSource]:
        """A reader of the snapshot behind ``sas``; ``renew`` grants a fresh SAS if this one is refused."""
        ...


class VhdSource(Protocol):
    """A blob snapshot of an unmanaged VHD as the engine reads it, with the ``prevsnapshot`` diff."""

    @property
    def size(self) -> int: ...

    @property
    def source_id(self) -> str: ...

    def allocated(self) -> Iterator[Extent]: ...

    def read(self, offset: int, length: int) -> bytes: ...

    def changes_since(self, previous_snapshot: str) -> ChangeSet: ...


class VhdSourceFactory(Protocol):
    def open(self, vhd_uri: str, snapshot: str, *, source_id: str) -> AbstractContextManager[VhdSource]:
        """A reader of the blob snapshot ``snapshot`` (its time stamp) of the VHD at ``vhd_uri``."""
        ...


class UploadTarget(Protocol):
    """A managed disk open for upload (``shared.azure.upload.DiskUpload``): ``write`` whole
    512-byte pages from many threads, then ``finish`` with the fixed-VHD footer."""

    def write(self, offset: int, data: bytes) -> None: ...

    def finish(self, *, unique_id: uuid.UUID, created: datetime) -> None:
        """Write the fixed-VHD footer (Azure checks it when the upload ends)."""
        ...


class UploadTargetFactory(Protocol):
    def open(self, sas: SasUrl, size: int) -> AbstractContextManager[UploadTarget]:
        """The disk behind the write SAS ``sas``, ``size`` bytes without its footer."""
        ...


@dataclass(frozen=True)
class WorkerRun:
    """What a launcher knows about one launched worker."""

    state: str
    """``pending``, ``running``, ``terminated`` or ``missing`` (the launcher has no record of it)."""
    exit_code: int | None = None
    detail: str = ""


class WorkerLauncher(Protocol):
    """Starts worker processes/containers for job specs and reports on them.

    ``launch`` is idempotent per ``name``: launching a name that exists returns the same reference.
    The job JSON holds references only, but launchers still pass it as a secure value.
    """

    def launch(self, *, name: str, job_json: str, location: str) -> str:
        """Start a worker running ``job_json``; return a reference for ``state``/``remove``."""
        ...

    def state(self, reference: str) -> WorkerRun: ...

    def logs(self, reference: str, *, tail: int = 20) -> str:
        """The last ``tail`` lines the worker wrote (empty when gone); redacted by the launcher."""
        ...

    def remove(self, reference: str) -> None:
        """Stop and delete the worker; harmless when it is gone already."""
        ...


class BlobSnapshots(Protocol):
    """Blob snapshots of unmanaged (VHD page blob) disks (``shared.azure.pageblob.VhdBlobs``)."""

    def create_snapshot(self, vhd_uri: str, *, metadata: dict[str, str] | None = None) -> str:
        """Snapshot the blob; returns the snapshot's timestamp."""
        ...


class PointCatalog(Protocol):
    """Restore points recorded by sessions (``shared.catalog`` behind an adapter)."""

    def record_points(self, points: Sequence[PointRecord]) -> None:
        """Record the image-level points one session made of one VM (one per disk). Insert or replace
        by ``point_id``: a replayed activity records the same points again."""
        ...

    def last_image_point(self, policy_id: str, vm_id: str, disk_id: str) -> PointRecord | None:
        """The newest image-level point of the VM's disk ``disk_id`` made by ``policy_id``."""
        ...


class SessionCatalog(Protocol):
    def record_session(self, session: SessionRecord) -> None:
        """Insert or replace (by ``session_id``)."""
        ...
