"""Random access to an image restore point without restoring it: a read-only, seekable file.

File-level restore parses partition tables and file systems straight from the repository, so it
needs ``read(n)`` at any offset of the image. A read finds its block through the span's map
(loaded on first use, a few kept), fetches and authenticates that block, and keeps the plaintext
in a small LRU cache: parsers re-read the same metadata blocks over and over. Holes read as zeros
and cost nothing. When reads go front to back, a miss also fetches the next blocks that lie
right after it in the same pack, in the same request (a window doubling up to 8 blocks), so a
large file costs a few requests and at most a window's worth of blocks more than its own.
``blocks_fetched`` counts the blocks read from storage (maps included), which is what the
benchmark and the tests hold to a budget; ``requests`` the storage requests.

Not thread-safe: one reader per thread.
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict

from shared.core.errors import IntegrityError
from shared.repo import walk
from shared.repo.index import Index, Location
from shared.repo.pack import pack_key
from shared.repo.point import MAP_SPAN, Point
from shared.repo.repository import Repository

__all__ = ["ImagePointReader"]

_DEFAULT_CACHE = 16 << 20
_MAPS_KEPT = 4
# At most this many blocks per request when reading sequentially (8 MiB at 1 MiB blocks).
_MAX_WINDOW = 8


class ImagePointReader(io.RawIOBase):
    """The disk image of ``point`` as a read-only binary file of ``size`` bytes."""

    def __init__(
        self,
        repo: Repository,
        point: Point,
        *,
        index: Index | None = None,
        cache_bytes: int = _DEFAULT_CACHE,
    ) -> None:
        super().__init__()
        image = walk.image_of(point)
        self._repo = repo
        self._point = point
        self._index = index if index is not None else repo.load_index()
        self._maps_ids = image.maps
        self._map_span = image.map_span or MAP_SPAN
        self.size = image.size
        self.block_size = image.block_size
        self._cache_bytes = max(cache_bytes, self.block_size)
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._cached = 0
        self._maps: OrderedDict[int, dict[int, bytes]] = OrderedDict()
        self._pos = 0
        self.blocks_fetched = 0
        """Blocks read from the repository (data blocks and maps)."""
        self.bytes_fetched = 0
        self.requests = 0
        """Storage requests made: adjacent blocks of one pack come in one request."""
        self._window = 1
        self._next_miss = -1
        self.failure: IntegrityError | None = None
        """The last damaged block met: parsers may swallow the exception, callers should not."""

    @property
    def point_id(self) -> str:
        return self._point.point_id

    # -- io.RawIOBase ----------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._pos + offset
        elif whence == os.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._pos = position
        return position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        wanted = min(len(out), max(0, self.size - self._pos))
        done = 0
        while done < wanted:
            position = self._pos + done
            block, within = divmod(position, self.block_size)
            take = min(wanted - done, self.block_size - within)
            data = self._block(block)
            if data is None or within >= len(data):
                out[done : done + take] = bytes(take)
            else:
                piece = data[within : within + take]
                out[done : done + len(piece)] = piece
                if len(piece) < take:  # a short last block (should not happen mid-image)
                    out[done + len(piece) : done + take] = bytes(take - len(piece))
            done += take
        self._pos += done
        return done

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self.size - self._pos)
        buffer = bytearray(min(size, max(0, self.size - self._pos)))
        count = self.readinto(buffer)
        return bytes(buffer[:count])

    def readall(self) -> bytes:
        return self.read(-1)

    # -- blocks ----------------------------------------------------------------------------

    def _block(self, block: int) -> bytes | None:
        """The plaintext of image block ``block``, or None for a hole."""
        cached = self._blocks.get(block)
        if cached is not None:
            self._blocks.move_to_end(block)
            return cached
        span, relative = divmod(block, self._map_span)
        entries = self._span_map(span)
        if entries is None:
            return None
        block_id = entries.get(relative)
        if block_id is None:
            return None
        # Sequential misses (a file read front to back, holes skipped) widen the window of blocks
        # fetched together; any other miss fetches one block.
        widest = min(_MAX_WINDOW, self._cache_bytes // self.block_size)
        sequential = self._next_miss <= block <= self._next_miss + widest
        self._window = min(self._window * 2, widest) if sequential else 1
        run = [(block, self._locate(block_id))]
        following = block
        while len(run) < self._window and following - block < 2 * self._window:
            following += 1
            if following // self._map_span != span or following in self._blocks:
                break
            next_id = entries.get(following % self._map_span)
            if next_id is None:
                continue  # a hole: nothing to fetch
            location = self._index.get(next_id)
            last = run[-1][1]
            if (
                location is None
                or location.pack_id != last.pack_id
                or location.entry.offset != last.entry.offset + last.entry.length
            ):
                break
            run.append((following, location))
        self._next_miss = run[-1][0] + 1
        return self._fetch(run)

    def _locate(self, block_id: bytes) -> Location:
        location = self._index.get(block_id)
        if location is None:
            raise self._fail(
                IntegrityError(
                    f"point {self._point.point_id}: block {block_id.hex()[:16]} is missing from the index",
                    hint="run `bulwark verify` to see every affected restore point",
                )
            )
        return location

    def _fetch(self, run: list[tuple[int, Location]]) -> bytes:
        """Adjacent blocks of one pack in one storage request, each authenticated on its own;
        returns the first one's plaintext."""
        pack_id = run[0][1].pack_id
        start = run[0][1].entry.offset
        length = run[-1][1].entry.offset + run[-1][1].entry.length - start
        try:
            data = self._repo.store.get(pack_key(pack_id), offset=start, length=length)
            if len(data) != length:
                raise IntegrityError(
                    f"pack {pack_id} is truncated: point {self._point.point_id} cannot be read in full",
                    hint="run `bulwark verify`",
                )
            view = memoryview(data)
            self.requests += 1
            self.blocks_fetched += len(run)
            self.bytes_fetched += length
            first = self._open(pack_id, run[0], view, start)
        except IntegrityError as exc:
            raise self._fail(exc) from exc
        for ahead in run[1:]:
            try:
                self._open(pack_id, ahead, view, start)
            except IntegrityError:
                break  # read ahead only: a damaged block fails the read that needs it, not this one
        return first

    def _open(self, pack_id: str, target: tuple[int, Location], view: memoryview, start: int) -> bytes:
        block, location = target
        entry = location.entry
        offset = entry.offset - start
        plain = self._repo.open_sealed(pack_id, entry, view[offset : offset + entry.length])
        self._remember(block, plain)
        return plain

    def _remember(self, block: int, data: bytes) -> None:
        self._blocks[block] = data
        self._cached += len(data)
        while self._cached > self._cache_bytes and len(self._blocks) > 1:
            _, dropped = self._blocks.popitem(last=False)
            self._cached -= len(dropped)

    def _span_map(self, span: int) -> dict[int, bytes] | None:
        if span >= len(self._maps_ids):
            return None
        entries = self._maps.get(span)
        if entries is not None:
            self._maps.move_to_end(span)
            return entries
        map_id = self._maps_ids[span]
        if map_id is None:
            return None
        try:
            entries = walk.read_map(self._repo, self._index, self._point, map_id)
        except IntegrityError as exc:
            raise self._fail(exc) from exc
        self.blocks_fetched += 1
        self.requests += 1
        self._maps[span] = entries
        if len(self._maps) > _MAPS_KEPT:
            self._maps.popitem(last=False)
        return entries

    def _fail(self, exc: IntegrityError) -> IntegrityError:
        self.failure = exc
        return exc
