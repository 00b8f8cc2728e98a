"""A restart keeps the estate; the local stack starts, describes itself and stops without leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from azure.storage.blob import BlobServiceClient
from bulwark_local.simulator import running_simulator
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import running_stack, stack_down

from .conftest import LOCATION, SUBSCRIPTION, arm_call, compute_client
from .test_compute import make_disk, snapshot
from .test_dataplane import blob, grant


def test_restart_keeps_state(tmp_path: Path) -> None:
    data = os.urandom(64 * 1024)
    with running_simulator(tmp_path) as sim:
        arm_call(
            sim,
            "PUT",
            f"/subscriptions/{SUBSCRIPTION}/resourcegroups/keep?api-version=2021-04-01",
            {"location": LOCATION},
        )
        compute = compute_client(sim)
        disk = make_disk(compute, "keep", "d", 1)
        AdminClient(sim.arm, sim.ca_bundle).guest_write(disk.id, 4096, data)
        first = snapshot(compute, "keep", "s1", disk.id)
        grant(compute, "keep", "s1")  # an open SAS survives the restart as ActiveSAS
        AdminClient(sim.arm, sim.ca_bundle).guest_write(disk.id, 0, os.urandom(4096))
    with running_simulator(tmp_path) as sim:  # same folder, new process, new ports
        compute = compute_client(sim)
        assert compute.disks.get("keep", "d").unique_id == disk.unique_id
        again = compute.snapshots.get("keep", "s1")
        assert again.incremental_snapshot_family_id == first.incremental_snapshot_family_id
        assert again.disk_state == "ActiveSAS"
        fresh = blob(sim, grant(compute, "keep", "s1"))
        assert fresh.download_blob(offset=4096, length=len(data)).readall() == data
        assert fresh.download_blob(offset=0, length=4096).readall() == bytes(4096)  # the later write is not in it
        second = snapshot(compute, "keep", "s2", disk.id)
        newer = blob(sim, grant(compute, "keep", "s2"))
        pages, clears = newer.get_page_range_diff_for_managed_disk(fresh.url)
        assert [(r["start"], r["end"]) for r in pages] == [(0, 4095)] and clears == []
        assert second.time_created >= first.time_created


def test_running_stack_writes_stack_file_and_cleans_up(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        described = json.loads((tmp_path / "stack.json").read_text())
        for key in (
            "arm_endpoint",
            "ca_bundle",
            "subscription_id",
            "tenant_id",
            "storage_connection_string",
            "data_plane_endpoint",
            "admin_endpoint",
            "pids",
        ):
            assert described[key], key
        assert AdminClient(stack.arm_endpoint, stack.ca_bundle).health()["ok"] is True
        assert "BlobEndpoint=http://127.0.0.1:" in stack.storage_connection_string
        pids = list(stack.pids.values())
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        )
    assert stack_down(tmp_path / "absent.json") == []


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group: what `make stack-down` must leave empty."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_make_stack_up_and_down_leave_no_process_behind(tmp_path: Path) -> None:
    """What `make stack-up` / `make stack-down` run, in a subprocess each, on a private stack file."""
    stack_file, workdir = tmp_path / "stack.json", tmp_path / "work"

    def stack(command: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "bulwark_local.stack", command, "--stack-file", str(stack_file)]
        return subprocess.run([*argv, "--workdir", str(workdir)], capture_output=True, text=True, timeout=120)

    up = stack("up")
    assert up.returncode == 0, up.stderr
    try:
        described = json.loads(stack_file.read_text())
        assert described["subscription_id"] == SUBSCRIPTION and described["tenant_id"]
        assert described["ca_bundle"].startswith(str(workdir)) and Path(described["ca_bundle"]).is_file()
        pids = described["pids"]
        assert set(pids) == {"azurite", "simulator"} and all(_group_members(pid) for pid in pids.values())
        assert AdminClient(described["arm_endpoint"], described["ca_bundle"]).health()["ok"] is True
        blobs = BlobServiceClient.from_connection_string(described["storage_connection_string"])
        blobs.create_container(f"probe-{uuid.uuid4().hex[:6]}")  # Azurite answers with the given key
        assert stack("status").returncode == 0
        assert stack("up").returncode == 0  # a running stack is reused, not started twice
        assert json.loads(stack_file.read_text())["pids"] == pids
    finally:
        down = stack("down")
    assert down.returncode == 0 and "stopped 2 process groups" in down.stdout
    assert not stack_file.exists() and stack("status").returncode == 1
    for pid in pids.values():
        assert _group_members(pid) == [], f"process group {pid} outlived stack-down"
