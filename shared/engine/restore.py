"""The restore pipeline: a restore point back into a sparse disk image.

Blocks are grouped by pack and read in ranges of adjacent blocks (one storage request per range
instead of one per block: Azure bills per transaction), decrypted and decompressed on a thread
pool and written with pwrite. Holes are never written, so the output stays sparse. Every block
is authenticated before it is written; on any failure the half-written output is removed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Protocol

from shared.core.errors import IntegrityError
from shared.engine.image_target import ImageTarget
from shared.repo import walk
from shared.repo.index import Index, Location
from shared.repo.pack import PackEntry, pack_key
from shared.repo.point import MAP_SPAN, ImageMap, Point
from shared.repo.repository import Repository

__all__ = ["BlockTarget", "RestoreResult", "restore_image", "restore_into"]

# Adjacent blocks of one pack are fetched together up to this many bytes per request.
_MAX_RUN = 8 << 20

Progress = Callable[[int], None]


class BlockTarget(Protocol):
    """Where restored blocks go: a sparse file (``ImageTarget``) or an upload disk
    (``shared.azure.upload.DiskUpload``). ``write`` is called from several threads at once, for
    distinct ranges; ranges never written must read as zeros."""

    def write(self, offset: int, data: bytes) -> None: ...


@dataclass
class RestoreResult:
    point_id: str
    size: int
    bytes_written: int
    blocks: int
    requests: int
    duration_s: float

    def to_dict(self) -> dict[str, object]:
        return {
            "point": self.point_id,
            "size": self.size,
            "bytes_written": self.bytes_written,
            "blocks": self.blocks,
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True)
class _Run:
    """A contiguous range of one pack and where each of its blocks goes in the image."""

    pack_id: str
    offset: int
    length: int
    blocks: list[tuple[PackEntry, list[int]]]


def _plan_runs(index: Index, point: Point, blocks: list[tuple[int, bytes]]) -> list[_Run]:
    """Group one span's blocks into per-pack read ranges."""
    targets: dict[bytes, tuple[Location, list[int]]] = {}
    for block, block_id in blocks:
        seen = targets.get(block_id)
        if seen is None:
            location = index.get(block_id)
            if location is None:
                raise IntegrityError(
                    f"point {point.point_id}: block {block_id.hex()[:16]} is missing from the index",
                    hint="run `bulwark verify` to see every affected restore point",
                )
            targets[block_id] = (location, [block])
        else:
            seen[1].append(block)
    ordered = sorted(targets.values(), key=lambda t: (t[0].pack_id, t[0].entry.offset))
    runs: list[_Run] = []
    current: list[tuple[PackEntry, list[int]]] = []
    pack_id = ""
    start = end = 0
    for location, image_blocks in ordered:
        entry = location.entry
        contiguous = location.pack_id == pack_id and entry.offset == end
        if current and (not contiguous or entry.offset + entry.length - start > _MAX_RUN):
            runs.append(_Run(pack_id, start, end - start, current))
            current = []
        if not current:
            pack_id, start = location.pack_id, entry.offset
        current.append((entry, image_blocks))
        end = entry.offset + entry.length
    if current:
        runs.append(_Run(pack_id, start, end - start, current))
    return runs


def restore_image(
    repo: Repository,
    point: Point,
    target: Path,
    *,
    overwrite: bool = False,
    workers: int = 2,
    progress: Progress | None = None,
) -> RestoreResult:
    """Write ``point``'s disk image to ``target`` (a new sparse file)."""
    image = walk.image_of(point)
    with ImageTarget(target, image.size, overwrite=overwrite, block_size=image.block_size) as out:
        return restore_into(repo, point, out, workers=workers, progress=progress)


def restore_into(
    repo: Repository,
    point: Point,
    out: BlockTarget,
    *,
    workers: int = 2,
    progress: Progress | None = None,
    coalesce: int = 0,
) -> RestoreResult:
    """Write ``point``'s allocated blocks into ``out``, which already has the image's size.

    ``coalesce`` > 0 joins the adjacent blocks of one fetched range into writes of up to that many
    bytes: for targets that pay per request (an upload disk's Put Page takes up to 4 MiB)."""
    started = perf_counter()
    image = walk.image_of(point)
    index = repo.load_index()
    written, blocks, requests = _write_blocks(repo, index, point, out, image, workers, progress, coalesce)
    return RestoreResult(point.point_id, image.size, written, blocks, requests, perf_counter() - started)


def _write_joined(out: BlockTarget, pieces: list[tuple[int, bytes]], limit: int) -> None:
    """Write ``(offset, data)`` pieces, joining those that touch into writes of at most ``limit``."""
    pieces.sort(key=lambda piece: piece[0])
    group: list[bytes] = []
    start = end = -1
    for offset, data in pieces:
        if group and (offset != end or end - start + len(data) > limit):
            out.write(start, b"".join(group))
            group = []
        if not group:
            start = end = offset
        group.append(data)
        end += len(data)
    if group:
        out.write(start, b"".join(group))


def _write_blocks(
    repo: Repository,
    index: Index,
    point: Point,
    out: BlockTarget,
    image: ImageMap,
    workers: int,
    progress: Progress | None,
    coalesce: int = 0,
) -> tuple[int, int, int]:
    block_size = image.block_size

    def fetch(run: _Run) -> int:
        data = repo.store.get(pack_key(run.pack_id), offset=run.offset, length=run.length)
        if len(data) != run.length:
            raise IntegrityError(
                f"pack {run.pack_id} is truncated: restore point {point.point_id} cannot be restored in full",
                hint="run `bulwark verify`",
            )
        view = memoryview(data)
        written = 0
        pending: list[tuple[int, bytes]] = []
        for entry, image_blocks in run.blocks:
            start = entry.offset - run.offset
            plain = repo.open_sealed(run.pack_id, entry, view[start : start + entry.length])
            for block in image_blocks:
                if coalesce:
                    pending.append((block * block_size, plain))
                else:
                    out.write(block * block_size, plain)
                written += len(plain)
        if pending:
            _write_joined(out, pending, coalesce)
        if progress is not None:
            progress(written)
        return written

    total = blocks = requests = 0
    # One span at a time keeps memory flat; runs within a span go in parallel.
    span_blocks: list[tuple[int, bytes]] = []
    current_span = -1
    limit = 2 * workers
    with ThreadPoolExecutor(workers, thread_name_prefix="restore") as pool:
        inflight: list[Future[int]] = []

        def drain(keep: int) -> None:
            nonlocal total
            while len(inflight) > keep:
                total += inflight.pop(0).result()

        def submit_span() -> None:
            nonlocal blocks, requests
            for run in _plan_runs(index, point, span_blocks):
                inflight.append(pool.submit(fetch, run))
                requests += 1
                blocks += sum(len(b) for _, b in run.blocks)
                drain(limit)

        try:
            for block, block_id in walk.image_blocks(repo, index, point):
                span = block // MAP_SPAN
                if span != current_span and span_blocks:
                    submit_span()
                    span_blocks = []
                current_span = span
                span_blocks.append((block, block_id))
            if span_blocks:
                submit_span()
            drain(0)
        finally:
            for pending in inflight:
                pending.cancel()
    return total, blocks, requests
