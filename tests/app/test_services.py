"""The session services on fakes: worker-job polling, the policy mapping, messages, launchers."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.azure.model import VmSelection
from shared.core.clock import format_time
from shared.policy.document import policy_from_dict
from shared.services.job_spec import ArmRef, RepositoryRef, SecretRef, StatusRef
from shared.services.job_status import InMemoryJobStatusStore, JobStatus
from shared.services.messages import (
    DiskTarget,
    JobHandle,
    PollJobsRequest,
    SessionRecord,
    StartJobRequest,
    VmBackupRequest,
    VmTarget,
)
from shared.services.plan import BackupPlan, SnapshotRef, StaticPolicies, keep_newest
from shared.services.policy_plans import plan_of
from shared.services.ports import WorkerRun
from shared.services.worker_jobs import JobSettings, WorkerJobs, job_id_for
from shared.worker.launchers import LocalProcessLauncher

SUB = "00000000-0000-0000-0000-000000000000"
VM = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web"
DISK = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/web-os"
NOW = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)


class FixedClock:
    def now(self) -> dt.datetime:
        return NOW


@dataclass
class FakeLauncher:
    runs: dict[str, WorkerRun] = field(default_factory=dict)
    launched: list[tuple[str, str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def launch(self, *, name: str, job_json: str, location: str) -> str:
        self.launched.append((name, job_json, location))
        self.runs[name] = WorkerRun("pending")
        return name

    def state(self, reference: str) -> WorkerRun:
        return self.runs.get(reference, WorkerRun("missing"))

    def logs(self, reference: str, *, tail: int = 20) -> str:
        return "last words"

    def remove(self, reference: str) -> None:
        self.removed.append(reference)
        self.runs.pop(reference, None)


class NoPoints:
    def record_points(self, points: object) -> None:
        raise AssertionError("not used")

    def last_image_point(self, policy_id: str, vm_id: str, disk_id: str) -> None:
        return None


def jobs_service() -> tuple[WorkerJobs, FakeLauncher, InMemoryJobStatusStore]:
    plan = BackupPlan(
        policy_id="p1",
        selection=VmSelection(),
        repository=RepositoryRef("/srv/repo", SecretRef("file", path="/etc/secret")),
        repository_region="northeurope",
    )
    launcher = FakeLauncher()
    status = InMemoryJobStatusStore()
    settings = JobSettings(
        arm=ArmRef("stack-file", path="/stack.json"),
        status=StatusRef("http://127.0.0.1:1/devstoreaccount1", "jobs"),
        poll_seconds=7,
    )
    service = WorkerJobs(
        policies=StaticPolicies([plan]),
        catalog=NoPoints(),
        launcher=launcher,
        status=status,
        settings=settings,
        clock=FixedClock(),
    )
    return service, launcher, status


def test_start_builds_a_reference_only_spec_in_the_repository_region() -> None:
    service, launcher, status = jobs_service()
    disk = DiskTarget(DISK, "web-os", None)
    handle = service.start(StartJobRequest("p1", "p1@s1", VM, "westeurope", disk, "snap-1"))
    assert handle.job_id == job_id_for("p1@s1", DISK) and handle.poll_seconds == 7 and handle.attempt == 1
    [(name, job_json, location)] = launcher.launched
    assert name == f"bulwark-{handle.job_id}-a1" and location == "northeurope" and len(name) <= 63
    spec = json.loads(job_json)
    assert spec["repository"]["passphrase"] == {"kind": "file", "path": "/etc/secret"}
    assert spec["source"] == {
        "kind": "managed-disk",
        "disk_id": DISK,
        "snapshot_id": "snap-1",
        "previous_snapshot_id": None,
        "parent_point_id": None,
    }
    assert spec["tags"]["lun"] == "os" and spec["tags"]["vm"] == VM
    pending = status.get(handle.job_id)
    assert pending is not None and pending.state == "pending"


def test_poll_reads_status_and_container_state() -> None:
    service, launcher, status = jobs_service()
    disk = DiskTarget(DISK, "web-os", None)
    handle = service.start(StartJobRequest("p1", "p1@s1", VM, "westeurope", disk, "snap-1"))
    [state] = service.poll(PollJobsRequest((handle,))).jobs
    assert state.state == "running"
    status.put(JobStatus(handle.job_id, 1, "running", format_time(NOW), progress_bytes=4096))
    launcher.runs[handle.worker] = WorkerRun("running")
    assert service.poll(PollJobsRequest((handle,))).jobs[0].progress_bytes == 4096

    launcher.runs[handle.worker] = WorkerRun("terminated", exit_code=137)  # killed, no result
    [lost] = service.poll(PollJobsRequest((handle,))).jobs
    assert lost.state == "failed" and lost.retryable and "137" in lost.reason
    assert launcher.removed == [handle.worker]

    again = service.start(StartJobRequest("p1", "p1@s1", VM, "westeurope", disk, "snap-1", attempt=2))
    status.put(JobStatus(handle.job_id, 1, "succeeded", format_time(NOW), result={"point_id": "old"}))
    [ignored] = service.poll(PollJobsRequest((again,))).jobs  # a record of attempt 1 says nothing about 2
    assert ignored.state == "running"
    status.put(JobStatus(handle.job_id, 2, "succeeded", format_time(NOW), result={"point_id": "p"}))
    [done] = service.poll(PollJobsRequest((again,))).jobs
    assert done.state == "succeeded" and done.result == {"point_id": "p"}
    status.put(JobStatus(handle.job_id, 2, "failed", format_time(NOW), error="bad key", retryable=False))
    [failed] = service.poll(PollJobsRequest((again,))).jobs
    assert failed.state == "failed" and not failed.retryable and failed.reason == "bad key"


def test_keep_newest_keeps_protected_snapshots() -> None:
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    snaps = [SnapshotRef(f"s{i}", "d1", base + dt.timedelta(days=i)) for i in range(5)]
    snaps += [SnapshotRef("x0", "d2", base)]
    assert keep_newest(snaps, 2, protected={"s1"}) == ["s0", "s2"]
    assert keep_newest(snaps, 1, protected=()) == ["s0", "s1", "s2", "s3"]


def test_plan_of_a_policy_maps_scope_secrets_and_placement() -> None:
    group = f"/subscriptions/{SUB}/resourceGroups/web-rg"
    other = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/elsewhere"
    policy = policy_from_dict(
        {
            "id": "web",
            "scope": {"resource_groups": [group, other], "resources": [VM], "tags": ["app=web"]},
            "schedule": {"time_zone": "UTC", "daily": {"times": ["03:00"]}},
            "snapshots": {"keep": 3},
            "repository": {"location": "/srv/repo", "region": "northeurope"},
            "encryption": {"passphrase": {"key_vault_secret": "repo-pass"}},
            "workers": {"placement": "source_region"},
            "concurrency": {"resources_in_flight": 5},
        }
    )
    plan = plan_of(policy, subscription_id=SUB, key_vault="kv-bulwark")
    assert plan.selection.resource_groups == ("web-rg",) and plan.selection.vm_ids == (VM,)
    assert plan.repository.passphrase == SecretRef("keyvault", vault="kv-bulwark", name="repo-pass")
    assert plan.worker_region("westeurope") == "westeurope" and plan.concurrency == 5
    assert plan.snapshots_to_keep == 3 and not plan.image_level
    assert plan.includes is not None
    in_group = f"{group}/providers/Microsoft.Compute/virtualMachines/a"
    assert plan.includes(in_group, {"app": "web"}) and not plan.includes(in_group, {"app": "db"})
    assert plan.includes(VM, {})  # listed by id: whatever its tags


def test_messages_round_trip_through_json() -> None:
    request = VmBackupRequest(
        "p1", "p1@s1", True, VmTarget(VM, "web", "rg", "westeurope", (DiskTarget(DISK, "web-os", None),))
    )
    assert VmBackupRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request
    handle = JobHandle("job-1", 2, "ref", DISK, "snap", lun=0)
    assert JobHandle.from_dict(json.loads(json.dumps(handle.to_dict()))) == handle
    record = SessionRecord("s", "p", "on-demand", False, "a", "b", "Success")
    assert SessionRecord.from_dict(record.to_dict()) == record


def test_local_process_launcher_runs_the_worker_and_reports_its_exit(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    launcher = LocalProcessLauncher(tmp_path, python=sys.executable, pythonpath=str(root))
    reference = launcher.launch(name="bad-job", job_json='{"version": 99}', location="westeurope")
    assert launcher.launch(name="bad-job", job_json="{}", location="westeurope") == reference  # idempotent
    deadline = time.monotonic() + 60
    while launcher.state(reference).state == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run = launcher.state(reference)
    assert run.state == "terminated" and run.exit_code == 3  # ConfigError: unsupported spec version
    assert "version" in launcher.logs(reference)
    launcher.remove(reference)
    assert launcher.state(reference).state == "missing"
    with pytest.raises(Exception, match="not a local worker reference"):
        launcher.state("/subscriptions/x")
