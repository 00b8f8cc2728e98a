"""Walking what a restore point references: its maps, then the data blocks the maps name."""

from __future__ import annotations

from collections.abc import Iterator

from shared.core.errors import IntegrityError, UsageError
from shared.repo.index import Index
from shared.repo.point import MAP_SPAN, ImageMap, Point, decode_map
from shared.repo.repository import Repository

__all__ = ["image_blocks", "image_of", "point_references"]


def image_of(point: Point) -> ImageMap:
    if point.kind != "image" or point.image is None:
        raise UsageError(f"point {point.point_id} is a {point.kind} point, not a disk image")
    return point.image


def read_map(repo: Repository, index: Index, point: Point, map_id: bytes) -> dict[int, bytes]:
    location = index.get(map_id)
    if location is None:
        raise IntegrityError(
            f"point {point.point_id}: block map {map_id.hex()[:16]} is missing from the index",
            hint="run `bulwark verify`",
        )
    try:
        return decode_map(repo.read_block(location), MAP_SPAN)
    except ValueError as exc:
        raise IntegrityError(f"point {point.point_id}: block map {map_id.hex()[:16]} is malformed") from exc


def image_blocks(repo: Repository, index: Index, point: Point) -> Iterator[tuple[int, bytes]]:
    """(block index, block id) of every block with data, ascending; holes are skipped."""
    image = image_of(point)
    for span, map_id in enumerate(image.maps):
        if map_id is None:
            continue
        entries = read_map(repo, index, point, map_id)
        first = span * MAP_SPAN
        for relative in sorted(entries):
            yield first + relative, entries[relative]


def point_references(repo: Repository, index: Index, point: Point) -> Iterator[bytes]:
    """Every block id the point needs: its maps and their data blocks (with repeats)."""
    if point.image is None:
        return
    for map_id in point.image.maps:
        if map_id is None:
            continue
        yield map_id
        yield from read_map(repo, index, point, map_id).values()
