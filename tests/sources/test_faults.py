"""Backups under injected faults: ARM 429/5xx, connection resets on SAS reads, an exhausted ARM write
budget and a SAS that stops working early. The results must be the same as without faults."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.compute import ComputeManagementClient
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient

from shared.azure.clients import AzureClients
from shared.azure.compute import AzureCompute, snapshot_name, snapshot_tags
from shared.azure.model import VmSelection
from shared.azure.pageblob import DataPlaneOptions
from shared.core.errors import SnapshotAccessError, ThrottledError
from shared.core.ranges import blocks_touched, plan_incremental
from shared.engine.backup import backup_image
from shared.engine.restore import restore_image
from shared.repo.repository import Repository
from shared.sources.managed_disk import ManagedDiskSnapshotSource
from tests.azure.conftest import make_group, make_vm, settings_for

from .test_managed_disk import guest_image, restored_equals

KIB, MIB = 1 << 10, 1 << 20


@pytest.fixture
def faults(admin: AdminClient) -> Iterator[AdminClient]:
    admin.clear_faults()
    yield admin
    admin.clear_faults()


def test_backup_under_arm_faults_and_read_resets_gives_identical_results(
    sim: SimulatorEndpoints,
    sdk: ComputeManagementClient,
    faults: AdminClient,
    repo: Repository,
    stack_file: Path,
    tmp_path: Path,
) -> None:
    """A policy run over every disk of a VM, twice (full, then incremental), with 429 and 503 on 5 %
    of ARM calls each and connection resets on 1 % of SAS reads."""
    clients = AzureClients(settings_for(sim))  # its own budget and clients: nothing shared with other tests
    compute = clients.compute()
    data_plane = DataPlaneOptions(ca_bundle=sim.ca_bundle, backoff_seconds=0.05)
    group = make_group(sim)
    made = make_vm(compute, sdk, group, "busy", data_disks=3, tags={"tier": "gold"})
    busy = made.data_disks[0].managed_disk_id or ""
    for i in range(12):  # 12 scattered 12 MiB extents: 144 block reads for that disk's full backup
        faults.guest_write(busy, i * 80 * MIB, os.urandom(12 * MIB))
    for n, vm_disk in enumerate(made.disks):
        faults.guest_write(vm_disk.managed_disk_id or "", 300 * MIB + n * KIB, os.urandom(100 * KIB))
    faults.faults(seed=7, arm_429=0.05, arm_429_retry_after=1, arm_5xx=0.05, arm_5xx_status=503, sas_resets=0.01)

    def session(name: str, parents: dict[str, Any]) -> dict[str, Any]:
        """Snapshot, grant and back up every disk of the selected VM; returns per-disk results."""
        (vm,) = compute.discover(VmSelection(resource_groups=(group,), tags={"tier": "gold"}))
        results: dict[str, Any] = {}
        for vm_disk in vm.disks:
            disk = compute.get_disk(vm_disk.managed_disk_id or "")
            image = guest_image(stack_file, disk, tmp_path / f"guest-{name}-{disk.name}.img")
            snap = compute.create_snapshot(
                disk, resource_group=vm.resource_group, name=snapshot_name(disk.id, name),
                tags=snapshot_tags("p", name, disk.name),
            )  # fmt: skip
            sas = compute.grant_read(snap.id)
            with ManagedDiskSnapshotSource(sas, source_id=disk.id, options=data_plane) as source:
                parent = parents.get(disk.id)
                if parent is None:
                    expected = len(list(blocks_touched(source.allocated(), MIB))) * MIB
                    result = backup_image(repo, source, workers=4)
                else:
                    changes = source.changes_since(parent["sas"])
                    expected = len(plan_incremental(changes, MIB)[0]) * MIB
                    result = backup_image(repo, source, parent=parent["point"], changes=changes, workers=4)
            assert result.bytes_read == expected
            if parent is not None:
                compute.revoke(parent["snapshot"])
            results[disk.id] = {"sas": sas, "snapshot": snap.id, "point": result.point, "image": image,
                                "read": result.bytes_read}  # fmt: skip
        return results

    first = session("f1", {})
    assert first[busy]["read"] == (12 * 12 + 1) * MIB
    for i in range(6):
        faults.guest_write(busy, i * 160 * MIB + 5 * MIB + 100, os.urandom(64 * KIB))
    faults.guest_trim(busy, 80 * MIB, 4 * MIB)
    second = session("f2", first)
    assert second[busy]["read"] == 6 * MIB
    assert all(second[d]["read"] == 0 for d in second if d != busy)  # unchanged disks read nothing
    for item in second.values():
        compute.revoke(item["snapshot"])
    injected = faults.faults()["injected"]
    faults.clear_faults()

    for results in (first, second):
        for n, item in enumerate(results.values()):
            assert restored_equals(repo, item["point"], item["image"], tmp_path / f"restore-{id(results)}-{n}.img")
    assert injected.get("arm429", 0) > 0 and injected.get("arm5xx", 0) > 0 and injected.get("sasResets", 0) > 0
    clients.close()


def test_exhausted_write_budget_waits_as_retry_after_says(
    sim: SimulatorEndpoints, sdk: ComputeManagementClient, faults: AdminClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shared.azure.throttle")
    # The client's own budget is generous here, so the server's budget is what runs out.
    clients = AzureClients(settings_for(sim, arm_writes_per_hour=360_000, arm_write_burst=100))
    compute = clients.compute()
    group = make_group(sim)
    vm = make_vm(compute, sdk, group, "many", data_disks=3)
    disks = [compute.get_disk(d.managed_disk_id or "") for d in vm.disks]
    faults.faults(write_budget=3, write_budget_seconds=1)
    started = time.monotonic()
    errors: list[BaseException] = []

    def snapshot_and_grant(index: int) -> None:
        try:
            disk = disks[index % len(disks)]
            snap = compute.create_snapshot(disk, resource_group=group, name=f"b{index}", tags={})
            compute.grant_read(snap.id, seconds=600)
            compute.revoke(snap.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=snapshot_and_grant, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    status = faults.faults()
    faults.clear_faults()
    assert errors == []
    # 24 writes at 3 a second cannot take less than 24 / 3 - 1 seconds; every 429 was waited out.
    assert elapsed >= 7
    refused = status["injected"].get("budget429", 0)
    assert refused > 0
    # Each refusal held the process's writes back for exactly the server's Retry-After (1 s here).
    holds = [r.getMessage() for r in caplog.records if "holding writes back" in r.getMessage()]
    assert len(holds) == refused and all("back 1.0 s (Retry-After)" in hold for hold in holds), holds
    names = sorted(s.name for d in disks for s in compute.snapshot_chain(d, resource_group=group))
    assert names == [f"b{i}" for i in range(8)]
    assert clients.budget.writes >= 24
    clients.close()


def test_sas_refused_mid_backup_is_renewed(
    sim: SimulatorEndpoints,
    compute: AzureCompute,
    sdk: ComputeManagementClient,
    faults: AdminClient,
    data_plane: DataPlaneOptions,
    repo: Repository,
    stack_file: Path,
    tmp_path: Path,
) -> None:
    group = make_group(sim)
    vm = make_vm(compute, sdk, group, "slow", data_disks=1)
    disk = compute.get_disk(vm.data_disks[0].managed_disk_id or "")
    faults.guest_write(disk.id, 0, os.urandom(8 * MIB))
    image = guest_image(stack_file, disk, tmp_path / "guest.img")
    snap = compute.create_snapshot(disk, resource_group=group, name="s", tags={})
    faults.faults(sas_lifetime_seconds=60)

    plain = ManagedDiskSnapshotSource(compute.grant_read(snap.id), source_id=disk.id, options=data_plane)
    renewing = ManagedDiskSnapshotSource(
        compute.grant_read(snap.id), source_id=disk.id, options=data_plane, renew=lambda: compute.grant_read(snap.id)
    )
    faults.advance_clock(120)  # both SASs were first used (size, footer) and are now refused
    with pytest.raises(SnapshotAccessError):
        plain.read(0, MIB)
    result = backup_image(repo, renewing, workers=4)
    assert result.bytes_read == 8 * MIB and renewing.renewals == 1
    assert restored_equals(repo, result.point, image, tmp_path / "restore.img")
    plain.close()
    renewing.close()
    compute.revoke(snap.id)
    assert restore_image  # the point restored above through the real restore pipeline


def test_throttling_beyond_the_retries_is_a_typed_error(sim: SimulatorEndpoints, faults: AdminClient) -> None:
    clients = AzureClients(settings_for(sim, arm_retries=1))
    faults.faults(arm_429=1.0, arm_429_retry_after=1)
    try:
        with pytest.raises(ThrottledError) as caught:
            clients.compute().discover(VmSelection())
    finally:
        faults.clear_faults()
        clients.close()
    assert caught.value.retry_after == 1 and "BULWARK_ARM_WRITES_PER_HOUR" in str(caught.value)
