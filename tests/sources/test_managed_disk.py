"""Managed-disk snapshots as backup sources: full, then incremental from the page-range diff.

The issue's key "must hold": a simulated VM disk backed up with the real engine, guest writes and a
trim, a second snapshot, the diff -> the second backup reads only the changed blocks, and both
points restore byte-identical to what the guest saw at each snapshot (trimmed ranges as zeros).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.mgmt.compute import ComputeManagementClient
from bulwark_local.sim_cli import app as sim_cli
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient
from typer.testing import CliRunner

from shared.azure.compute import AzureCompute, snapshot_name, snapshot_tags
from shared.azure.model import DiskInfo, SasUrl, SnapshotInfo
from shared.azure.pageblob import DataPlaneOptions
from shared.core.errors import SnapshotAccessError, SourceError
from shared.core.ranges import Extent, blocks_touched, merge_extents, plan_incremental
from shared.engine.backup import backup_image
from shared.engine.restore import restore_image
from shared.repo.point import Point
from shared.repo.repository import Repository
from shared.sources.image_file import ImageFileSource
from shared.sources.managed_disk import ManagedDiskSnapshotSource
from tests.azure.conftest import make_group, make_vm

KIB, MIB = 1 << 10, 1 << 20


def guest_image(stack_file: Path, disk: DiskInfo | str, path: Path) -> Path:
    """The disk's bytes as the guest sees them, saved by ``bulwark-sim guest read DISK --out PATH``
    (the command itself, run in-process: unallocated ranges become holes of the sparse file)."""
    target = disk.id if isinstance(disk, DiskInfo) else disk
    result = CliRunner().invoke(sim_cli, ["--stack", str(stack_file), "guest", "read", target, "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def restored_equals(repo: Repository, point: Point, expected: Path, target: Path) -> bool:
    restore_image(repo, point, target)
    return same_image(expected, target)


def same_image(a: Path, b: Path) -> bool:
    """Byte equality of two sparse images, reading only where either holds data (holes are zeros)."""
    if a.stat().st_size != b.stat().st_size:
        return False
    extents = merge_extents([*data_extents(a), *data_extents(b)])
    with a.open("rb") as left, b.open("rb") as right:
        for extent in extents:
            for offset in range(extent.offset, extent.end, 8 * MIB):
                length = min(8 * MIB, extent.end - offset)
                if os.pread(left.fileno(), length, offset) != os.pread(right.fileno(), length, offset):
                    return False
    return True


def data_extents(path: Path) -> list[Extent]:
    with ImageFileSource(path) as source:
        return list(source.allocated())


def take(compute: AzureCompute, disk: DiskInfo, group: str, session: str) -> SnapshotInfo:
    return compute.create_snapshot(
        disk, resource_group=group, name=snapshot_name(disk.id, session), tags=snapshot_tags("p1", session, disk.name)
    )


def test_full_then_incremental_backup_of_a_vm_disk(
    sim: SimulatorEndpoints,
    compute: AzureCompute,
    sdk: ComputeManagementClient,
    admin: AdminClient,
    data_plane: DataPlaneOptions,
    repo: Repository,
    stack_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    group = make_group(sim)
    vm = make_vm(compute, sdk, group, "app", data_disks=1)
    disk = compute.get_disk(vm.data_disks[0].managed_disk_id or "")
    block = repo.config.block_size
    # A guest file system's worth of writes: scattered, some unaligned, one crossing blocks.
    admin.guest_write(disk.id, 0, os.urandom(64 * KIB))
    admin.guest_write(disk.id, 3 * MIB + 1000, os.urandom(5 * MIB))
    admin.guest_write(disk.id, 20 * MIB, b"\x00" * MIB)  # allocated but zero
    admin.guest_write(disk.id, 100 * MIB, os.urandom(2 * MIB))
    admin.guest_write(disk.id, disk.size_bytes - 4 * KIB, os.urandom(4 * KIB))  # the disk's last page
    first_image = guest_image(stack_file, disk, tmp_path / "guest-1.img")
    first = take(compute, disk, group, "s1")
    sas1 = compute.grant_read(first.id)

    with ManagedDiskSnapshotSource(sas1, source_id=disk.id, options=data_plane) as source:
        assert source.size == disk.size_bytes and source.source_id == disk.id
        allocated = list(source.allocated())
        full = backup_image(repo, source, workers=4)
    assert full.bytes_read == len(list(blocks_touched(allocated, block))) * block
    assert block == MIB and full.bytes_read == 11 * MIB  # blocks 0, 3-8, 20, 100, 101, 1023: holes never read
    assert restored_equals(repo, full.point, first_image, tmp_path / "restore-1.img")

    # The guest writes, overwrites and trims; the disk changes after the first snapshot only.
    admin.guest_write(disk.id, 8 * KIB, os.urandom(4 * KIB))
    admin.guest_write(disk.id, 50 * MIB + 512, os.urandom(3 * KIB))
    admin.guest_write(disk.id, 100 * MIB + 4 * KIB, os.urandom(MIB))
    admin.guest_trim(disk.id, 3 * MIB + 1000, 3 * MIB)  # whole blocks 4 and 5 become holes
    admin.guest_trim(disk.id, 32 * KIB, 16 * KIB)  # part of block 0
    second_image = guest_image(stack_file, disk, tmp_path / "guest-2.img")
    second = take(compute, disk, group, "s2")
    assert [s.id for s in compute.snapshot_chain(disk, resource_group=group)] == [first.id, second.id]
    sas2 = compute.grant_read(second.id)

    with ManagedDiskSnapshotSource(sas2, source_id=disk.id, options=data_plane) as source:
        changes = source.changes_since(sas1)
        incremental = backup_image(repo, source, parent=full.point, changes=changes, workers=4)
    assert changes.changed == [
        Extent(8 * KIB, 4 * KIB),
        Extent(3 * MIB + 512, 512),  # the unaligned trim's edge pages are zeroed, i.e. written
        Extent(6 * MIB + 512, 512),
        Extent(50 * MIB + 512, 3 * KIB),
        Extent(100 * MIB + 4 * KIB, MIB),
    ]
    assert changes.cleared == [Extent(32 * KIB, 16 * KIB), Extent(3 * MIB + 1024, 3 * MIB - 512)]
    read_blocks, holes = plan_incremental(changes, block)
    assert read_blocks == [0, 3, 6, 50, 100, 101] and holes == [4, 5]
    assert incremental.bytes_read == len(read_blocks) * block == 6 * MIB  # only the changed blocks were read
    assert incremental.point.parent == full.point.point_id
    assert restored_equals(repo, incremental.point, second_image, tmp_path / "restore-2.img")
    assert restored_equals(repo, full.point, first_image, tmp_path / "restore-1-again.img")
    with (tmp_path / "restore-2.img").open("rb") as restored:
        restored.seek(4 * MIB)
        assert restored.read(2 * MIB) == bytes(2 * MIB)  # trimmed ranges read back as zeros

    for snap in (first, second):
        compute.revoke(snap.id)
    assert_no_signature(caplog, sas1, sas2)


def assert_no_signature(caplog: pytest.LogCaptureFixture, *grants: SasUrl) -> None:
    signatures = [parse_qs(urlsplit(sas.reveal()).query)["sig"][0] for sas in grants]
    assert caplog.records, "DEBUG logging was captured"
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for signature in signatures:
        assert signature not in text
        assert signature.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D") not in text


def test_diff_pages_over_next_marker(
    sim: SimulatorEndpoints,
    compute: AzureCompute,
    sdk: ComputeManagementClient,
    admin: AdminClient,
    data_plane: DataPlaneOptions,
) -> None:
    group = make_group(sim)
    vm = make_vm(compute, sdk, group, "frag", data_disks=1)
    disk = compute.get_disk(vm.data_disks[0].managed_disk_id or "")
    for i in range(12):
        admin.guest_write(disk.id, i * MIB, os.urandom(4 * KIB))
    base = take(compute, disk, group, "base")
    for i in range(12):
        admin.guest_write(disk.id, i * MIB + 64 * KIB, os.urandom(KIB))
    admin.guest_trim(disk.id, 5 * MIB, 4 * KIB)
    later = take(compute, disk, group, "later")
    sas_base, sas_later = compute.grant_read(base.id), compute.grant_read(later.id)
    admin.settings(pagelist_page_limit=5)  # Azure pages at 10,000 ranges; 5 makes four pages here
    with (
        ManagedDiskSnapshotSource(sas_base, source_id=disk.id, options=data_plane) as old,
        ManagedDiskSnapshotSource(sas_later, source_id=disk.id, options=data_plane) as new,
    ):
        assert [e.offset for e in old.allocated()] == [i * MIB for i in range(12)]
        changes = new.changes_since(sas_base)
    assert changes.changed == [Extent(i * MIB + 64 * KIB, KIB) for i in range(12)]
    assert changes.cleared == [Extent(5 * MIB, 4 * KIB)]


def test_refused_sas_and_wrong_chain_are_typed_errors(
    sim: SimulatorEndpoints,
    compute: AzureCompute,
    sdk: ComputeManagementClient,
    admin: AdminClient,
    data_plane: DataPlaneOptions,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    group = make_group(sim)
    vm = make_vm(compute, sdk, group, "err", data_disks=1)
    disk = compute.get_disk(vm.data_disks[0].managed_disk_id or "")
    os_disk = compute.get_disk(vm.os_disk.managed_disk_id or "")
    admin.guest_write(disk.id, 0, os.urandom(4 * KIB))
    snap = take(compute, disk, group, "one")
    other = take(compute, os_disk, group, "one")
    sas, other_sas = compute.grant_read(snap.id), compute.grant_read(other.id)
    source = ManagedDiskSnapshotSource(sas, source_id=disk.id, options=data_plane)
    with pytest.raises(SourceError, match="same disk") as wrong_chain:
        source.changes_since(other_sas)
    assert "full" in str(wrong_chain.value)
    compute.revoke(snap.id)
    with pytest.raises(SnapshotAccessError) as refused:
        source.read(0, 4096)
    with pytest.raises(SnapshotAccessError):
        list(source.allocated())
    source.close()
    with pytest.raises(SnapshotAccessError):
        ManagedDiskSnapshotSource(sas, source_id=disk.id, options=data_plane)
    message = str(refused.value) + str(refused.value.__cause__)
    assert "beginGetAccess" in message and "sig=" not in message
    assert_no_signature(caplog, sas, other_sas)
