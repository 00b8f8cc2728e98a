"""The benchmark image generator: deterministic, sparse where it should be, honest diffs."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import zstandard

from scripts.make_image import (
    MIB,
    BlockFactory,
    ChangedRanges,
    Kind,
    Layout,
    allocated_bytes,
    build_image,
    coalesce,
    data_extents,
    diff_images,
    main,
    mutate_image,
    nonzero_blocks,
    plan_layout,
)

SIZE_MIB = 8


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(path: Path, seed: int = 42, size_mib: int = SIZE_MIB) -> Layout:
    layout = plan_layout(size_mib, seed)
    build_image(path, layout, seed)
    return layout


def _apply(base: Path, diff: ChangedRanges, source: Path, out: Path) -> None:
    """What a change-list incremental restores: base + changed bytes from source + zeros."""
    shutil.copyfile(base, out)
    with out.open("r+b") as dst, source.open("rb") as src:
        for offset, length in diff.changed:
            os.pwrite(dst.fileno(), os.pread(src.fileno(), length, offset), offset)
        for offset, length in diff.cleared:
            os.pwrite(dst.fileno(), bytes(length), offset)


def test_same_seed_gives_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    _build(tmp_path / "a.img")
    _build(tmp_path / "b.img")
    _build(tmp_path / "c.img", seed=43)

    assert _digest(tmp_path / "a.img") == _digest(tmp_path / "b.img")
    assert _digest(tmp_path / "a.img") != _digest(tmp_path / "c.img")


def test_layout_covers_the_disk_with_the_default_mix() -> None:
    layout = plan_layout(1000, seed=1)

    assert sum(e.length_mib for e in layout.extents) == 1000
    assert [e.start_mib for e in layout.extents] == sorted(e.start_mib for e in layout.extents)
    assert all(1 <= e.length_mib <= 32 for e in layout.extents)
    assert layout.mib_of(Kind.HOLE) == 300
    assert layout.mib_of(Kind.RANDOM) == 300
    assert layout.mib_of(Kind.COMPRESSIBLE) == 400


def test_sparse_layout_scatters_little_data_over_a_big_disk() -> None:
    layout = plan_layout(64 * 1024, seed=1, data_mib=512)
    data = [e for e in layout.extents if e.kind is not Kind.HOLE]

    assert layout.mib_of(Kind.HOLE) == 64 * 1024 - 512
    assert max(e.start_mib for e in data) > 32 * 1024
    assert min(e.start_mib for e in data) < 32 * 1024


def test_holes_stay_unallocated(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    layout = _build(image, size_mib=16)

    assert image.stat().st_size == 16 * MIB
    assert allocated_bytes(image) == (16 - layout.mib_of(Kind.HOLE)) * MIB
    with image.open("rb") as f:
        allocated = sum(length for _, length in data_extents(f.fileno()))
    assert allocated == (16 - layout.mib_of(Kind.HOLE)) * MIB


def test_nonzero_blocks_ignores_holes_and_written_zeros(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate(8 * MIB)
        os.pwrite(f.fileno(), bytes(MIB), 0)  # allocated but all zeros
        os.pwrite(f.fileno(), b"x", 3 * MIB + 5)
        os.pwrite(f.fileno(), b"y" * 10, 8 * MIB - 10)

    assert nonzero_blocks(image) == 2
    assert nonzero_blocks(image, block=4096) == 2


def test_blocks_are_all_different_and_compress_like_real_data() -> None:
    factory = BlockFactory(seed=5, stream="base")
    compressible = [factory.compressible_block(i) for i in range(16)]
    random_blocks = [factory.random_block(i) for i in range(4)]
    compressor = zstandard.ZstdCompressor(level=1)

    blocks = compressible + random_blocks
    assert all(len(b) == MIB for b in blocks)
    assert len(set(blocks)) == len(blocks)
    ratio = 16 * MIB / sum(len(compressor.compress(b)) for b in compressible)
    assert 3.0 <= ratio <= 4.5
    assert all(len(compressor.compress(b)) > 0.99 * MIB for b in random_blocks)


def test_mutation_reports_every_changed_page(tmp_path: Path) -> None:
    base, image = tmp_path / "base.img", tmp_path / "disk.img"
    _build(base, size_mib=100)
    shutil.copyfile(base, image)

    diff = mutate_image(image, pct=4, seed=7, trim_pct=3)

    assert diff.changed_bytes == 4 * MIB
    assert diff.cleared_bytes == 3 * MIB
    actual = diff_images(base, image)
    assert _covered(actual.changed + actual.cleared, diff.changed + diff.cleared)
    _apply(base, diff, image, tmp_path / "rebuilt.img")
    assert _digest(tmp_path / "rebuilt.img") == _digest(image)


def test_mutation_is_deterministic(tmp_path: Path) -> None:
    base = tmp_path / "base.img"
    _build(base)
    copies = [tmp_path / "one.img", tmp_path / "two.img"]
    diffs = []
    for copy in copies:
        shutil.copyfile(base, copy)
        diffs.append(mutate_image(copy, pct=25, seed=3, trim_pct=10))

    assert diffs[0] == diffs[1]
    assert _digest(copies[0]) == _digest(copies[1])


def test_trimmed_blocks_become_holes(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    _build(image, size_mib=20)
    before = allocated_bytes(image)

    diff = mutate_image(image, pct=0, seed=1, trim_pct=10)

    assert diff.changed == ()
    assert diff.cleared_bytes == 2 * MIB
    assert allocated_bytes(image) == before - diff.cleared_bytes


def test_diff_finds_page_sized_changes_and_clears(tmp_path: Path) -> None:
    old, new = tmp_path / "old.img", tmp_path / "new.img"
    old.write_bytes(b"\1" * (2 * MIB))
    data = bytearray(old.read_bytes())
    data[1024:1536] = b"\2" * 512  # one page rewritten
    data[MIB : MIB + 1024] = bytes(1024)  # two pages cleared
    data[MIB + 1024 : MIB + 1025] = b"\3"  # one byte in the next page
    new.write_bytes(bytes(data))

    diff = diff_images(old, new)

    assert diff.changed == ((1024, 512), (MIB + 1024, 512))
    assert diff.cleared == ((MIB, 1024),)


def test_coalesce_merges_touching_and_overlapping_ranges() -> None:
    assert coalesce([(10, 5), (0, 10), (30, 5), (32, 10)]) == ((0, 15), (30, 12))


def test_changed_ranges_round_trip_through_json() -> None:
    diff = ChangedRanges(changed=((0, MIB), (4 * MIB, 2 * MIB)), cleared=((8 * MIB, 512),))

    assert ChangedRanges.from_json(diff.to_json()) == diff


def test_command_line_builds_then_mutates_with_a_ranges_file(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"

    assert main([str(image), "--size-mib", "6", "--seed", "9"]) == 0
    assert main([str(image), "--mutate", "--pct", "50"]) == 0

    diff = ChangedRanges.from_json((tmp_path / "disk.img.ranges.json").read_text())
    assert diff.changed_bytes == 3 * MIB
    assert diff.cleared == ()


def test_rejects_more_data_than_disk() -> None:
    with pytest.raises(ValueError, match="data_mib"):
        plan_layout(10, seed=1, data_mib=11)


def _covered(inner: tuple[tuple[int, int], ...], outer: tuple[tuple[int, int], ...]) -> bool:
    merged = coalesce(outer)
    return all(any(o <= offset and offset + length <= o + n for o, n in merged) for offset, length in inner)
