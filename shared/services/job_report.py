"""How a worker job reports itself in the job-status table, the same for every job kind.

:func:`run_reported` wraps a job's work: it writes the attempt's ``running`` record, then either
``succeeded`` with the result or ``failed`` with the error (redacted), its code and whether another
attempt may help (:func:`is_retryable`), and raises the error again. :class:`JobProgress` updates
the running record's byte count while the work goes on. The app's poller reads nothing else.

:func:`open_job_repository` opens the spec's repository: the passphrase lives only in its frame,
so a job never holds it beyond opening. :class:`RepositoryJob` puts these together for a job that
works on one repository: the parts it is built from, the check of the spec's kinds and ``run``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from shared.core.clock import Clock, format_time
from shared.core.errors import (
    AzureAuthError,
    AzureResourceNotFoundError,
    BulwarkError,
    ConfigError,
    IntegrityError,
    RepositoryNotFoundError,
    UnsupportedDiskError,
    UsageError,
    WrongKeyError,
    redact,
)
from shared.repo.repository import Repository

from .job_spec import JobSpec, RepositoryRef
from .job_status import JobStatus, JobStatusStore
from .ports import RepositoryOpener, SecretResolver

__all__ = ["JobProgress", "RepositoryJob", "failed_status", "is_retryable", "open_job_repository", "run_reported"]

log = logging.getLogger(__name__)

_PERMANENT = (
    ConfigError,
    UsageError,
    WrongKeyError,
    IntegrityError,
    RepositoryNotFoundError,
    AzureResourceNotFoundError,
    AzureAuthError,
    UnsupportedDiskError,
)


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt of the job may succeed (crashes and transient failures may)."""
    return not isinstance(exc, _PERMANENT)


class JobAttempt(Protocol):
    """What reporting needs of a job's spec (:class:`JobSpec`, or the maintenance spec)."""

    @property
    def job_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def repository(self) -> RepositoryRef: ...


def run_reported(
    spec: JobAttempt,
    store: JobStatusStore,
    clock: Clock,
    work: Callable[[JobStatus], dict[str, Any]],
    *,
    progress_key: str | None,
) -> dict[str, Any]:
    """Run ``work`` as attempt ``spec.attempt`` of the job and record how it went; ``work`` gets the
    running record (for :class:`JobProgress`), and its result's ``progress_key`` (if any) is the
    final byte count. The result holds ids and counts only: it is stored as it is."""
    now = format_time(clock.now())
    status = JobStatus(spec.job_id, spec.attempt, "running", now, started=now)
    store.put(status)
    try:
        result = work(status)
    except BaseException as exc:
        store.put(failed_status(status, exc, format_time(clock.now())))
        raise
    progress = {} if progress_key is None else {"progress_bytes": result[progress_key]}
    store.put(status.with_state("succeeded", format_time(clock.now()), result=result, **progress))
    return result


def failed_status(status: JobStatus, exc: BaseException, updated: str) -> JobStatus:
    """The ``failed`` record of ``status``'s attempt: a Bulwark error's own (redacted) message and
    code; anything else, its type and redacted text under the code ``unexpected``."""
    if isinstance(exc, BulwarkError):
        message, code = redact(str(exc)), exc.code
    else:
        message, code = f"{type(exc).__name__}: {redact(str(exc))}", "unexpected"
    return status.with_state("failed", updated, error=message, error_code=code, retryable=is_retryable(exc))


def open_job_repository(spec: JobAttempt, secrets: SecretResolver, repositories: RepositoryOpener) -> Repository:
    """The spec's repository, opened with the passphrase its reference resolves to."""
    passphrase = secrets.resolve(spec.repository.passphrase)
    return repositories.open(spec.repository.location, passphrase)


@dataclass(frozen=True, kw_only=True)
class RepositoryJob(ABC):
    """A worker job on one repository: ``run`` checks that the spec is of the subclass's ``kind``
    and ``source_kind`` (ConfigError naming ``title`` otherwise), then reports ``work`` through
    :func:`run_reported`. A subclass names those in its class line and adds its own ports as fields:
    ``class Rebuild(RepositoryJob, kind="bacpac-restore", source_kind="bacpac-point", title="a rebuild")``."""

    kind: ClassVar[str]
    source_kind: ClassVar[str]
    title: ClassVar[str]
    progress_key: ClassVar[str] = "bytes_read"

    secrets: SecretResolver
    repositories: RepositoryOpener
    status: JobStatusStore
    clock: Clock
    workers: int = 2
    scratch: Path | None = None
    """Where the job's temporary files go (the system's temporary folder when None)."""
    progress_interval: float = 2.0

    def __init_subclass__(cls, *, kind: str, source_kind: str, title: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind, cls.source_kind, cls.title = kind, source_kind, title

    def run(self, spec: JobSpec) -> dict[str, Any]:
        if spec.kind != self.kind or spec.source.kind != self.source_kind:
            raise ConfigError(f"job {spec.job_id} is not {self.title} ({spec.kind}, {spec.source.kind})")
        return run_reported(
            spec, self.status, self.clock, lambda running: self.work(spec, running), progress_key=self.progress_key
        )

    @abstractmethod
    def work(self, spec: JobSpec, running: JobStatus) -> dict[str, Any]:
        """Do the job; its result (ids and counts) becomes the ``succeeded`` record's."""

    def open_repository(self, spec: JobSpec) -> Repository:
        return open_job_repository(spec, self.secrets, self.repositories)

    def progress(self, running: JobStatus) -> JobProgress:
        """Counts bytes into ``running``'s record while ``work`` goes on."""
        return JobProgress(self.status, running, self.clock, self.progress_interval)


class JobProgress:
    """Writes ``progress_bytes`` to the status record at most every ``interval`` seconds."""

    def __init__(self, store: JobStatusStore, status: JobStatus, clock: Clock, interval: float) -> None:
        self._store = store
        self._status = status
        self._clock = clock
        self._interval = interval
        self._done = 0
        self._last = clock.now()

    def __call__(self, count: int) -> None:
        self._done += count
        now = self._clock.now()
        if (now - self._last).total_seconds() >= self._interval:
            self._last = now
            try:
                self._store.put(self._status.with_state("running", format_time(now), progress_bytes=self._done))
            except BulwarkError as exc:  # progress is best effort; the result is what counts
                log.warning("job %s: progress not recorded: %s", self._status.job_id, exc)
