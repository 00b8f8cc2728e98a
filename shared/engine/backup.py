"""The backup pipeline: disk blocks in, a restore point out.

    read -> skip zero blocks -> keyed hash -> dedup -> zstd -> AES-256-GCM -> pack -> index -> point

Reading, hashing, compressing and encrypting run on a thread pool (each of them releases the
GIL); one thread consumes results in disk order, appends new blocks to packs and builds the
block maps. At most ``2 * workers + 2`` blocks are in flight, so memory does not grow with the
disk. With a parent point and a change set only the changed blocks are read: unchanged blocks
are referenced from the parent's maps, and whole blocks inside cleared ranges become holes.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter

from shared.core.clock import format_time
from shared.core.compression import Codec, compress
from shared.core.envelope import ObjectType
from shared.core.errors import IntegrityError, SourceError, UsageError
from shared.core.ranges import ChangeSet, blocks_touched, plan_incremental
from shared.engine.source import BlockSource
from shared.repo.dedup import Deduper
from shared.repo.index import Index
from shared.repo.pack import seal_block
from shared.repo.point import MAP_SPAN, ImageMap, Point, decode_map, encode_map, new_point_id
from shared.repo.repository import Repository
from shared.repo.writer import BlockWriter

__all__ = ["BackupResult", "backup_image"]

Progress = Callable[[int], None]
"""Called with the number of source bytes just processed."""


@dataclass
class BackupResult:
    point: Point
    bytes_read: int = 0
    bytes_new: int = 0
    bytes_stored: int = 0
    blocks_read: int = 0
    blocks_new: int = 0
    blocks_dedup: int = 0
    blocks_zero: int = 0
    duration_s: float = 0.0
    stats: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "point": self.point.point_id,
            "parent": self.point.parent,
            "source": self.point.source,
            "size": self.point.image.size if self.point.image else 0,
            "bytes_read": self.bytes_read,
            "bytes_new": self.bytes_new,
            "bytes_stored": self.bytes_stored,
            "blocks_read": self.blocks_read,
            "blocks_new": self.blocks_new,
            "blocks_dedup": self.blocks_dedup,
            "blocks_zero": self.blocks_zero,
            "duration_s": round(self.duration_s, 3),
            "read_mb_s": round(self.bytes_read / self.duration_s / 1e6, 1) if self.duration_s else 0.0,
        }


@dataclass(frozen=True, slots=True)
class _Block:
    index: int
    block_id: bytes | None  # None: all zeros
    new: tuple[Codec, bytearray, int] | None  # (codec, sealed, plaintext length) when not yet stored


def backup_image(
    repo: Repository,
    source: BlockSource,
    *,
    parent: Point | None = None,
    changes: ChangeSet | None = None,
    tags: dict[str, str] | None = None,
    workers: int = 2,
    progress: Progress | None = None,
) -> BackupResult:
    """Back up ``source`` into a new restore point and return it with statistics."""
    started = perf_counter()
    block_size = repo.config.block_size
    if changes is not None and parent is None:
        raise UsageError("a change list needs the parent point it is relative to", hint="add --parent POINT")
    if parent is not None:
        if parent.image is None:
            raise UsageError(f"parent point {parent.point_id} is not a disk image")
        if parent.image.block_size != block_size:
            raise UsageError(f"parent point {parent.point_id} uses another block size")

    with repo.session():
        # The marker is written before the index is read: prune relies on that order.
        index = repo.load_index()
        result = BackupResult(point=_placeholder_point())
        if changes is not None:
            planned, holes = plan_incremental(changes, block_size)
            to_read: Iterable[int] = planned
            base = parent
        else:
            to_read = blocks_touched(source.allocated(), block_size)  # lazy: memory stays flat
            holes = []
            base = None
        with BlockWriter(repo, index) as writer:
            blocks = _run_pipeline(repo, source, index, to_read, workers, result, progress)
            builder = _MapBuilder(repo, index, writer, source.size, base)
            maps = _build_maps(builder, writer, blocks, holes)
            writer.flush()
        result.bytes_stored = writer.stats.bytes_stored
        result.duration_s = perf_counter() - started
        point = Point(
            point_id=new_point_id(),
            kind="image",
            time=format_time(repo.clock.now()),
            source=source.source_id,
            host=socket.gethostname(),
            parent=parent.point_id if parent else None,
            tags=dict(tags or {}),
            image=ImageMap(size=source.size, block_size=block_size, map_span=MAP_SPAN, maps=maps),
            stats={
                "bytes_read": result.bytes_read,
                "bytes_new": result.bytes_new,
                "bytes_stored": result.bytes_stored,
                "duration_s": round(result.duration_s, 3),
            },
        )
        repo.save_point(point)
        result.point = point
        return result


def _placeholder_point() -> Point:
    return Point(point_id="", kind="image", time="", source="", host="")


def _run_pipeline(
    repo: Repository,
    source: BlockSource,
    index: Index,
    to_read: Iterable[int],
    workers: int,
    result: BackupResult,
    progress: Progress | None,
) -> Iterator[_Block]:
    """Yield processed blocks in disk order; new blocks are written as they are consumed."""
    key = repo.key
    level = repo.config.zstd_level
    block_size = repo.config.block_size
    size = source.size
    zeros = bytes(block_size)
    dedup = Deduper(index)

    def process(block: int) -> _Block:
        offset = block * block_size
        length = min(block_size, size - offset)
        data = source.read(offset, length)
        if len(data) != length:
            raise SourceError(f"short read from {source.source_id} at offset {offset}: {len(data)} of {length} bytes")
        if data == zeros if length == block_size else data == bytes(length):
            return _Block(block, None, None)
        block_id = key.block_id(data)
        if not dedup.claim(block_id):
            return _Block(block, block_id, None)
        codec, body = compress(data, level)
        sealed = seal_block(key, ObjectType.DATA_BLOCK, codec, block_id, body)
        return _Block(block, block_id, (codec, sealed, length))

    def consume(item: _Block) -> _Block:
        length = min(block_size, size - item.index * block_size)
        result.blocks_read += 1
        result.bytes_read += length
        if item.block_id is None:
            result.blocks_zero += 1
        elif item.new is None:
            result.blocks_dedup += 1
        else:
            result.blocks_new += 1
            result.bytes_new += item.new[2]
        if progress is not None:
            progress(length)
        return item

    def ordered() -> Iterator[_Block]:
        limit = 2 * workers + 2
        with ThreadPoolExecutor(workers, thread_name_prefix="backup") as pool:
            inflight: deque[Future[_Block]] = deque()
            try:
                for block in to_read:
                    inflight.append(pool.submit(process, block))
                    if len(inflight) >= limit:
                        yield consume(inflight.popleft().result())
                while inflight:
                    yield consume(inflight.popleft().result())
            finally:
                for pending in inflight:
                    pending.cancel()

    return ordered()


class _MapBuilder:
    """Turns the ordered block stream into one map per span, storing maps as MAP blocks."""

    def __init__(self, repo: Repository, index: Index, writer: BlockWriter, size: int, base: Point | None) -> None:
        self._repo = repo
        self._index = index
        self._writer = writer
        self._base = base
        block_size = repo.config.block_size
        self._block_count = -(-size // block_size)
        self._base_maps: list[bytes | None] = []
        self._base_blocks = 0
        if base is not None and base.image is not None:
            self._base_maps = base.image.maps
            self._base_blocks = -(-base.image.size // base.image.block_size)

    @property
    def span_count(self) -> int:
        return -(-self._block_count // MAP_SPAN)

    def build(self, span: int, updates: dict[int, bytes | None]) -> bytes | None:
        """The map id of ``span`` after applying ``updates`` (block index -> id, None = hole)."""
        base_id = self._base_maps[span] if span < len(self._base_maps) else None
        first = span * MAP_SPAN
        limit = self._block_count - first
        shrunk = self._base_blocks > self._block_count and first + MAP_SPAN > self._block_count
        if self._base is not None and not updates and not shrunk:
            return base_id  # unchanged span: the parent's map still describes it
        entries = self._load(base_id) if base_id is not None else {}
        for block, block_id in updates.items():
            if block_id is None:
                entries.pop(block - first, None)
            else:
                entries[block - first] = block_id
        entries = {i: b for i, b in entries.items() if i < limit}
        return self._store(encode_map(entries)) if entries else None

    def _load(self, map_id: bytes) -> dict[int, bytes]:
        location = self._index.get(map_id)
        if location is None:
            parent = self._base.point_id if self._base else "?"
            raise IntegrityError(
                f"block map {map_id.hex()[:16]} of parent point {parent} is missing",
                hint="run `bulwark verify`",
            )
        return decode_map(self._repo.read_block(location), MAP_SPAN)

    def _store(self, payload: bytes) -> bytes:
        key = self._repo.key
        map_id = key.block_id(payload)
        if not self._writer.has(map_id):
            codec, body = compress(payload, self._repo.config.zstd_level)
            sealed = seal_block(key, ObjectType.MAP_BLOCK, codec, map_id, body)
            self._writer.add(map_id, ObjectType.MAP_BLOCK, codec, sealed, len(payload))
        return map_id


def _build_maps(
    builder: _MapBuilder, writer: BlockWriter, blocks: Iterable[_Block], holes: list[int]
) -> list[bytes | None]:
    """Consume the pipeline, store new blocks, and return one map id per span."""
    updates: list[dict[int, bytes | None]] = [{} for _ in range(builder.span_count)]
    maps: list[bytes | None] = []
    hole_iter = iter(holes)

    def close_spans_before(span: int) -> None:
        while len(maps) < span:
            maps.append(builder.build(len(maps), updates[len(maps)]))
            updates[len(maps) - 1] = {}

    next_hole = next(hole_iter, None)
    for item in blocks:
        span = item.index // MAP_SPAN
        while next_hole is not None and next_hole // MAP_SPAN <= span:
            updates[next_hole // MAP_SPAN][next_hole] = None
            next_hole = next(hole_iter, None)
        close_spans_before(span)
        if item.new is not None and item.block_id is not None:
            codec, sealed, length = item.new
            writer.add(item.block_id, ObjectType.DATA_BLOCK, codec, sealed, length)
        updates[span][item.index] = item.block_id
    while next_hole is not None:
        updates[next_hole // MAP_SPAN][next_hole] = None
        next_hole = next(hole_iter, None)
    close_spans_before(builder.span_count)
    return maps
