"""The job-status reporting every worker job shares (shared/services/job_report.py), on an
in-memory status store and a fixed clock."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.core.errors import ConfigError, SourceError, WrongKeyError
from shared.repo.repository import Repository
from shared.services.job_report import RepositoryJob, run_reported
from shared.services.job_spec import ArmRef, JobSource, JobSpec, RepositoryRef, SecretRef, StatusRef
from shared.services.job_status import InMemoryJobStatusStore, JobStatus

SPEC = JobSpec(
    job_id="job-1",
    kind="bacpac-restore",
    repository=RepositoryRef("/repo", SecretRef("file", path="/secret")),
    arm=ArmRef("stack-file", path="/stack.json"),
    status=StatusRef(endpoint="http://127.0.0.1:1/devstoreaccount1", table="jobs"),
    source=JobSource(kind="bacpac-point", disk_id="https://blob/restore.bacpac", snapshot_id="p1"),
    attempt=2,
)


class StepClock:
    """Each reading is one second after the one before."""

    def __init__(self) -> None:
        self._now = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        self._now += timedelta(seconds=1)
        return self._now


def test_success_records_running_then_succeeded_with_the_result_and_its_byte_count() -> None:
    store = InMemoryJobStatusStore()
    seen: list[JobStatus] = []

    def work(status: JobStatus) -> dict[str, Any]:
        seen.append(status)
        assert store.get("job-1") == status
        return {"point_id": "p1", "bytes_written": 4096}

    result = run_reported(SPEC, store, StepClock(), work, progress_key="bytes_written")
    record = store.get("job-1")
    assert result == {"point_id": "p1", "bytes_written": 4096}
    assert record is not None and record.state == "succeeded" and record.attempt == 2
    assert record.result == result and record.progress_bytes == 4096
    assert seen[0].state == "running" and record.started == seen[0].started < record.updated


@pytest.mark.parametrize(
    ("error", "message", "code", "retryable"),
    [
        (WrongKeyError("wrong passphrase"), "wrong passphrase", "wrong_key", False),
        (SourceError("read failed"), "read failed", SourceError.code, True),
        # a made-up signature (base64 of "secret-signature"): the record must not carry it
        (OSError("disk full, sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"), "OSError: disk full", "unexpected", True),
    ],
)
def test_a_failure_is_recorded_redacted_with_its_code_and_raised_again(
    error: BaseException, message: str, code: str, retryable: bool
) -> None:
    store = InMemoryJobStatusStore()

    def work(status: JobStatus) -> dict[str, Any]:
        raise error

    with pytest.raises(type(error)):
        run_reported(SPEC, store, StepClock(), work, progress_key="bytes_read")
    record = store.get("job-1")
    assert record is not None and record.state == "failed" and record.error is not None
    assert record.error.startswith(message) and "c2VjcmV0" not in record.error
    assert record.error_code == code and record.retryable is retryable


class NoSecrets:
    def resolve(self, reference: SecretRef) -> str:
        raise AssertionError("a job of another kind must not resolve its secrets")


class NoRepositories:
    def open(self, location: str, passphrase: str) -> Repository:
        raise AssertionError("a job of another kind must not open its repository")


@dataclass(frozen=True, kw_only=True)
class RebuildJob(RepositoryJob, kind="bacpac-restore", source_kind="bacpac-point", title="a rebuild"):
    def work(self, spec: JobSpec, running: JobStatus) -> dict[str, Any]:
        self.progress(running)(10)
        return {"bytes_read": 10}


def test_a_repository_job_runs_only_specs_of_its_kinds() -> None:
    store = InMemoryJobStatusStore()
    job = RebuildJob(secrets=NoSecrets(), repositories=NoRepositories(), status=store, clock=StepClock())
    assert job.run(SPEC) == {"bytes_read": 10}
    other = replace(SPEC, job_id="job-2", kind="bacpac-backup")
    with pytest.raises(ConfigError, match=r"job job-2 is not a rebuild \(bacpac-backup, bacpac-point\)"):
        job.run(other)
    assert store.get("job-2") is None
