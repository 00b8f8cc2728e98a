from __future__ import annotations

import pytest

from shared.core.errors import UsageError
from shared.core.ranges import ChangeSet, Extent, blocks_touched, merge_extents, plan_incremental

MiB = 1 << 20


def test_merge_coalesces_overlapping_and_adjacent_extents() -> None:
    merged = merge_extents([Extent(10, 5), Extent(0, 10), Extent(30, 0), Extent(14, 6), Extent(40, 2)])
    assert merged == [Extent(0, 20), Extent(40, 2)]


def test_blocks_touched_counts_each_block_once() -> None:
    extents = [Extent(0, 1), Extent(MiB - 1, 2), Extent(5 * MiB, 3 * MiB)]
    assert list(blocks_touched(extents, MiB)) == [0, 1, 5, 6, 7]


def test_plan_reads_changed_and_partly_cleared_blocks_and_holes_fully_cleared_ones() -> None:
    changes = ChangeSet(
        changed=[Extent(0, 512), Extent(10 * MiB, 4096)],
        cleared=[Extent(2 * MiB, 2 * MiB), Extent(6 * MiB + 4096, 4096), Extent(10 * MiB, 2 * MiB)],
    )
    read, holes = plan_incremental(changes, MiB)
    # block 6 is only partly trimmed, block 10 is both changed and cleared: both must be read
    assert read == [0, 6, 10]
    assert holes == [2, 3, 11]


def test_changeset_accepts_a_bare_list_and_checks_bounds() -> None:
    assert ChangeSet.from_json([[0, 4096]], 8192).changed == [Extent(0, 4096)]
    with pytest.raises(UsageError, match=r"changed\[0\] = \[4096, 8192\] lies outside the disk of 8192 bytes"):
        ChangeSet.from_json({"changed": [[4096, 8192]]}, 8192)
    with pytest.raises(UsageError, match=r"cleared\[1\] must be \[offset, length\]"):
        ChangeSet.from_json({"changed": [], "cleared": [[0, 1], [0, "x"]]}, 8192)
    with pytest.raises(UsageError, match="must be an object"):
        ChangeSet.from_json({"changes": []}, 8192)
