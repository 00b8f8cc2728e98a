"""Byte ranges of a disk and what a backup must do with each block.

Sources describe a disk as extents: the allocated ranges (full backup) or, relative to the
previous snapshot, the changed ranges plus the cleared ranges (Azure's page-range diff). The
engine works in whole blocks, so this module turns extents into block decisions:

* a block touched by any changed or allocated byte is read;
* a block entirely covered by cleared ranges becomes a hole without being read;
* a block only partly cleared is read, because its other bytes still hold data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from shared.core.errors import UsageError

__all__ = ["ChangeSet", "Extent", "blocks_touched", "merge_extents", "plan_incremental"]


@dataclass(frozen=True, order=True)
class Extent:
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def merge_extents(extents: Iterable[Extent]) -> list[Extent]:
    """Sort and coalesce overlapping or adjacent extents; drop empty ones."""
    merged: list[Extent] = []
    for ext in sorted(e for e in extents if e.length > 0):
        if merged and ext.offset <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Extent(last.offset, max(last.end, ext.end) - last.offset)
        else:
            merged.append(ext)
    return merged


def blocks_touched(extents: Iterable[Extent], block_size: int) -> Iterator[int]:
    """Indexes of the blocks that any extent touches, ascending, each once (extents merged)."""
    last = -1
    for ext in merge_extents(extents):
        first = max(ext.offset // block_size, last + 1)
        for block in range(first, (ext.end - 1) // block_size + 1):
            yield block
            last = block


def _blocks_covered(extents: Iterable[Extent], block_size: int) -> Iterator[int]:
    for ext in merge_extents(extents):
        first = -(-ext.offset // block_size)
        yield from range(first, ext.end // block_size)


@dataclass(frozen=True)
class ChangeSet:
    """What changed since the parent point: changed and cleared byte ranges."""

    changed: list[Extent]
    cleared: list[Extent]

    @classmethod
    def from_json(cls, doc: object, size: int) -> ChangeSet:
        """Parse ``{"changed": [[offset, length], ...], "cleared": [...]}`` (or a bare list of
        changed ranges) and check every range lies within a disk of ``size`` bytes."""
        if isinstance(doc, list):
            doc = {"changed": doc, "cleared": []}
        if not isinstance(doc, dict) or not set(doc) <= {"changed", "cleared"}:
            raise UsageError(
                "the changed-ranges file must be an object with 'changed' and 'cleared' lists",
                hint='e.g. {"changed": [[0, 4096]], "cleared": [[1048576, 65536]]}',
            )
        parsed: dict[str, list[Extent]] = {}
        for field_name in ("changed", "cleared"):
            items = doc.get(field_name, [])
            if not isinstance(items, list):
                raise UsageError(f"changed-ranges: '{field_name}' must be a list of [offset, length] pairs")
            extents = []
            for n, item in enumerate(items):
                if (
                    not isinstance(item, list | tuple)
                    or len(item) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
                ):
                    raise UsageError(f"changed-ranges: {field_name}[{n}] must be [offset, length] in bytes")
                offset, length = item
                if offset < 0 or length < 0 or offset + length > size:
                    raise UsageError(
                        f"changed-ranges: {field_name}[{n}] = [{offset}, {length}] lies outside the "
                        f"disk of {size} bytes",
                        hint="the ranges must come from a diff of this disk's snapshots",
                    )
                extents.append(Extent(offset, length))
            parsed[field_name] = merge_extents(extents)
        return cls(parsed["changed"], parsed["cleared"])


def plan_incremental(changes: ChangeSet, block_size: int) -> tuple[list[int], list[int]]:
    """(blocks to read, blocks that become holes), both ascending."""
    read = set(blocks_touched(changes.changed, block_size))
    covered = set(_blocks_covered(changes.cleared, block_size))
    partly_cleared = set(blocks_touched(changes.cleared, block_size)) - covered
    read |= partly_cleared
    return sorted(read), sorted(covered - read)
