"""Appending blocks to a repository: packs first, then the index that names them.

One BlockWriter serves one writing session and is driven from a single thread (the pipeline's
ordering thread); the CPU-heavy work (hash, compress, encrypt) happens before ``add``. Storage
I/O runs on lanes (one thread each), so computing the next blocks overlaps writing the previous
ones. Each pack is written and committed on one lane, in order; consecutive packs take turns
across the lanes, so one pack's commit (an fsync, or Azure's Put Block List) overlaps the next
pack's writes. An index object is stored only after every pack it names is committed. The bytes
waiting on the lanes are bounded, which bounds memory.
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
# Sealed bytes that may wait for the lanes before ``add`` blocks.
_MAX_QUEUED = 16 << 20
# Packs in flight at once: two let one pack's round trips and commit overlap the next pack's
# writes (scripts/bench_lanes.py measures it); more hold more memory for little more.
PACK_LANES = 2


@dataclass
class WriterStats:
    packs: int = 0
    blocks: int = 0
    bytes_stored: int = 0
    index_objects: int = 0


class _Lanes:
    """Single-thread I/O lanes sharing one byte budget; the first failure on any lane stops them all."""

    def __init__(self, count: int) -> None:
        self._pools = [ThreadPoolExecutor(1, thread_name_prefix=f"pack-io-{n}") for n in range(count)]
        self._futures: deque[Future[None]] = deque()
        self._queued = 0
        self._room = threading.Condition()
        self._failed: BaseException | None = None

    def submit(self, lane: int, action: Callable[[], None], size: int = 0) -> Future[None]:
        self.raise_failure()
        with self._room:
            while self._queued and self._queued + size > _MAX_QUEUED and self._failed is None:
                self._room.wait()
            self._queued += size
        future = self._pools[lane].submit(self._run, action, size)
        self._futures.append(future)
        while self._futures and self._futures[0].done():
            self._futures.popleft().result()
        return future

    def _run(self, action: Callable[[], None], size: int) -> None:
        try:
            if self._failed is None:
                action()
        except BaseException as exc:
            self._failed = self._failed or exc
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
            future = self._futures.popleft()
            if self._failed is None:
                future.result()
            else:
                future.exception()  # wait for it; the first failure is the one reported
        self.raise_failure()

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)


class _PackUpload:
    """One pack's sink; touched only on its lane, or after the lanes are closed."""

    def __init__(self, pack_id: str, lane: int) -> None:
        self.pack_id = pack_id
        self.name = pack_key(pack_id)
        self.lane = lane
        self.sink: BlobWriter | None = None
        self.committed: Future[None] | None = None

    @property
    def finished(self) -> bool:
        return self.committed is not None and self.committed.done() and self.sink is None


class BlockWriter:
    """Use as a context manager: on error, every unfinished pack is abandoned (never half-published)."""

    def __init__(self, repo: Repository, index: Index) -> None:
        self._repo = repo
        self._index = index
        # Lanes 0..PACK_LANES-1 carry packs; the last one carries index objects.
        self._pack_lanes = PACK_LANES
        self._lanes = _Lanes(self._pack_lanes + 1)
        self._index_lane = self._pack_lanes
        self._layout: PackLayout | None = None
        self._upload: _PackUpload | None = None
        self._uploads: list[_PackUpload] = []
        self._unindexed: list[tuple[_PackUpload, list[PackEntry]]] = []
        self._pending: set[bytes] = set()
        self.stats = WriterStats()

    def __enter__(self) -> BlockWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._lanes.close()  # waits for queued I/O; after a failure, queued work is skipped
        for upload in self._uploads:  # unfinished packs are discarded, never published
            if upload.sink is not None:
                sink, upload.sink = upload.sink, None
                sink.abort()
        if exc is None:
            self._lanes.raise_failure()

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
            self._upload = self._start_upload(layout.pack_id)
        upload = self._upload
        assert upload is not None
        layout.add(block_id, kind, codec, len(sealed), raw_length)
        self._pending.add(block_id)
        self.stats.blocks += 1
        self._lanes.submit(upload.lane, lambda: self._write(upload, sealed), len(sealed))

    def _start_upload(self, pack_id: str) -> _PackUpload:
        upload = _PackUpload(pack_id, self.stats.packs % self._pack_lanes)
        # Forget packs already committed; the rest are aborted if the session fails.
        self._uploads = [u for u in self._uploads if not u.finished]
        self._uploads.append(upload)
        self._lanes.submit(upload.lane, lambda: self._open(upload))
        return upload

    def _open(self, upload: _PackUpload) -> None:
        upload.sink = self._repo.store.open_writer(upload.name)

    @staticmethod
    def _write(upload: _PackUpload, data: bytes | bytearray) -> None:
        assert upload.sink is not None
        upload.sink.write(data)

    @staticmethod
    def _commit(upload: _PackUpload) -> None:
        assert upload.sink is not None
        upload.sink.commit()
        upload.sink = None

    def _seal_pack(self) -> None:
        layout, upload = self._layout, self._upload
        self._layout = self._upload = None
        if layout is None or upload is None or layout.is_empty:
            return
        trailer = layout.trailer(self._repo.key)
        self._lanes.submit(upload.lane, lambda: self._write(upload, trailer), len(trailer))
        upload.committed = self._lanes.submit(upload.lane, lambda: self._commit(upload))
        self.stats.packs += 1
        self.stats.bytes_stored += layout.size + len(trailer)
        # The dedup view may learn the blocks now: no index or point can reference them before
        # the pack is committed (index objects wait for it, points for flush).
        self._index.add_pack(layout.pack_id, layout.entries)
        self._pending.clear()
        self._unindexed.append((upload, layout.entries))
        if len(self._unindexed) >= _INDEX_EVERY_PACKS:
            self._write_index()

    def _write_index(self) -> None:
        if not self._unindexed:
            return
        name = new_index_key()
        packs = [(upload.pack_id, entries) for upload, entries in self._unindexed]
        commits = [upload.committed for upload, _ in self._unindexed if upload.committed is not None]
        sealed = seal_object(self._repo.key, ObjectType.INDEX, name, encode_index(packs))
        self._unindexed = []
        self.stats.index_objects += 1

        def store_after_its_packs() -> None:
            for committed in commits:
                committed.result()  # a pack that failed fails its index too
            self._repo.store.put(name, sealed)

        self._lanes.submit(self._index_lane, store_after_its_packs, len(sealed))

    def flush(self) -> None:
        """Store the open pack and index everything stored; returns once all of it is durable."""
        self._seal_pack()
        self._write_index()
        self._lanes.drain()
