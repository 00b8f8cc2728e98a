"""The worker's ``bacpac-backup`` job: a staging BACPAC in Azurite, read with the worker's own
credential, stored with backup_fileset as a BACPAC point; idempotent by job id; a changed table is
all a second point adds; a missing blob fails the job (retryable) with a clear message."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from bulwark_local.stack import Stack

from shared.core.errors import ConfigError
from shared.engine.fileset import restore_fileset
from shared.repo import walk
from shared.services.job_spec import ArmRef, JobSource, JobSpec, RepositoryRef, SecretRef, StatusRef
from shared.sources.bacpac import BacpacWriter
from shared.worker.table_status import TableJobStatusStore
from tests.fileset.bacpacs import random_pieces, write_bacpac

from .conftest import table_endpoint
from .estate import MIB, make_repository, open_repository
from .test_worker import run_worker

TABLE = "bacpacworkertests"


def spec_for(stack: Stack, job_id: str, location: str, secret: Path, blob_url: str) -> JobSpec:
    return JobSpec(
        job_id=job_id,
        kind="bacpac-backup",
        repository=RepositoryRef(location, SecretRef("file", path=str(secret))),
        arm=ArmRef("stack-file", path=str(Path(stack.state_dir) / "stack.json")),
        status=StatusRef(endpoint=table_endpoint(stack), table=TABLE),
        source=JobSource(kind="bacpac-blob", disk_id="/subscriptions/s/databases/sales", snapshot_id=blob_url),
        tags={"policy": "p1", "database": "sales"},
    )


def upload(stack: Stack, container: str, name: str, data: bytes) -> str:
    with BlobServiceClient.from_connection_string(stack.storage_connection_string) as service:
        client = service.get_container_client(container)
        if not client.exists():
            client.create_container()
        client.upload_blob(name, data, overwrite=True)
        return f"{str(service.url).rstrip('/')}/{container}/{name}"


def bacpac(tmp_path: Path, name: str, orders_seed: int) -> bytes:
    path = write_bacpac(
        tmp_path / name,
        [
            ("Data/dbo.Customers/TableData-000-00000.BCP", random_pieces(2 * MIB, seed=1)),
            ("Data/dbo.Orders/TableData-000-00000.BCP", random_pieces(MIB, seed=orders_seed)),
        ],
    )
    return path.read_bytes()


def last_json(stdout: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(stdout.strip().splitlines()[-1])
    return result


def test_a_staging_bacpac_becomes_a_point_idempotently_and_restores(stack: Stack, tmp_path: Path) -> None:
    location, secret = make_repository(tmp_path)
    container = f"staging-{uuid.uuid4().hex[:6]}"
    first_bytes = bacpac(tmp_path, "one.bacpac", orders_seed=2)
    first_url = upload(stack, container, "s1/sales.bacpac", first_bytes)

    done = run_worker(spec_for(stack, "job-bacpac-1", location, secret, first_url), tmp_path)
    assert done.returncode == 0, done.stderr
    first = last_json(done.stdout)
    assert first["kind"] == "bacpac" and not first["reused"] and first["chunks_new"]
    record = TableJobStatusStore.from_connection_string(stack.storage_connection_string, TABLE).get("job-bacpac-1")
    assert record is not None and record.state == "succeeded" and record.result == first

    again = run_worker(spec_for(stack, "job-bacpac-1", location, secret, first_url), tmp_path, via_env=True)
    assert again.returncode == 0, again.stderr
    rerun = last_json(again.stdout)
    assert rerun["reused"] and rerun["point_id"] == first["point_id"]

    second_url = upload(stack, container, "s2/sales.bacpac", bacpac(tmp_path, "two.bacpac", orders_seed=3))
    done = run_worker(spec_for(stack, "job-bacpac-2", location, secret, second_url), tmp_path)
    assert done.returncode == 0, done.stderr
    second = last_json(done.stdout)
    assert isinstance(second["bytes_new"], int) and MIB <= second["bytes_new"] < 1.2 * MIB  # Orders only

    repo = open_repository(location)
    point = repo.load_point(str(first["point_id"]))
    assert point.kind == "bacpac" and point.tags["job"] == "job-bacpac-1" and point.tags["database"] == "sales"
    target = tmp_path / "restored.bacpac"
    with BacpacWriter(target, walk.files_of(point)) as sink:
        restore_fileset(repo, point, sink)
    original = zipfile.ZipFile(io.BytesIO(first_bytes))
    restored = zipfile.ZipFile(target)
    assert restored.namelist() == original.namelist()
    assert all(restored.read(n) == original.read(n) for n in original.namelist())


def test_a_missing_staging_bacpac_fails_the_job_and_may_be_retried(stack: Stack, tmp_path: Path) -> None:
    location, secret = make_repository(tmp_path)
    url = upload(stack, f"staging-{uuid.uuid4().hex[:6]}", "other.bacpac", b"x").rsplit("/", 1)[0] + "/gone.bacpac"
    done = run_worker(spec_for(stack, "job-bacpac-gone", location, secret, url), tmp_path)
    assert done.returncode != 0
    assert "the staging BACPAC" in done.stderr and "is gone" in done.stderr
    record = TableJobStatusStore.from_connection_string(stack.storage_connection_string, TABLE).get("job-bacpac-gone")
    assert record is not None and record.state == "failed" and record.retryable


def test_a_bacpac_spec_refuses_a_sas_in_the_blob_url(stack: Stack, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="credential"):
        spec_for(stack, "job-x", "/r", tmp_path / "s", "http://127.0.0.1:1/devstoreaccount1/c/b.bacpac?sv=1&sig=abc")
