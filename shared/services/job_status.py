"""The job-status record: how a worker tells the orchestration what it is doing and what it made.

One record per job id (the latest attempt wins), written by the worker and read by the function
app's poll activity. The store is a port: Table storage in Azure and on Azurite locally
(``shared.worker.table_status``), a dict in unit tests. A record never holds a secret: results are
point ids, byte counts and redacted error messages.

States: ``pending`` (the app launched the worker), ``running`` (the worker started; ``progress``
counts source bytes processed), ``succeeded`` (``result`` holds the point), ``failed`` (``error``
and ``retryable``: whether another attempt may succeed).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

__all__ = ["TERMINAL_STATES", "InMemoryJobStatusStore", "JobStatus", "JobStatusStore"]

TERMINAL_STATES = frozenset({"succeeded", "failed"})
_STATES = frozenset({"pending", "running", *TERMINAL_STATES})


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    attempt: int
    state: str
    updated: str
    progress_bytes: int = 0
    result: Mapping[str, Any] | None = field(default=None, hash=False)
    error: str | None = None
    error_code: str | None = None
    retryable: bool = False
    started: str = ""
    """When the worker began this attempt (with ``updated`` of a terminal record: how long it ran)."""

    def __post_init__(self) -> None:
        if self.state not in _STATES:
            raise ValueError(f"unknown job state {self.state!r}")

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def with_state(self, state: str, updated: str, **changes: Any) -> JobStatus:
        return replace(self, state=state, updated=updated, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "state": self.state,
            "updated": self.updated,
            "progress_bytes": self.progress_bytes,
            "result": dict(self.result) if self.result is not None else None,
            "error": self.error,
            "error_code": self.error_code,
            "retryable": self.retryable,
            "started": self.started,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> JobStatus:
        result = doc.get("result")
        if isinstance(result, str):
            result = json.loads(result) if result else None
        return cls(
            job_id=str(doc["job_id"]),
            attempt=int(doc.get("attempt", 1)),
            state=str(doc["state"]),
            updated=str(doc.get("updated", "")),
            progress_bytes=int(doc.get("progress_bytes") or 0),
            result=result,
            error=doc.get("error") or None,
            error_code=doc.get("error_code") or None,
            retryable=bool(doc.get("retryable", False)),
            started=str(doc.get("started") or ""),
        )


class JobStatusStore(Protocol):
    """Latest status per job id. ``put`` replaces the record; ``get`` returns None for an unknown id."""

    def put(self, status: JobStatus) -> None: ...

    def get(self, job_id: str) -> JobStatus | None: ...


class InMemoryJobStatusStore:
    def __init__(self) -> None:
        self._records: dict[str, JobStatus] = {}
        self._lock = threading.Lock()

    def put(self, status: JobStatus) -> None:
        with self._lock:
            self._records[status.job_id] = status

    def get(self, job_id: str) -> JobStatus | None:
        with self._lock:
            return self._records.get(job_id)
