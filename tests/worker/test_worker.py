"""``python -m shared.worker`` as a real process against the local stack.

The worker grants its own SAS, reads the snapshot (the page-range diff for an incremental), writes
the repository, revokes the SAS and reports in the job-status table; re-running a finished job
reports the same point; a wrong passphrase fails clearly and is not worth retrying.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.clients import AzureClients
from shared.azure.compute import snapshot_name, snapshot_tags
from shared.azure.model import DiskInfo, SnapshotInfo
from shared.azure.pageblob import VhdBlobs
from shared.core.errors import ConfigError
from shared.services.job_spec import (
    ArmRef,
    JobSource,
    JobSpec,
    RepositoryRef,
    SecretRef,
    StatusRef,
    blob_snapshot_id,
)
from shared.worker.table_status import TableJobStatusStore

from .conftest import table_endpoint
from .estate import MIB, guest_image, make_estate, make_repository, open_repository, restores_identical

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_worker(spec: JobSpec, tmp_path: Path, *, via_env: bool = False) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "infra" / "local")]),
    }
    args = [sys.executable, "-m", "shared.worker"]
    if via_env:
        env["BULWARK_JOB"] = spec.to_json()
    else:
        job_file = tmp_path / f"{spec.job_id}-{spec.attempt}.json"
        job_file.write_text(spec.to_json())
        args += ["--job", str(job_file)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)


def snapshot(clients: AzureClients, disk: DiskInfo, group: str, session: str) -> SnapshotInfo:
    return clients.compute().create_snapshot(
        disk, resource_group=group, name=snapshot_name(disk.id, session), tags=snapshot_tags("p1", session, disk.name)
    )


def spec_for(
    stack: Stack,
    job_id: str,
    location: str,
    secret: Path,
    disk: DiskInfo,
    snap: SnapshotInfo,
    *,
    previous: SnapshotInfo | None = None,
    parent: str | None = None,
) -> JobSpec:
    return JobSpec(
        job_id=job_id,
        kind="image-backup",
        repository=RepositoryRef(location, SecretRef("file", path=str(secret))),
        arm=ArmRef("stack-file", path=str(Path(stack.state_dir) / "stack.json")),
        status=StatusRef(endpoint=table_endpoint(stack), table="workertests"),
        source=JobSource(disk.id, snap.id, previous.id if previous else None, parent),
        tags={"policy": "p1", "disk": disk.name, "lun": "os", "snapshot": snap.id},
    )


def test_full_then_incremental_and_idempotent_rerun(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path: Path
) -> None:
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    group = estate.vm.resource_group
    disk = estate.os_disk
    location, secret = make_repository(tmp_path)
    status = TableJobStatusStore.from_connection_string(stack.storage_connection_string, "workertests")

    first = snapshot(clients, disk, group, "s1")
    done = run_worker(spec_for(stack, "job-full", location, secret, disk, first), tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert not result["reused"] and not result["incremental"]
    record = status.get("job-full")
    assert record is not None and record.state == "succeeded" and record.result == result
    assert clients.compute().get_snapshot(first.id).disk_state != "ActiveSAS"  # access ended

    again = run_worker(spec_for(stack, "job-full", location, secret, disk, first), tmp_path, via_env=True)
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout.strip().splitlines()[-1])
    assert rerun["reused"] and rerun["point_id"] == result["point_id"]

    admin.guest_write(disk.id, 300 * MIB, b"changed by the guest " * 5000)
    second = snapshot(clients, disk, group, "s2")
    spec = spec_for(stack, "job-incr", location, secret, disk, second, previous=first, parent=result["point_id"])
    done = run_worker(spec, tmp_path)
    assert done.returncode == 0, done.stderr
    incremental = json.loads(done.stdout.strip().splitlines()[-1])
    assert incremental["incremental"] and incremental["parent_point_id"] == result["point_id"]
    assert incremental["bytes_read"] <= 2 * MIB < result["bytes_read"]

    repo = open_repository(location)
    for snap, point_id in ((first, result["point_id"]), (second, incremental["point_id"])):
        expected = guest_image(admin, snap.id, tmp_path / "expected.img")
        point = repo.load_point(point_id)
        assert point.tags["job"] in ("job-full", "job-incr") and point.source == disk.id
        assert restores_identical(repo, point, expected, tmp_path)


def test_wrong_passphrase_fails_without_retry_and_without_leaking(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path: Path
) -> None:
    estate = make_estate(stack, clients, admin, tags={})
    location, _ = make_repository(tmp_path)
    wrong = tmp_path / "wrong.passphrase"
    wrong.write_text("not the passphrase\n")
    snap = snapshot(clients, estate.data_disk, estate.vm.resource_group, "s1")
    done = run_worker(spec_for(stack, "job-wrong", location, wrong, estate.data_disk, snap), tmp_path)
    assert done.returncode == 7  # WrongKeyError
    assert "does not open the repository" in done.stderr and "not the passphrase" not in done.stderr
    record = TableJobStatusStore.from_connection_string(stack.storage_connection_string, "workertests").get("job-wrong")
    assert record is not None and record.state == "failed" and not record.retryable
    assert record.error_code == "wrong_key"


def test_spec_refuses_inline_secrets_and_needs_a_spec(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "job_id": "j",
        "kind": "image-backup",
        "repository": {"location": "/r", "passphrase": {"kind": "file", "path": "/s"}},
        "arm": {"kind": "stack-file", "path": "/stack.json"},
        "status": {"kind": "table", "endpoint": "http://127.0.0.1:1/devstoreaccount1", "table": "t"},
        "source": {"disk_id": "d", "snapshot_id": "s"},
    }
    assert JobSpec.from_dict(doc).to_dict()["source"]["previous_snapshot_id"] is None
    with pytest.raises(ConfigError, match="inline secret"):
        JobSpec.from_dict({**doc, "repository": {**doc["repository"], "password": "hunter2"}})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="credential"):
        JobSpec.from_dict({**doc, "repository": {**doc["repository"], "location": "https://a/c?sv=1&sig=abc"}})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="go together"):
        JobSpec.from_dict({**doc, "source": {"disk_id": "d", "snapshot_id": "s", "parent_point_id": "p"}})
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "shared.worker"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3 and "no job spec" in done.stderr


def test_unmanaged_vhd_full_then_incremental(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path: Path
) -> None:
    uri = f"{stack.data_plane_endpoint}/bulwarkvhds/vhds/{tmp_path.name}.vhd"
    admin.create_vhd(uri, 1 << 30)
    admin.guest_write(uri, 0, os.urandom(2 * MIB))
    blobs = VhdBlobs(clients.data_plane())
    location, secret = make_repository(tmp_path)

    first = blobs.create_snapshot(uri)
    expected_first = guest_image(admin, uri, tmp_path / "first.img")
    job = vhd_spec(stack, "vhd-full", location, secret, uri, first)
    done = run_worker(job, tmp_path)
    assert done.returncode == 0, done.stderr
    full = json.loads(done.stdout.strip().splitlines()[-1])

    admin.guest_write(uri, 100 * MIB, b"new data on an unmanaged disk " * 3000)
    second = blobs.create_snapshot(uri)
    expected_second = guest_image(admin, uri, tmp_path / "second.img")
    job = vhd_spec(stack, "vhd-incr", location, secret, uri, second, previous=first, parent=full["point_id"])
    done = run_worker(job, tmp_path)
    assert done.returncode == 0, done.stderr
    incremental = json.loads(done.stdout.strip().splitlines()[-1])
    assert incremental["incremental"] and incremental["bytes_read"] <= MIB < full["bytes_read"]

    repo = open_repository(location)
    assert restores_identical(repo, repo.load_point(full["point_id"]), expected_first, tmp_path)
    assert restores_identical(repo, repo.load_point(incremental["point_id"]), expected_second, tmp_path)


def vhd_spec(
    stack: Stack,
    job_id: str,
    location: str,
    secret: Path,
    uri: str,
    stamp: str,
    *,
    previous: str | None = None,
    parent: str | None = None,
) -> JobSpec:
    return JobSpec(
        job_id=job_id,
        kind="image-backup",
        repository=RepositoryRef(location, SecretRef("file", path=str(secret))),
        arm=ArmRef("stack-file", path=str(Path(stack.state_dir) / "stack.json")),
        status=StatusRef(endpoint=table_endpoint(stack), table="workertests"),
        source=JobSource(
            uri,
            blob_snapshot_id(uri, stamp),
            blob_snapshot_id(uri, previous) if previous else None,
            parent,
            kind="vhd-blob",
        ),
        tags={"policy": "p1", "disk": uri, "lun": "os"},
    )
