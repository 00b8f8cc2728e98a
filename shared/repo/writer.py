"""Appending blocks to a repository: packs first, then the index that names them.

One BlockWriter serves one writing session and is driven from a single thread (the pipeline's
ordering thread); the CPU-heavy work (hash, compress, encrypt) happens before ``add``. Storage
I/O runs on a separate lane (one thread), so computing the next blocks overlaps writing the
previous ones; the lane executes in order, so a pack is always committed before the index
object that names it. The bytes waiting on the lane are bounded, which bounds memory.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

from shared.core.compression import Codec
from shared.core.envelope import ObjectType, seal_object
from shared.repo.index import Index, encode_index, new_index_key
from shared.repo.pack import PackEntry, PackLayout, pack_key
from shared.repo.repository import Repository
from shared.storage.port import BlobWriter

__all__ = ["BlockWriter", "WriterStats"]

# Write an index object after this many packs, so a resumed run re-uses what a killed one stored.
_INDEX_EVERY_PACKS = 8
# Sealed bytes that may wait for the I/O lane before ``add`` blocks.
_MAX_QUEUED = 16 << 20


@dataclass
class WriterStats:
    packs: int = 0
    blocks: int = 0
    bytes_stored: int = 0
    index_objects: int = 0


class _Lane:
    """One I/O thread with a bounded queue of bytes; the first failure stops everything after it."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pack-io")
        self._futures: deque[Future[None]] = deque()
        self._queued = 0
        self._room = threading.Condition()
        self._failed: BaseException | None = None

    def submit(self, action: Callable[[], None], size: int = 0) -> None:
        self.raise_failure()
        with self._room:
            while self._queued and self._queued + size > _MAX_QUEUED and self._failed is None:
                self._room.wait()
            self._queued += size
        self._futures.append(self._pool.submit(self._run, action, size))
        while self._futures and self._futures[0].done():
            self._futures.popleft().result()

    def _run(self, action: Callable[[], None], size: int) -> None:
        try:
            if self._failed is None:
                action()
        except BaseException as exc:
            self._failed = exc
            raise
        finally:
            with self._room:
                self._queued -= size
                self._room.notify_all()

    def raise_failure(self) -> None:
        if self._failed is not None:
            raise self._failed

    def drain(self) -> None:
        while self._futures:
            self._futures.popleft().result()
        self.raise_failure()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class BlockWriter:
    """Use as a context manager: on error, the open pack is abandoned (never half-published)."""

    def __init__(self, repo: Repository, index: Index) -> None:
        self._repo = repo
        self._index = index
        self._lane = _Lane()
        self._layout: PackLayout | None = None
        self._sink: BlobWriter | None = None  # touched only on the lane
        self._unindexed: list[tuple[str, list[PackEntry]]] = []
        self._pending: set[bytes] = set()
        self.stats = WriterStats()

    def __enter__(self) -> BlockWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._lane.close()  # waits for queued I/O; after a failure, queued work is skipped
        self._abort_sink()  # an unfinished pack is discarded, never published
        if exc is None:
            self._lane.raise_failure()

    def has(self, block_id: bytes) -> bool:
        """Whether the repository, or this writer's open pack, already holds the block."""
        return block_id in self._index or block_id in self._pending

    def add(self, block_id: bytes, kind: ObjectType, codec: Codec, sealed: bytes | bytearray, raw_length: int) -> None:
        layout = self._layout
        if layout is not None and not layout.fits(len(sealed)):
            self._seal_pack()
            layout = None
        if layout is None:
            layout = self._layout = PackLayout(self._repo.config.pack_target)
            name = pack_key(layout.pack_id)
            self._lane.submit(lambda: self._open_sink(name))
        layout.add(block_id, kind, codec, len(sealed), raw_length)
        self._pending.add(block_id)
        self.stats.blocks += 1
        self._lane.submit(lambda: self._write(sealed), len(sealed))

    def _open_sink(self, name: str) -> None:
        self._sink = self._repo.store.open_writer(name)

    def _write(self, data: bytes | bytearray) -> None:
        assert self._sink is not None
        self._sink.write(data)

    def _commit_sink(self) -> None:
        assert self._sink is not None
        sink, self._sink = self._sink, None
        sink.commit()

    def _abort_sink(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.abort()

    def _seal_pack(self) -> None:
        layout, self._layout = self._layout, None
        if layout is None or layout.is_empty:
            return
        trailer = layout.trailer(self._repo.key)
        self._lane.submit(lambda: self._write(trailer), len(trailer))
        self._lane.submit(self._commit_sink)
        self.stats.packs += 1
        self.stats.bytes_stored += layout.size + len(trailer)
        # The dedup view may learn the blocks now: the lane stores the pack before any index
        # or point that could reference them.
        self._index.add_pack(layout.pack_id, layout.entries)
        self._pending.clear()
        self._unindexed.append((layout.pack_id, layout.entries))
        if len(self._unindexed) >= _INDEX_EVERY_PACKS:
            self._write_index()

    def _write_index(self) -> None:
        if not self._unindexed:
            return
        name = new_index_key()
        sealed = seal_object(self._repo.key, ObjectType.INDEX, name, encode_index(self._unindexed))
        self._unindexed = []
        self.stats.index_objects += 1
        self._lane.submit(lambda: self._repo.store.put(name, sealed), len(sealed))

    def flush(self) -> None:
        """Store the open pack and index everything stored; returns once all of it is durable."""
        self._seal_pack()
        self._write_index()
        self._lane.drain()
