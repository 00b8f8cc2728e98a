"""Walking what a restore point references: its maps, then the data blocks the maps name; for a
file-set point, its chunk lists, then the chunks the lists name."""

from __future__ import annotations

from collections.abc import Iterator

from shared.core.errors import IntegrityError, UsageError
from shared.repo.index import Index
from shared.repo.point import MAP_SPAN, ChunkRef, FileMember, FileSet, ImageMap, Point, decode_chunk_list, decode_map
from shared.repo.repository import Repository

__all__ = ["files_of", "image_blocks", "image_of", "member_chunks", "point_references", "read_chunk_list"]


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


def files_of(point: Point) -> FileSet:
    if point.files is None:
        raise UsageError(f"point {point.point_id} is a {point.kind} point, not a file set (such as a BACPAC)")
    return point.files


def read_chunk_list(repo: Repository, index: Index, point: Point, list_id: bytes) -> list[ChunkRef]:
    location = index.get(list_id)
    if location is None:
        raise IntegrityError(
            f"point {point.point_id}: chunk list {list_id.hex()[:16]} is missing from the index",
            hint="run `bulwark verify`",
        )
    try:
        return decode_chunk_list(repo.read_block(location))
    except ValueError as exc:
        raise IntegrityError(f"point {point.point_id}: chunk list {list_id.hex()[:16]} is malformed: {exc}") from exc


def member_chunks(repo: Repository, index: Index, point: Point, member: FileMember) -> Iterator[ChunkRef]:
    """(chunk id, length) of the member's content in order; one chunk list in memory at a time."""
    for list_id in member.lists:
        yield from read_chunk_list(repo, index, point, list_id)


def point_references(repo: Repository, index: Index, point: Point) -> Iterator[bytes]:
    """Every block id the point needs: its maps and their data blocks, or its chunk lists and
    their chunks (with repeats)."""
    if point.image is not None:
        for map_id in point.image.maps:
            if map_id is None:
                continue
            yield map_id
            yield from read_map(repo, index, point, map_id).values()
    if point.files is not None:
        for member in point.files.members:
            for list_id in member.lists:
                yield list_id
                yield from (chunk_id for chunk_id, _ in read_chunk_list(repo, index, point, list_id))
