"""A restart keeps the estate; the local stack starts, describes itself and stops without leftovers."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
