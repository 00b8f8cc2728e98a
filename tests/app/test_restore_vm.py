"""VM and disk restore end to end: the unmodified function app on the local runtime, the local stack
as Azure, image-restore workers as simulated Container Instances (local processes).

One image-level session of VM ``web`` (ext4 OS disk, data disk at LUN 0), then over HTTP:

* a new VM from the image-level point, written from the repository into upload disks (Put Page);
* one disk from the snapshot point (disks copied from the snapshot: the fast path);
* the original VM replaced, with explicit confirmation; its old disks stay;
* bad requests: each a clear 4xx and nothing created;
* a damaged point: the restore fails with the reason and leaves no disk behind.

Restored disks equal what the guest saw at the snapshot, byte for byte (``bulwark-sim guest read``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bulwark_local.runtime import LocalFunctionsHost
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.clients import AzureClients
from tests.app.harness import (
    KEY,
    assert_no_secrets,
    call,
    determinism_check,
    policy_document,
    running_app,
    store_policy,
    wait_session,
)
from tests.worker.estate import PASSPHRASE, Estate, guest_image, make_estate, make_repository, put_resource_group

POLICY = "restore-me"


@dataclass
class World:
    stack: Stack
    clients: AzureClients
    admin: AdminClient
    host: LocalFunctionsHost
    estate: Estate
    repository: str
    image_point: dict[str, Any]
    snapshot_point: dict[str, Any]
    expected: dict[str, Path]
    """Guest images of the point's snapshots, by LUN label (``os``, ``0``)."""
    work: Path
    bodies: list[bytes]
    logs: list[str]


def restore(world: World, what: str, body: dict[str, Any], *, timeout: float = 120) -> dict[str, Any]:
    status, raw = call(f"{world.host.base_url}/api/restores/{what}", "POST", body)
    world.bodies.append(raw)
    assert status == 202, raw
    url = f"{world.host.base_url}{json.loads(raw)['restore']}"
    deadline = time.monotonic() + timeout
    while True:
        status, raw = call(url)
        assert status == 200, raw
        document: dict[str, Any] = json.loads(raw)
        if document["runtime_status"] in ("Completed", "Failed", "Terminated"):
            world.bodies.append(raw)
            return document
        assert time.monotonic() < deadline, document
        time.sleep(0.5)


def refused(world: World, what: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, raw = call(f"{world.host.base_url}/api/restores/{what}", "POST", body)
    world.bodies.append(raw)
    return status, json.loads(raw)


def disks_in(world: World, group: str) -> list[str]:
    return sorted(d.name for d in world.clients.compute().list_disks(group))


@pytest.fixture(scope="module")
def world(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    work = tmp_path_factory.mktemp("restore")
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    repository, secret = make_repository(work)
    store_policy(stack, policy_document(stack, estate.vm.resource_group, repository, secret, POLICY))
    bodies: list[bytes] = []
    with running_app(stack, work) as (host, book):
        status, raw = call(f"{host.base_url}/api/policies/{POLICY}/run", "POST")
        assert status == 202, raw
        session = wait_session(host, json.loads(raw)["id"])
        assert session["output"]["status"] == "Success", session
        status, raw = call(f"{host.base_url}/api/points?resource={estate.vm.id}")
        assert status == 200, raw
        points = json.loads(raw)["points"]
        image = next(p for p in points if p["kind"] == "image")
        snapshot = next(p for p in points if p["kind"] == "snapshot")
        expected = {
            ("os" if disk.get("lun") is None else str(disk["lun"])): guest_image(
                admin, disk["snapshot_id"], work / f"expected-{disk.get('lun')}.img"
            )
            for disk in image["disks"]
        }
        yield World(
            stack, clients, admin, host, estate, repository, image, snapshot, expected, work, bodies, book.lines
        )


def same_bytes(admin: AdminClient, disk_id: str, expected: Path, scratch: Path) -> bool:
    got = guest_image(admin, disk_id, scratch / f"got-{uuid.uuid4().hex[:6]}.img")
    with got.open("rb") as a, expected.open("rb") as b:
        while True:
            x, y = a.read(8 << 20), b.read(8 << 20)
            if x != y:
                return False
            if not x:
                return True


def test_the_session_records_both_kinds_of_vm_points_with_their_disks(world: World) -> None:
    for point in (world.image_point, world.snapshot_point):
        assert [d.get("lun") for d in point["disks"]] == [None, 0]
    assert all(d["repository_point_id"] for d in world.image_point["disks"])
    assert [d["snapshot_id"] for d in world.snapshot_point["disks"]] == world.image_point["snapshot_ids"]
    sizes = [world.estate.os_disk.size_bytes, world.estate.data_disk.size_bytes]
    assert [d["size"] for d in world.snapshot_point["disks"]] == sizes
    assert world.snapshot_point["size"] == sum(sizes)


def test_a_new_vm_from_the_repository_has_the_same_disks_luns_and_bytes(world: World) -> None:
    group = f"rg-restored-{uuid.uuid4().hex[:6]}"
    put_resource_group(world.stack, group)
    body = {
        "vm_id": world.estate.vm.id,
        "point_id": world.image_point["point_id"],
        "source": "repository",
        "target": {"name": "web-restored", "resource_group": group},
    }
    document = restore(world, "vm", body)
    output = document["output"]
    assert output["status"] == "Succeeded", output
    assert output["source"] == "repository" and output["bytes_written"] > 0
    assert document["custom_status"]["phase"] == "done: Succeeded"
    vm = world.clients.compute().get_vm(output["vm_id"])
    assert vm.name == "web-restored" and vm.resource_group == group
    assert [d.lun for d in vm.disks] == [None, 0]
    assert vm.vm_size == world.estate.vm.vm_size and vm.os_type == "Linux"
    originals = {None: world.estate.os_disk, 0: world.estate.data_disk}
    for disk in vm.disks:
        assert disk.managed_disk_id is not None
        info = world.clients.compute().get_disk(disk.managed_disk_id)
        assert info.size_bytes == originals[disk.lun].size_bytes
        assert info.disk_state == "Attached"
        label = "os" if disk.lun is None else str(disk.lun)
        assert same_bytes(world.admin, disk.managed_disk_id, world.expected[label], world.work)


def test_one_disk_from_the_snapshot_point(world: World) -> None:
    body = {
        "vm_id": world.estate.vm.id,
        "point_id": world.snapshot_point["point_id"],
        "lun": 0,
        "target": {"name": "web-data-copy"},
    }
    document = restore(world, "disk", body)
    output = document["output"]
    assert output["status"] == "Succeeded" and output["source"] == "snapshot", output
    assert output["vm_id"] == "" and len(output["disks"]) == 1
    disk_id = output["disks"][0]["disk_id"]
    assert disk_id.endswith("/disks/web-data-copy")
    assert same_bytes(world.admin, disk_id, world.expected["0"], world.work)


@pytest.mark.parametrize(
    ("what", "change", "status", "field"),
    [
        ("vm", {"target": {"name": "web"}}, 409, None),  # the name exists, no replace
        ("vm", {"target": {"name": "x", "resource_group": "rg-nowhere"}}, 404, None),
        ("vm", {"replace_original": True}, 400, "confirm"),
        ("vm", {"point_id": "img-nothing", "target": {"name": "x"}}, 404, None),
        ("vm", {"target": {}}, 400, "target.name"),
        ("vm", {"source": "tape", "colour": "red"}, 400, "colour"),
        ("disk", {"target": {"name": "d"}}, 400, "lun"),
        ("disk", {"lun": "os", "target": {"name": "web-data"}}, 409, None),  # a disk of that name exists
        ("disk", {"lun": "7", "target": {"name": "d"}}, 400, "lun"),
        ("vm", {"vm_id": "web", "target": {"name": "x"}}, 400, "vm_id"),
        ("vm", {"target": {"name": "x", "region": "atlantis"}}, 400, "target.region"),
        ("vm", {"target": {"name": "x", "vm_size": "Standard_Z99"}}, 400, "target.vm_size"),
    ],
)
def test_bad_requests_are_refused_and_create_nothing(
    world: World, what: str, change: dict[str, Any], status: int, field: str | None
) -> None:
    before = disks_in(world, world.estate.vm.resource_group)
    body = {"vm_id": world.estate.vm.id, "point_id": world.image_point["point_id"], **change}
    got, answer = refused(world, what, body)
    assert got == status, answer
    assert answer["error"]["message"] and answer["error"]["hint"]
    if field is not None:
        assert field in [p["path"] for p in answer["error"]["problems"]], answer
    assert disks_in(world, world.estate.vm.resource_group) == before


def test_replacing_the_original_keeps_its_old_disks(world: World) -> None:
    body = {
        "vm_id": world.estate.vm.id,
        "point_id": world.snapshot_point["point_id"],
        "replace_original": True,
        "confirm": True,
    }
    document = restore(world, "vm", body)
    output = document["output"]
    assert output["status"] == "Succeeded", output
    compute = world.clients.compute()
    vm = compute.get_vm(world.estate.vm.id)  # the same name and id, new disks
    assert vm.nic_ids == world.estate.vm.nic_ids
    new_ids = {d.managed_disk_id for d in vm.disks}
    assert world.estate.os_disk.id not in new_ids and world.estate.data_disk.id not in new_ids
    assert compute.get_disk(world.estate.os_disk.id).disk_state == "Unattached"  # kept
    for disk in vm.disks:
        label = "os" if disk.lun is None else str(disk.lun)
        assert disk.managed_disk_id is not None
        assert same_bytes(world.admin, disk.managed_disk_id, world.expected[label], world.work)


def test_a_damaged_point_fails_clearly_and_leaves_no_disk(world: World) -> None:
    group = f"rg-damaged-{uuid.uuid4().hex[:6]}"
    put_resource_group(world.stack, group)
    packs = sorted((Path(world.repository) / "packs").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    victim = packs[-1]
    saved = victim.read_bytes()
    victim.write_bytes(saved[: len(saved) // 2])
    try:
        body = {
            "vm_id": world.estate.vm.id,
            "point_id": world.image_point["point_id"],
            "source": "repository",
            "target": {"name": "web-broken", "resource_group": group},
        }
        output = restore(world, "vm", body)["output"]
    finally:
        victim.write_bytes(saved)
    assert output["status"] == "Failed", output
    assert "is damaged" in output["reason"] and "bulwark verify" in output["reason"], output["reason"]
    assert disks_in(world, group) == []


def test_no_secret_in_restore_state_and_the_orchestrator_is_deterministic(world: World) -> None:
    secrets = [PASSPHRASE]
    assert_no_secrets(
        runtime_state=world.work / "runtime",
        http_bodies=world.bodies,
        logs=world.logs,
        stack_state=Path(world.stack.state_dir),
        secrets=secrets,
    )
    report = determinism_check(world.work / "runtime")
    assert " 0 findings" in report and int(report.split(" histories replayed")[0].split()[-1]) >= 6, report


def bulwark(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BULWARK_APP_URL=world.host.base_url, BULWARK_FUNCTION_KEY=KEY)
    return subprocess.run(
        [str(Path(sys.executable).with_name("bulwark")), "restore", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_cli_restores_a_disk_and_refuses_a_replace_without_yes(world: World) -> None:
    vm_id = world.estate.vm.id
    done = bulwark(
        world, "disk", world.image_point["point_id"], "--vm", vm_id, "--lun", "os", "--name", "cli-os", "--json"
    )
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["status"] == "Succeeded" and output["disks"][0]["disk_id"].endswith("/disks/cli-os")
    assert same_bytes(world.admin, output["disks"][0]["disk_id"], world.expected["os"], world.work)

    refused_run = bulwark(world, "vm", world.image_point["point_id"], "--vm", vm_id, "--replace")
    assert refused_run.returncode == 2
    assert refused_run.stderr.count("\n") == 1 and "confirm" in refused_run.stderr
