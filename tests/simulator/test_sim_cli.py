"""bulwark-sim against the session's simulator (a stack file pointing at it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from azure.mgmt.compute import ComputeManagementClient
from bulwark_local.sim_cli import app
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import LOCATION, SUBSCRIPTION_ID, TENANT_ID, Stack
from typer.testing import CliRunner

from .test_compute import make_disk

KIB = 1024


@pytest.fixture
def stack_file(sim: SimulatorEndpoints, tmp_path: Path) -> Path:
    path = tmp_path / "stack.json"
    Stack(
        arm_endpoint=sim.arm,
        ca_bundle=sim.ca_bundle,
        subscription_id=SUBSCRIPTION_ID,
        tenant_id=TENANT_ID,
        location=LOCATION,
        storage_connection_string="UseDevelopmentStorage=true",
        data_plane_endpoint=sim.data,
        vhd_storage_account={"name": "bulwarkvhds", "blob_endpoint": f"{sim.data}/bulwarkvhds"},
        admin_endpoint=f"{sim.arm}/_bulwark",
        pids={"simulator": sim.pid},
        state_dir=sim.state_dir,
    ).write(path)
    return path


def run(stack_file: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--stack", str(stack_file), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_guest_write_trim_read(
    stack_file: Path, compute: ComputeManagementClient, resource_group: str, tmp_path: Path
) -> None:
    disk = make_disk(compute, resource_group, "cli", 1)
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(64 * KIB))
    run(stack_file, "guest", "write", disk.id, "--offset", "1000", "--length", str(64 * KIB), "--from", str(source))
    run(stack_file, "guest", "write", disk.id, "--offset", str(1 << 20), "--length", "8192", "--random")
    run(stack_file, "guest", "write", disk.id, "--offset", str(2 << 20), "--length", "4096", "--zero")
    run(stack_file, "guest", "trim", disk.id, "--offset", "4096", "--length", "8192")
    out = tmp_path / "disk.img"
    run(stack_file, "guest", "read", disk.id, "--out", str(out))
    image = out.read_bytes()
    assert len(image) == 1 << 30
    expected = bytearray(source.read_bytes())
    expected[4096 - 1000 : 4096 + 8192 - 1000] = bytes(8192)
    assert image[1000 : 1000 + 64 * KIB] == bytes(expected)
    assert image[2 << 20 : (2 << 20) + 4096] == bytes(4096)
    assert os.stat(out).st_blocks * 512 < 4 << 20  # written sparse


def test_cli_errors_say_what_to_do(stack_file: Path, tmp_path: Path) -> None:
    missing = CliRunner().invoke(
        app, ["--stack", str(tmp_path / "none.json"), "guest", "trim", "x", "--offset", "0", "--length", "1"]
    )
    assert missing.exit_code == 1 and "make stack-up" in missing.output
    unknown = CliRunner().invoke(
        app, ["--stack", str(stack_file), "guest", "trim", "/no/such/disk", "--offset", "0", "--length", "512"]
    )
    assert unknown.exit_code == 1 and "no managed disk" in unknown.output
    both = CliRunner().invoke(
        app, ["--stack", str(stack_file), "guest", "write", "d", "--offset", "0", "--length", "1", "--zero", "--random"]
    )
    assert both.exit_code == 1 and "exactly one" in both.output


@pytest.mark.skipif(not Path("/usr/sbin/mkfs.ext4").exists(), reason="mkfs.ext4 (e2fsprogs) is not installed")
def test_seed_demo_builds_ext4_estate(
    stack_file: Path, compute: ComputeManagementClient, sim: SimulatorEndpoints, tmp_path: Path
) -> None:
    output = run(stack_file, "seed", "demo")
    assert output.count("created") + output.count("exists") == 4
    vms = {vm.name: vm for vm in compute.virtual_machines.list_all() if (vm.tags or {}).get("bulwark-demo") == "true"}
    assert set(vms) == {"app-01", "app-02", "db-01", "legacy-01"}
    groups = {vm.id.split("/")[4] for vm in vms.values()}
    assert groups == {"bulwark-demo-app", "bulwark-demo-data"}
    assert len(vms["db-01"].storage_profile.data_disks) == 2
    legacy = vms["legacy-01"].storage_profile.os_disk
    assert legacy.managed_disk is None and legacy.vhd.uri.startswith(sim.data + "/bulwarkvhds/vhds/")
    assert "exists" in run(stack_file, "seed", "demo")  # idempotent

    fsck = shutil.which("e2fsck") or "/usr/sbin/e2fsck"
    os_disk = vms["app-01"].storage_profile.os_disk.managed_disk.id
    for name, disk_id in (("app-os", os_disk), ("db-data", vms["db-01"].storage_profile.data_disks[0].managed_disk.id)):
        out = tmp_path / f"{name}.img"
        run(stack_file, "guest", "read", disk_id, "--out", str(out))
        check = subprocess.run([fsck, "-fn", str(out)], capture_output=True, text=True)
        assert check.returncode == 0, name + check.stdout + check.stderr  # a clean ext4 file system
    info = AdminClient(sim.arm, sim.ca_bundle).guest_info(legacy.vhd.uri)
    assert 0 < sum(end - start for start, end in info["ranges"]) < 16 << 20  # sparse: only the file system's data
