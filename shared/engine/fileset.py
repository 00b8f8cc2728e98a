"""File-set points: the members of an archive (a BACPAC's zip members) stored and read back.

    member stream -> FastCDC chunks -> keyed hash -> dedup -> zstd -> AES-256-GCM -> pack
                                    \\-> chunk lists (FILE_LIST blocks) -> manifest

Each member is read as a stream and cut into content-defined chunks (shared.core.chunking), so a
table whose rows did not change produces the same chunks, and the same chunk lists, as last time
and costs nothing but its list ids in the new manifest. Chunking runs on the calling thread
(pyfastcdc cuts without the GIL); hashing, compression and encryption run on a thread pool with
at most ``2 * workers + 2`` chunks in flight, so memory does not grow with the member.

Restoring streams each member's chunks, in order, into a :class:`FileSetSink` (the BACPAC
rebuilder in shared.sources.bacpac), fetching and decrypting up to ``2 * workers + 2`` chunks
ahead on a thread pool. Chunks are authenticated before they are handed over.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

from shared.core.chunking import DEFAULT_CHUNKER, ChunkerSpec, Readable, chunk_stream
from shared.core.clock import format_time
from shared.core.compression import Codec, compress
from shared.core.envelope import ObjectType
from shared.core.errors import IntegrityError, SourceError
from shared.repo import walk
from shared.repo.dedup import Deduper
from shared.repo.pack import seal_block
from shared.repo.point import LIST_SPAN, Attr, ChunkRef, FileMember, FileSet, Point, encode_chunk_list, new_point_id
from shared.repo.repository import Repository
from shared.repo.writer import BlockWriter

__all__ = [
    "FileSetBackupResult",
    "FileSetRestoreResult",
    "FileSetSink",
    "FileSetSource",
    "MemberSink",
    "SourceMember",
    "backup_fileset",
    "restore_fileset",
]

Progress = Callable[[int], None]
"""Called with the number of member bytes just processed."""


class SourceMember(Protocol):
    """A member as its source describes it, before it is stored."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def attrs(self) -> dict[str, Attr]:
        """Container-specific metadata needed to rebuild the member."""


class FileSetSource(Protocol):
    """What ``backup_fileset`` reads: members in order, each opened as a stream once.

    Streams raise SourceError when their data cannot be read (a damaged archive).
    """

    @property
    def source_id(self) -> str: ...

    @property
    def container(self) -> str:
        """How the members are packaged ("zip")."""

    @property
    def attrs(self) -> dict[str, Attr]:
        """Container-level metadata needed to rebuild it."""

    def members(self) -> Sequence[SourceMember]: ...

    def open(self, name: str) -> AbstractContextManager[Readable]: ...


class MemberSink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class FileSetSink(Protocol):
    """What ``restore_fileset`` writes to: one member at a time, in order."""

    def member(self, member: FileMember) -> AbstractContextManager[MemberSink]:
        """Open the member for writing; leaving the context completes it (and may check it)."""


@dataclass
class FileSetBackupResult:
    point: Point
    members: int = 0
    bytes_read: int = 0
    bytes_new: int = 0
    bytes_stored: int = 0
    chunks: int = 0
    chunks_new: int = 0
    chunks_dedup: int = 0
    lists_new: int = 0
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "point": self.point.point_id,
            "kind": self.point.kind,
            "source": self.point.source,
            "members": self.members,
            "size": self.bytes_read,
            "bytes_read": self.bytes_read,
            "bytes_new": self.bytes_new,
            "bytes_stored": self.bytes_stored,
            "chunks": self.chunks,
            "chunks_new": self.chunks_new,
            "chunks_dedup": self.chunks_dedup,
            "lists_new": self.lists_new,
            "duration_s": round(self.duration_s, 3),
            "read_mb_s": round(self.bytes_read / self.duration_s / 1e6, 1) if self.duration_s else 0.0,
        }


@dataclass
class FileSetRestoreResult:
    point_id: str
    members: int
    bytes_written: int
    chunks: int
    duration_s: float

    def to_dict(self) -> dict[str, object]:
        return {
            "point": self.point_id,
            "members": self.members,
            "bytes_written": self.bytes_written,
            "chunks": self.chunks,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True, slots=True)
class _Chunk:
    block_id: bytes
    length: int
    new: tuple[Codec, bytearray] | None  # (codec, sealed) when this thread claimed it


class _MemberStorer:
    """Stores members' chunks and chunk lists through one BlockWriter, in member order."""

    def __init__(
        self,
        repo: Repository,
        writer: BlockWriter,
        pool: ThreadPoolExecutor,
        claims: Deduper,
        workers: int,
        result: FileSetBackupResult,
        progress: Progress | None,
    ) -> None:
        self._repo = repo
        self._writer = writer
        self._pool = pool
        self._claims = claims
        self._limit = 2 * workers + 2
        self._result = result
        self._progress = progress
        self._level = repo.config.zstd_level

    def _process(self, data: bytes) -> _Chunk:
        key = self._repo.key
        block_id = key.block_id(data)
        if not self._claims.claim(block_id):
            return _Chunk(block_id, len(data), None)
        codec, body = compress(data, self._level)
        return _Chunk(block_id, len(data), (codec, seal_block(key, ObjectType.FILE_BLOCK, codec, block_id, body)))

    def store(self, stream: Readable, spec: ChunkerSpec) -> tuple[list[bytes], int]:
        """The member's chunk-list ids and its length in bytes."""
        lists: list[bytes] = []
        entries: list[ChunkRef] = []
        size = 0

        def consume(chunk: _Chunk) -> None:
            nonlocal size, entries
            self._result.chunks += 1
            if chunk.new is None:
                self._result.chunks_dedup += 1
            else:
                codec, sealed = chunk.new
                self._writer.add(chunk.block_id, ObjectType.FILE_BLOCK, codec, sealed, chunk.length)
                self._result.chunks_new += 1
                self._result.bytes_new += chunk.length
            entries.append((chunk.block_id, chunk.length))
            size += chunk.length
            if len(entries) == LIST_SPAN:
                lists.append(self._store_list(entries))
                entries = []
            if self._progress is not None:
                self._progress(chunk.length)

        inflight: deque[Future[_Chunk]] = deque()
        try:
            for view in chunk_stream(stream, spec):
                # The view aliases the chunker's buffer, which the next step overwrites.
                inflight.append(self._pool.submit(self._process, bytes(view)))
                if len(inflight) >= self._limit:
                    consume(inflight.popleft().result())
            while inflight:
                consume(inflight.popleft().result())
        finally:
            for pending in inflight:
                pending.cancel()
        if entries:
            lists.append(self._store_list(entries))
        return lists, size

    def _store_list(self, entries: list[ChunkRef]) -> bytes:
        payload = encode_chunk_list(entries)
        key = self._repo.key
        list_id = key.block_id(payload)
        if not self._writer.has(list_id):
            codec, body = compress(payload, self._level)
            sealed = seal_block(key, ObjectType.FILE_LIST, codec, list_id, body)
            self._writer.add(list_id, ObjectType.FILE_LIST, codec, sealed, len(payload))
            self._result.lists_new += 1
        return list_id


def backup_fileset(
    repo: Repository,
    source: FileSetSource,
    *,
    kind: str,
    tags: dict[str, str] | None = None,
    workers: int = 2,
    progress: Progress | None = None,
    chunker: ChunkerSpec = DEFAULT_CHUNKER,
) -> FileSetBackupResult:
    """Store every member of ``source`` and save a point of ``kind`` naming them."""
    started = perf_counter()
    result = FileSetBackupResult(point=Point(point_id="", kind=kind, time="", source="", host=""))
    with repo.session():
        # The marker is written before the index is read: prune relies on that order.
        index = repo.load_index()
        members: list[FileMember] = []
        with (
            BlockWriter(repo, index) as writer,
            ThreadPoolExecutor(workers, thread_name_prefix="fileset") as pool,
        ):
            storer = _MemberStorer(repo, writer, pool, Deduper(index), workers, result, progress)
            for member in source.members():
                with source.open(member.name) as stream:
                    lists, size = storer.store(stream, chunker)
                if size != member.size:
                    raise SourceError(
                        f"{source.source_id}: member {member.name} holds {size} bytes, its header says {member.size}",
                        hint="the file changed while it was read, or it is damaged; back it up again",
                    )
                members.append(FileMember(member.name, size, lists, dict(member.attrs)))
                result.members += 1
                result.bytes_read += size
            writer.flush()
        result.bytes_stored = writer.stats.bytes_stored
        result.duration_s = perf_counter() - started
        point = Point(
            point_id=new_point_id(),
            kind=kind,
            time=format_time(repo.clock.now()),
            source=source.source_id,
            host=socket.gethostname(),
            tags=dict(tags or {}),
            stats={
                "bytes_read": result.bytes_read,
                "bytes_new": result.bytes_new,
                "bytes_stored": result.bytes_stored,
                "duration_s": round(result.duration_s, 3),
            },
            files=FileSet(
                container=source.container,
                chunker=chunker.to_dict(),
                members=members,
                attrs=dict(source.attrs),
            ),
        )
        repo.save_point(point)
        result.point = point
        return result


def restore_fileset(
    repo: Repository,
    point: Point,
    sink: FileSetSink,
    *,
    workers: int = 2,
    progress: Progress | None = None,
) -> FileSetRestoreResult:
    """Write every member of ``point`` into ``sink``, in order, each chunk authenticated first.

    Raises IntegrityError naming the damaged or missing block; what the sink already received
    is the sink's to discard.
    """
    started = perf_counter()
    files = walk.files_of(point)
    index = repo.load_index()
    limit = 2 * workers + 2

    def refs() -> Iterator[tuple[int, bytes, int]]:
        for number, member in enumerate(files.members):
            for chunk_id, length in walk.member_chunks(repo, index, point, member):
                yield number, chunk_id, length

    def fetch(number: int, chunk_id: bytes, length: int) -> bytes:
        location = index.get(chunk_id)
        name = files.members[number].name
        if location is None:
            raise IntegrityError(
                f"point {point.point_id}: chunk {chunk_id.hex()[:16]} of {name} is missing from the index",
                hint="run `bulwark verify` to see every affected restore point",
            )
        data = repo.read_block(location)
        if len(data) != length:
            raise IntegrityError(
                f"point {point.point_id}: chunk {chunk_id.hex()[:16]} of {name} has {len(data)} bytes, "
                f"its chunk list says {length}",
                hint="run `bulwark verify`",
            )
        return data

    written = chunks = 0
    pending = refs()
    with ThreadPoolExecutor(workers, thread_name_prefix="fileset-restore") as pool:
        inflight: deque[tuple[int, Future[bytes]]] = deque()

        def fill() -> None:
            while len(inflight) < limit:
                ref = next(pending, None)
                if ref is None:
                    return
                inflight.append((ref[0], pool.submit(fetch, *ref)))

        try:
            for number, member in enumerate(files.members):
                member_written = 0
                with sink.member(member) as out:
                    while True:
                        fill()
                        # Refs come in member order: the head belongs to a later member once
                        # this one is complete (an empty member has no chunk at all).
                        if not inflight or inflight[0][0] != number:
                            break
                        data = inflight.popleft()[1].result()
                        out.write(data)
                        member_written += len(data)
                        chunks += 1
                        if progress is not None:
                            progress(len(data))
                    if member_written != member.size:
                        raise IntegrityError(
                            f"point {point.point_id}: {member.name} restored to {member_written} bytes, "
                            f"the manifest says {member.size}",
                            hint="run `bulwark verify`",
                        )
                written += member_written
        finally:
            for _, future in inflight:
                future.cancel()
    return FileSetRestoreResult(point.point_id, len(files.members), written, chunks, perf_counter() - started)
