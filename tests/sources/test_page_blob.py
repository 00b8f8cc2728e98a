"""Unmanaged (VHD page blob) disks: blob snapshots, prevsnapshot diffs, full and incremental backups."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient

from shared.azure.pageblob import DataPlaneOptions, VhdBlobs
from shared.core.errors import SourceError
from shared.core.ranges import Extent, blocks_touched, plan_incremental
from shared.engine.backup import backup_image
from shared.engine.restore import restore_image
from shared.repo.repository import Repository
from shared.sources.page_blob import PageBlobSnapshotSource

from .test_managed_disk import guest_image, same_image

KIB, MIB = 1 << 10, 1 << 20


def test_vhd_disk_full_then_incremental(
    sim: SimulatorEndpoints,
    admin: AdminClient,
    data_plane: DataPlaneOptions,
    repo: Repository,
    stack_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    size = 64 * MIB
    uri = f"{sim.data}/legacystore/vhds/{uuid.uuid4().hex[:8]}-os.vhd"
    admin.create_vhd(uri, size)
    admin.guest_write(uri, 0, os.urandom(128 * KIB))
    admin.guest_write(uri, 10 * MIB + 100, os.urandom(3 * MIB))
    admin.guest_write(uri, size - 512, os.urandom(512))
    first_image = guest_image(stack_file, uri, tmp_path / "guest-1.img")
    vhds = VhdBlobs(data_plane)
    first = vhds.create_snapshot(uri, metadata={"bulwark_session": "s1"})

    with PageBlobSnapshotSource(uri, first, options=data_plane) as source:
        assert source.size == size and source.source_id == uri
        allocated = list(source.allocated())
        full = backup_image(repo, source, workers=3)
    assert full.bytes_read == len(list(blocks_touched(allocated, repo.config.block_size))) * MIB == 6 * MIB
    restore_image(repo, full.point, tmp_path / "restore-1.img")
    assert same_image(first_image, tmp_path / "restore-1.img")

    admin.guest_write(uri, 40 * MIB, os.urandom(8 * KIB))
    admin.guest_trim(uri, 11 * MIB, 2 * MIB)
    second_image = guest_image(stack_file, uri, tmp_path / "guest-2.img")
    second = vhds.create_snapshot(uri)
    with PageBlobSnapshotSource(uri, second, options=data_plane) as source:
        changes = source.changes_since(first)
        incremental = backup_image(repo, source, parent=full.point, changes=changes, workers=3)
    assert changes.changed == [Extent(40 * MIB, 8 * KIB)] and changes.cleared == [Extent(11 * MIB, 2 * MIB)]
    planned, holes = plan_incremental(changes, MIB)
    assert planned == [40] and holes == [11, 12]
    assert incremental.bytes_read == MIB
    restore_image(repo, incremental.point, tmp_path / "restore-2.img")
    assert same_image(second_image, tmp_path / "restore-2.img")

    vhds.delete_snapshot(uri, first)
    vhds.delete_snapshot(uri, first)  # already gone: fine
    with pytest.raises(SourceError):
        PageBlobSnapshotSource(uri, first, options=data_plane)
    assert "sig=" not in caplog.text


def test_missing_vhd_is_a_typed_error(sim: SimulatorEndpoints, data_plane: DataPlaneOptions) -> None:
    with pytest.raises(SourceError, match="no longer exists"):
        VhdBlobs(data_plane).create_snapshot(f"{sim.data}/legacystore/nosuchcontainer/x.vhd")
