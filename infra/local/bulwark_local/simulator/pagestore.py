"""Copy-on-write page storage for simulated page blobs (managed disks, snapshots, VHD blobs).

Model
- A blob is ``size`` bytes of 512-byte pages (sectors), stored in fixed chunks of ``CHUNK_SIZE``.
- A chunk holds a content key (its bytes live once in ``data/``, named by a hash; ``None`` means all
  zeros, so zero and never-written chunks cost no file) and *runs*: for each written sector range,
  the generation of the write that last touched it and whether the page is valid (written) or
  cleared. Generations are global and increase with every write or clear.
- A snapshot is a copy of the chunk table. Chunks are immutable values, so the copy shares every
  byte with its parent; a later write to the parent makes new chunks and never touches the copy.
- Page ranges are the valid runs. The diff between a blob and an older copy of the same lineage is
  every sector whose generation differs: still valid means a page range, cleared means a clear
  range. This is how Azure defines it: pages written or cleared since the previous snapshot,
  regardless of whether the bytes happen to be equal.

Persistence: one append-only journal per blob in ``maps/`` (a header line, then one line per chunk
change), compacted when it grows, replayed at start; chunk bytes in ``data/`` (written once, removed
when no blob refers to them).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SECTOR = 512
CHUNK_SIZE = 1 << 20
SECTORS_PER_CHUNK = CHUNK_SIZE // SECTOR
_ZERO_CHUNK = bytes(CHUNK_SIZE)

# (first sector, end sector exclusive, generation, valid) within one chunk.
Run = tuple[int, int, int, bool]


class PageStoreError(Exception):
    """A request the store cannot serve (unknown blob, misaligned or out-of-range I/O)."""


class BlobMissingError(PageStoreError):
    pass


@dataclass(frozen=True)
class Chunk:
    data: str | None
    runs: tuple[Run, ...]


@dataclass(frozen=True)
class BlobInfo:
    blob_id: str
    size: int
    epoch: int
    lineage: str


@dataclass
class _Blob:
    info: BlobInfo
    chunks: dict[int, Chunk]
    journal: IO[str] | None = None
    journal_lines: int = 0
    last_gen: int = 0


class PageStore:
    """Thread-safe. Reads copy the chunk references under the lock and read the immutable files after."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._data_dir = root / "data"
        self._map_dir = root / "maps"
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._map_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._blobs: dict[str, _Blob] = {}
        self._refs: Counter[str] = Counter()
        self._gen = 1
        self._load()

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            for blob in self._blobs.values():
                if blob.journal is not None:
                    blob.journal.close()
                    blob.journal = None

    def create(self, blob_id: str, size: int, *, lineage: str) -> BlobInfo:
        _check_size(size)
        with self._lock:
            if blob_id in self._blobs:
                raise PageStoreError(f"blob {blob_id} exists")
            info = BlobInfo(blob_id, size, self._next_gen(), lineage)
            self._blobs[blob_id] = _Blob(info, {})
            self._rewrite(blob_id)
            return info

    def clone(self, source_id: str, blob_id: str, *, lineage: str | None = None) -> BlobInfo:
        """A copy-on-write copy: costs the chunk table, not the data."""
        with self._lock:
            source = self._get(source_id)
            if blob_id in self._blobs:
                raise PageStoreError(f"blob {blob_id} exists")
            info = BlobInfo(blob_id, source.info.size, self._next_gen(), lineage or source.info.lineage)
            chunks = dict(source.chunks)
            for chunk in chunks.values():
                if chunk.data is not None:
                    self._refs[chunk.data] += 1
            self._blobs[blob_id] = _Blob(info, chunks)
            self._rewrite(blob_id)
            return info

    def delete(self, blob_id: str) -> None:
        with self._lock:
            blob = self._blobs.pop(blob_id, None)
            if blob is None:
                return
            if blob.journal is not None:
                blob.journal.close()
            self._map_path(blob_id).unlink(missing_ok=True)
            for chunk in blob.chunks.values():
                self._release(chunk.data)

    def exists(self, blob_id: str) -> bool:
        with self._lock:
            return blob_id in self._blobs

    def blob_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._blobs)

    def info(self, blob_id: str) -> BlobInfo:
        with self._lock:
            return self._get(blob_id).info

    def resize(self, blob_id: str, size: int) -> None:
        """Grow (or shrink) the blob; pages beyond a shrunk end are dropped."""
        _check_size(size)
        with self._lock:
            blob = self._get(blob_id)
            if size < blob.info.size:
                self.clear(blob_id, size, blob.info.size - size)
                last = (size + CHUNK_SIZE - 1) // CHUNK_SIZE
                for index in [i for i in blob.chunks if i >= last]:
                    self._release(blob.chunks.pop(index).data)
            blob.info = BlobInfo(blob_id, size, blob.info.epoch, blob.info.lineage)
            self._rewrite(blob_id)

    # -- writes ------------------------------------------------------------------------------

    def write(self, blob_id: str, offset: int, data: bytes) -> None:
        """Write pages (offset and length multiples of 512) as one generation."""
        self._apply(blob_id, offset, len(data), data)

    def clear(self, blob_id: str, offset: int, length: int) -> None:
        """Clear pages: they read back as zeros and stop being page ranges."""
        self._apply(blob_id, offset, length, None)

    def _apply(self, blob_id: str, offset: int, length: int, data: bytes | None) -> None:
        _check_aligned(offset, length)
        if length == 0:
            return
        with self._lock:
            blob = self._get(blob_id)
            if offset + length > blob.info.size:
                raise PageStoreError(f"range {offset}+{length} is beyond the blob end {blob.info.size}")
            gen = self._next_gen()
            blob.last_gen = gen
            position = offset
            end = offset + length
            while position < end:
                index = position // CHUNK_SIZE
                chunk_start = index * CHUNK_SIZE
                piece_end = min(end, chunk_start + CHUNK_SIZE)
                old = blob.chunks.get(index)
                lo, hi = position - chunk_start, piece_end - chunk_start
                if data is None and old is None:
                    position = piece_end  # never written: already clear (a trim of a huge disk stays cheap)
                    continue
                if lo == 0 and hi == CHUNK_SIZE:
                    content = _ZERO_CHUNK if data is None else data[position - offset : piece_end - offset]
                else:
                    buffer = bytearray(self._chunk_bytes(old))
                    if data is None:
                        buffer[lo:hi] = bytes(hi - lo)
                    else:
                        buffer[lo:hi] = data[position - offset : piece_end - offset]
                    content = bytes(buffer)
                runs = _overlay(old.runs if old else (), lo // SECTOR, hi // SECTOR, gen, data is not None)
                key = self._store(content)
                self._replace(blob, index, Chunk(key, runs))
                position = piece_end
            self._maybe_compact(blob_id)

    # -- reads -------------------------------------------------------------------------------

    def read(self, blob_id: str, offset: int, length: int) -> bytes:
        return b"".join(self.iter_read(blob_id, offset, length))

    def iter_read(self, blob_id: str, offset: int, length: int) -> Iterator[bytes]:
        """Bytes of ``[offset, offset+length)`` in pieces of at most one chunk (unwritten = zeros)."""
        with self._lock:
            blob = self._get(blob_id)
            if offset < 0 or length < 0 or offset + length > blob.info.size:
                raise PageStoreError(f"range {offset}+{length} is outside the blob (size {blob.info.size})")
            first, last = offset // CHUNK_SIZE, (offset + length - 1) // CHUNK_SIZE
            refs = {i: blob.chunks[i].data for i in range(first, last + 1) if i in blob.chunks}
        return self._iter_pieces(refs, offset, length)

    def _iter_pieces(self, refs: dict[int, str | None], offset: int, length: int) -> Iterator[bytes]:
        position, end = offset, offset + length
        while position < end:
            index = position // CHUNK_SIZE
            chunk_start = index * CHUNK_SIZE
            piece_end = min(end, chunk_start + CHUNK_SIZE)
            key = refs.get(index)
            if key is None:
                yield _ZERO_CHUNK[: piece_end - position]
            else:
                with open(self._data_path(key), "rb") as handle:
                    handle.seek(position - chunk_start)
                    yield handle.read(piece_end - position)
            position = piece_end

    def ranges(self, blob_id: str, offset: int = 0, length: int | None = None) -> list[tuple[int, int]]:
        """Valid (written, not cleared) byte ranges ``(start, end_exclusive)``, merged, in order."""
        with self._lock:
            blob = self._get(blob_id)
            lo, hi = _window(blob.info.size, offset, length)
            out: list[tuple[int, int]] = []
            for index in sorted(i for i in blob.chunks if lo // CHUNK_SIZE <= i <= (hi - 1) // CHUNK_SIZE):
                base = index * CHUNK_SIZE
                for start, end, _gen, valid in blob.chunks[index].runs:
                    if valid:
                        _append(out, max(lo, base + start * SECTOR), min(hi, base + end * SECTOR))
            return out

    def diff(
        self, blob_id: str, previous_id: str, offset: int = 0, length: int | None = None
    ) -> list[tuple[int, int, bool]]:
        """Ranges ``(start, end_exclusive, cleared)`` written or cleared since ``previous_id``."""
        with self._lock:
            blob = self._get(blob_id)
            previous = self._get(previous_id)
            lo, hi = _window(blob.info.size, offset, length)
            indexes = set(blob.chunks) | set(previous.chunks)
            out: list[tuple[int, int, bool]] = []
            for index in sorted(i for i in indexes if lo // CHUNK_SIZE <= i <= (hi - 1) // CHUNK_SIZE):
                new, old = blob.chunks.get(index), previous.chunks.get(index)
                if new is old:
                    continue
                base = index * CHUNK_SIZE
                for start, end, valid in _changed(old.runs if old else (), new.runs if new else ()):
                    a, b = max(lo, base + start * SECTOR), min(hi, base + end * SECTOR)
                    if a >= b:
                        continue
                    if out and out[-1][1] == a and out[-1][2] == (not valid):
                        out[-1] = (out[-1][0], b, not valid)
                    else:
                        out.append((a, b, not valid))
            return out

    def etag(self, blob_id: str) -> str:
        """Changes with every write to the blob (so conditional reads see concurrent writes)."""
        with self._lock:
            blob = self._get(blob_id)
            return f'"0x{max(blob.info.epoch, blob.last_gen):X}"'

    def stored_bytes(self) -> int:
        """Bytes held in chunk files (for tests and diagnostics: what copy-on-write costs)."""
        with self._lock:
            return len(self._refs) * CHUNK_SIZE

    # -- internals ---------------------------------------------------------------------------

    def _get(self, blob_id: str) -> _Blob:
        blob = self._blobs.get(blob_id)
        if blob is None:
            raise BlobMissingError(f"no blob {blob_id}")
        return blob

    def _next_gen(self) -> int:
        self._gen += 1
        return self._gen

    def _chunk_bytes(self, chunk: Chunk | None) -> bytes:
        if chunk is None or chunk.data is None:
            return _ZERO_CHUNK
        return self._data_path(chunk.data).read_bytes()

    def _store(self, content: bytes) -> str | None:
        if content == _ZERO_CHUNK:
            return None
        key = hashlib.blake2b(content, digest_size=20).hexdigest()
        path = self._data_path(key)
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            temporary = path.with_suffix(f".{threading.get_ident()}.tmp")
            temporary.write_bytes(content)
            os.replace(temporary, path)
        return key

    def _replace(self, blob: _Blob, index: int, chunk: Chunk) -> None:
        old = blob.chunks.get(index)
        if chunk.data is not None:
            self._refs[chunk.data] += 1
        blob.chunks[index] = chunk
        if old is not None:
            self._release(old.data)
        self._journal(blob, [index, chunk.data, [list(r) for r in chunk.runs]])

    def _release(self, key: str | None) -> None:
        if key is None:
            return
        self._refs[key] -= 1
        if self._refs[key] <= 0:
            del self._refs[key]
            self._data_path(key).unlink(missing_ok=True)

    def _data_path(self, key: str) -> Path:
        return self._data_dir / key[:2] / key

    def _map_path(self, blob_id: str) -> Path:
        return self._map_dir / (hashlib.sha1(blob_id.encode()).hexdigest() + ".jsonl")

    def _journal(self, blob: _Blob, entry: object) -> None:
        if blob.journal is None:
            blob.journal = open(self._map_path(blob.info.blob_id), "a", encoding="utf-8")  # noqa: SIM115
        blob.journal.write(json.dumps(entry, separators=(",", ":")) + "\n")
        blob.journal.flush()
        blob.journal_lines += 1

    def _maybe_compact(self, blob_id: str) -> None:
        blob = self._blobs[blob_id]
        if blob.journal_lines > 2 * len(blob.chunks) + 256:
            self._rewrite(blob_id)

    def _rewrite(self, blob_id: str) -> None:
        blob = self._blobs[blob_id]
        if blob.journal is not None:
            blob.journal.close()
            blob.journal = None
        path = self._map_path(blob_id)
        temporary = path.with_suffix(".tmp")
        info = blob.info
        with open(temporary, "w", encoding="utf-8") as handle:
            header = {"id": info.blob_id, "size": info.size, "epoch": info.epoch, "lineage": info.lineage}
            handle.write(json.dumps(header) + "\n")
            for index in sorted(blob.chunks):
                chunk = blob.chunks[index]
                line = [index, chunk.data, [list(r) for r in chunk.runs]]
                handle.write(json.dumps(line, separators=(",", ":")) + "\n")
        os.replace(temporary, path)
        blob.journal_lines = len(blob.chunks)

    def _load(self) -> None:
        for path in sorted(self._map_dir.glob("*.jsonl")):
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            if not lines:
                path.unlink()
                continue
            header = json.loads(lines[0])
            info = BlobInfo(header["id"], header["size"], header["epoch"], header["lineage"])
            chunks: dict[int, Chunk] = {}
            for line in lines[1:]:
                try:
                    index, data, runs = json.loads(line)
                except ValueError:
                    break  # a torn last line from a crash: the write it held never finished
                chunks[index] = Chunk(data, tuple((s, e, g, bool(v)) for s, e, g, v in runs))
            blob = _Blob(info, chunks)
            self._blobs[info.blob_id] = blob
            for chunk in chunks.values():
                if chunk.data is not None:
                    self._refs[chunk.data] += 1
                for run in chunk.runs:
                    blob.last_gen = max(blob.last_gen, run[2])
            self._gen = max(self._gen, info.epoch, blob.last_gen)
            self._rewrite(info.blob_id)
        for path in self._data_dir.glob("*/*"):
            if path.name not in self._refs:
                path.unlink()


def _check_size(size: int) -> None:
    if size < 0 or size % SECTOR:
        raise PageStoreError(f"page blob size {size} is not a multiple of {SECTOR}")


def _check_aligned(offset: int, length: int) -> None:
    if offset < 0 or length < 0 or offset % SECTOR or length % SECTOR:
        raise PageStoreError(f"page range {offset}+{length} is not aligned to {SECTOR} bytes")


def _window(size: int, offset: int, length: int | None) -> tuple[int, int]:
    hi = size if length is None else min(size, offset + length)
    return max(0, offset), hi


def _append(out: list[tuple[int, int]], start: int, end: int) -> None:
    if start >= end:
        return
    if out and out[-1][1] == start:
        out[-1] = (out[-1][0], end)
    else:
        out.append((start, end))


def _overlay(runs: tuple[Run, ...], start: int, end: int, gen: int, valid: bool) -> tuple[Run, ...]:
    """Runs after sectors ``[start, end)`` were written (valid) or cleared with generation ``gen``.

    A clear stamps only sectors that were ever written: a never-written page is already clear and
    does not turn up in a later diff.
    """
    out: list[Run] = []
    for s, e, g, v in runs:
        if e <= start or s >= end:
            out.append((s, e, g, v))
            continue
        if s < start:
            out.append((s, start, g, v))
        if e > end:
            out.append((end, e, g, v))
        if not valid:
            out.append((max(s, start), min(e, end), gen, False))
    if valid:
        out.append((start, end, gen, True))
    out.sort()
    merged: list[Run] = []
    for run in out:
        if merged and merged[-1][1] == run[0] and merged[-1][2:] == run[2:]:
            merged[-1] = (merged[-1][0], run[1], run[2], run[3])
        else:
            merged.append(run)
    return tuple(merged)


def _changed(old: tuple[Run, ...], new: tuple[Run, ...]) -> Iterator[tuple[int, int, bool]]:
    """Sector ranges ``(start, end, valid_in_new)`` whose generation differs between the run lists."""
    bounds = sorted(
        {0, SECTORS_PER_CHUNK} | {r[0] for r in old} | {r[1] for r in old} | {r[0] for r in new} | {r[1] for r in new}
    )
    i = j = 0
    for a, b in itertools.pairwise(bounds):  # runs are sorted and disjoint: walk both lists once
        while i < len(old) and old[i][1] <= a:
            i += 1
        while j < len(new) and new[j][1] <= a:
            j += 1
        old_gen = old[i][2] if i < len(old) and old[i][0] <= a else 0
        new_gen, new_valid = (new[j][2], new[j][3]) if j < len(new) and new[j][0] <= a else (0, False)
        if old_gen != new_gen:
            yield a, b, new_valid
