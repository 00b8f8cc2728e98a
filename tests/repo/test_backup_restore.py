"""Backups restore byte for byte: full, change-list incremental, full-scan incremental."""

from __future__ import annotations

import filecmp
import threading
from pathlib import Path

import pytest

from shared.core.errors import UsageError
from shared.core.ranges import ChangeSet, Extent
from shared.engine.backup import BackupResult, backup_image
from shared.engine.restore import restore_image, restore_into
from shared.repo.checker import verify_repository
from shared.repo.repository import Repository
from shared.sources.image_file import ImageFileSource
from tests.support.images import MiB, allocated_bytes, make_image, punch_hole, write_at


def backup(repo: Repository, image: Path, **kwargs: object) -> BackupResult:
    with ImageFileSource(image) as source:
        return backup_image(repo, source, **kwargs)  # type: ignore[arg-type]


def restored(repo: Repository, result: BackupResult, target: Path) -> Path:
    restore_image(repo, result.point, target)
    return target


def test_full_backup_restores_identical_and_sparse(repo: Repository, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 24 * MiB)
    result = backup(repo, image)
    assert result.blocks_zero == 1  # the allocated zero block is not stored
    assert result.bytes_read == 12 * MiB  # holes are never read
    out = restored(repo, result, tmp_path / "out.img")
    assert filecmp.cmp(image, out, shallow=False)
    # holes and the zero block stay holes (a few KiB of file-system metadata aside)
    assert allocated_bytes(out) <= allocated_bytes(image) - MiB + 64 * 1024


def test_change_list_incremental_reads_only_changes(repo: Repository, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 40 * MiB, data_blocks=30)
    full = backup(repo, image)
    before = tmp_path / "before.img"
    restore_image(repo, full.point, before)
    # guest writes (one unaligned), a trim of two whole blocks and a partial trim
    write_at(image, 3 * MiB + 100, b"new bytes" * 1000)
    write_at(image, 39 * MiB, b"\x07" * MiB)
    punch_hole(image, 10 * MiB, 2 * MiB)
    punch_hole(image, 20 * MiB + 4096, 8192)
    changes = ChangeSet(
        changed=[Extent(3 * MiB + 100, 9000), Extent(39 * MiB, MiB)],
        cleared=[Extent(10 * MiB, 2 * MiB), Extent(20 * MiB + 4096, 8192)],
    )
    incr = backup(repo, image, parent=full.point, changes=changes)
    assert incr.blocks_read == 3  # blocks 3, 39 and the partly trimmed 20
    assert incr.bytes_read == 3 * MiB
    assert filecmp.cmp(image, restored(repo, incr, tmp_path / "incr.img"), shallow=False)
    # the parent point is untouched
    assert filecmp.cmp(before, restored(repo, full, tmp_path / "full-again.img"), shallow=False)
    assert verify_repository(repo, read_data=True).ok


def test_full_scan_with_parent_stores_only_new_blocks(repo: Repository, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 16 * MiB, data_blocks=10)
    full = backup(repo, image)
    write_at(image, 5 * MiB, b"\x01" * 4096)
    second = backup(repo, image, parent=full.point)
    assert second.blocks_new == 1
    assert second.blocks_dedup == full.blocks_new
    assert filecmp.cmp(image, restored(repo, second, tmp_path / "out.img"), shallow=False)


def test_disk_that_grew_and_shrank(repo: Repository, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 8 * MiB, data_blocks=8)
    first = backup(repo, image)
    with image.open("r+b") as f:
        f.truncate(12 * MiB + 512)  # grown by a partial block
    write_at(image, 12 * MiB, b"\x05" * 512)
    grown = backup(repo, image, parent=first.point, changes=ChangeSet([Extent(12 * MiB, 512)], []))
    assert filecmp.cmp(image, restored(repo, grown, tmp_path / "grown.img"), shallow=False)
    with image.open("r+b") as f:
        f.truncate(5 * MiB)
    shrunk = backup(repo, image, parent=grown.point, changes=ChangeSet([], []))
    assert shrunk.blocks_read == 0
    assert filecmp.cmp(image, restored(repo, shrunk, tmp_path / "shrunk.img"), shallow=False)


def test_change_list_needs_a_parent(repo: Repository, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 4 * MiB)
    with pytest.raises(UsageError, match="needs the parent point"):
        backup(repo, image, changes=ChangeSet([], []))


def test_restore_refuses_to_overwrite_unless_asked(repo: Repository, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 4 * MiB)
    result = backup(repo, image)
    target = tmp_path / "exists.img"
    target.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        restore_image(repo, result.point, target)
    assert target.read_bytes() == b"precious"
    restore_image(repo, result.point, target, overwrite=True)
    assert filecmp.cmp(image, target, shallow=False)


def test_identical_disks_deduplicate(repo: Repository, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 8 * MiB)
    copy = tmp_path / "copy.img"
    copy.write_bytes(image.read_bytes())
    first = backup(repo, image)
    second = backup(repo, copy)
    assert second.blocks_new == 0 and second.blocks_dedup == first.blocks_new


class RecordingTarget:
    """A BlockTarget that keeps what it is given: the image in memory and every write's size."""

    def __init__(self, size: int) -> None:
        self.image = bytearray(size)
        self.writes: list[int] = []
        self._lock = threading.Lock()

    def write(self, offset: int, data: bytes) -> None:
        with self._lock:
            self.image[offset : offset + len(data)] = data
            self.writes.append(len(data))


def test_coalesced_restore_joins_adjacent_blocks_into_fewer_larger_writes(repo: Repository, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 40 * MiB, data_blocks=30)
    result = backup(repo, image)
    plain = RecordingTarget(40 * MiB)
    restore_into(repo, result.point, plain)
    joined = RecordingTarget(40 * MiB)
    restore_into(repo, result.point, joined, coalesce=4 * MiB)
    assert joined.image == plain.image == bytearray(image.read_bytes())
    assert max(joined.writes) <= 4 * MiB and sum(joined.writes) == sum(plain.writes)
    assert len(joined.writes) < len(plain.writes) / 2
