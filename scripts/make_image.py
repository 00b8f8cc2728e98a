"""Deterministic synthetic disk images for the benchmark, the demo and the tests.

An image is a sparse file laid out in extents of 1-32 MiB, shuffled:

* holes (never written, so the file stays sparse; ~30 % by default),
* compressible data (~40 %): per 1 MiB block either log-like text lines or 8 KiB database-like
  pages (header, line pointers, free space, packed rows); zstd-1 compresses it ~3.5-4x,
* incompressible data (~30 %): like compressed or encrypted files on a real disk.

``--data-mib`` makes a big, mostly empty disk instead (e.g. 64 GiB holding 4 GiB of data): the data
keeps the same compressible/random mix and is scattered in extents across the whole disk.

``--mutate`` plays a guest writing between two snapshots: it rewrites ``--pct`` % of the 1 MiB
blocks (half compressible, half random; holes included) and optionally trims ``--trim-pct`` % of
the data blocks (punched holes, as a guest's discard leaves them). It writes what Azure's
Get Page Ranges diff would report for the two snapshots, as a changed-ranges JSON file::

    {"changed": [[offset, length], ...], "cleared": [[offset, length], ...]}

Same seeds give the same bytes. Every block has its own content: nothing dedups across blocks, so
a deduplicating tool gets no unearned advantage. Generation is fast (random data is an AES-CTR
key stream, compressible data is cut from a fixed corpus), so it never dominates a benchmark.

    python -m scripts.make_image OUT.img [--size-mib 1024] [--data-mib N] [--seed 42]
    python -m scripts.make_image OUT.img --mutate [--pct 2] [--trim-pct 0] [--mutate-seed 7]
"""

from __future__ import annotations

import argparse
import ctypes
import enum
import functools
import hashlib
import json
import os
import random
import struct
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MIB = 1 << 20
AZURE_PAGE = 512
"""Granularity of Azure page blobs and of their page-range diffs."""

MAX_EXTENT_MIB = 32
HOLE_SHARE = 0.30
RANDOM_SHARE_OF_DATA = 3 / 7
"""With 30 % holes this gives the 40 % compressible / 30 % random split of the default image."""

Range = tuple[int, int]
"""A byte range as ``(offset, length)``, the shape Azure page-range diffs use."""


class Kind(enum.Enum):
    HOLE = "hole"
    COMPRESSIBLE = "compressible"
    RANDOM = "random"


@dataclass(frozen=True)
class Extent:
    start_mib: int
    length_mib: int
    kind: Kind


@dataclass(frozen=True)
class Layout:
    """Which kind of content every MiB of the image holds."""

    size_mib: int
    extents: tuple[Extent, ...]

    def mib_of(self, kind: Kind) -> int:
        return sum(e.length_mib for e in self.extents if e.kind is kind)

    def blocks_of(self, kind: Kind) -> Iterator[int]:
        for extent in self.extents:
            if extent.kind is kind:
                yield from range(extent.start_mib, extent.start_mib + extent.length_mib)

    def describe(self) -> str:
        return (
            f"{self.size_mib} MiB: holes {self.mib_of(Kind.HOLE)}, "
            f"compressible {self.mib_of(Kind.COMPRESSIBLE)}, random {self.mib_of(Kind.RANDOM)} MiB"
        )


def plan_layout(size_mib: int, seed: int, data_mib: int | None = None) -> Layout:
    """Shuffle extents of each kind over the disk; ``data_mib`` defaults to 70 % of it."""
    if data_mib is None:
        data_mib = size_mib - round(size_mib * HOLE_SHARE)
    if not 0 <= data_mib <= size_mib:
        raise ValueError(f"data_mib must be between 0 and size_mib ({size_mib}), got {data_mib}")
    rng = random.Random(seed)
    random_mib = round(data_mib * RANDOM_SHARE_OF_DATA)
    data = _cut(Kind.RANDOM, random_mib, MAX_EXTENT_MIB, rng)
    data += _cut(Kind.COMPRESSIBLE, data_mib - random_mib, MAX_EXTENT_MIB, rng)
    # On a mostly empty disk, holes come in long runs so that the data extents are scattered
    # across the whole disk rather than packed together after many small holes.
    hole_mib = size_mib - data_mib
    hole_max = max(MAX_EXTENT_MIB, 2 * hole_mib // max(1, len(data)))
    pieces = data + _cut(Kind.HOLE, hole_mib, hole_max, rng)
    rng.shuffle(pieces)
    return Layout(size_mib, tuple(_place(pieces)))


def _cut(kind: Kind, total_mib: int, max_mib: int, rng: random.Random) -> list[tuple[Kind, int]]:
    pieces = []
    while total_mib:
        length = min(total_mib, rng.randint(1, max_mib))
        pieces.append((kind, length))
        total_mib -= length
    return pieces


def _place(pieces: Iterable[tuple[Kind, int]]) -> Iterator[Extent]:
    start = 0
    for kind, length in pieces:
        yield Extent(start, length, kind)
        start += length


# --- block content -------------------------------------------------------------------------------

_LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR")
_DAEMONS = ("sshd", "kernel", "nginx", "postgres", "systemd", "app.worker", "app.api", "cron", "kubelet")
_MESSAGES = (
    "accepted connection from {ip}:{port}",
    "request id={hex} path=/api/v1/orders/{n} status={status} dur={ms}ms",
    "checkpoint complete: wrote {n} buffers ({pct}%); sync={ms} ms",
    "session {hex} closed for user u{n} after {ms}s trace={hex}{port}",
    "GET /static/{hex}.js HTTP/1.1 {status} {n} bytes",
    "job {n} finished in {ms} ms, exit={status} run={hex}",
    "memory pressure: free={n}kB cached={port}kB",
    "retrying upload chunk={n} attempt={pct} err=timeout",
)
_WORDS = (
    "alpha", "beta", "gamma", "delta", "order", "item", "price", "total", "status", "pending",
    "shipped", "berlin", "london", "paris", "tokyo", "invoice", "customer", "widget", "gadget",
    "premium", "basic", "standard", "express", "refund",
)  # fmt: skip

_CORPUS_MIB = 8
"""Big enough that the slices cut from it rarely overlap inside one block (that would inflate the
compression ratio), small enough to build in well under a second."""

_DB_PAGE = 8192
_PAGE_HEADER = struct.Struct("<QHHHHHHI")  # lsn, checksum, flags, lower, upper, special, version, xid
_ROW = struct.Struct("<IiHHd40s")  # id, quantity, region, state, price, name
_MIN_ROWS, _MAX_ROWS = 70, 128
"""Rows per page (upper bound exclusive): pages are 55-100 % full, the rest is free space."""


@dataclass(frozen=True)
class _Corpus:
    log_text: bytes
    line_starts: tuple[int, ...]
    rows: bytes


@functools.cache
def _corpus() -> _Corpus:
    """Realistic raw material, built once from a fixed seed: every image cuts its blocks from it."""
    rng = random.Random(0xB0A4)
    lines = _log_lines(rng, _CORPUS_MIB * MIB)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    return _Corpus(b"".join(lines), tuple(starts), _rows(rng, _CORPUS_MIB * MIB // _ROW.size))


def _log_lines(rng: random.Random, total: int) -> list[bytes]:
    lines, size, ts = [], 0, 1_650_000_000
    while size < total:
        ts += rng.randrange(3)
        message = rng.choice(_MESSAGES).format(
            ip=f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}",
            port=rng.randrange(1024, 65535),
            hex=f"{rng.getrandbits(64):016x}",
            n=rng.randrange(100_000),
            status=rng.choice((200, 200, 200, 404, 500)),
            ms=rng.randrange(2000),
            pct=rng.randrange(100),
        )
        line = (
            f"{ts}.{rng.randrange(1000):03d} {rng.choice(_LEVELS)} host{rng.randrange(8):02d} "
            f"{rng.choice(_DAEMONS)}[{rng.randrange(1, 40000)}]: {message}\n"
        ).encode()
        lines.append(line)
        size += len(line)
    return lines


def _rows(rng: random.Random, count: int) -> bytes:
    first_id = rng.randrange(1 << 30)
    return b"".join(
        _ROW.pack(
            first_id + i,
            rng.randrange(-1000, 100_000),
            rng.randrange(50),
            rng.randrange(3),
            round(rng.random() * 1000, 2),
            f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} #{rng.randrange(10**6)}".encode().ljust(40),
        )
        for i in range(count)
    )


class BlockFactory:
    """Makes 1 MiB blocks; each ``(seed, stream, index)`` gives its own bytes."""

    def __init__(self, seed: int, stream: str) -> None:
        self._tag = f"{seed}/{stream}"
        self._key = hashlib.sha256(f"bulwark-make-image/{self._tag}".encode()).digest()

    def block(self, kind: Kind, index: int) -> bytes:
        if kind is Kind.RANDOM:
            return self.random_block(index)
        if kind is Kind.COMPRESSIBLE:
            return self.compressible_block(index)
        return bytes(MIB)

    def random_block(self, index: int) -> bytes:
        # An AES-CTR key stream is deterministic, incompressible and ~15x faster than randbytes.
        nonce = index.to_bytes(8, "big") + bytes(8)
        encryptor = Cipher(algorithms.AES(self._key), modes.CTR(nonce)).encryptor()
        return encryptor.update(bytes(MIB))

    def compressible_block(self, index: int) -> bytes:
        rng = random.Random(f"{self._tag}/{index}")
        return _log_block(rng) if rng.random() < 0.5 else _db_block(rng)


def _log_block(rng: random.Random) -> bytes:
    corpus = _corpus()
    starts = corpus.line_starts
    parts, size = [], 0
    while size < MIB:
        first = rng.randrange(len(starts) - 257)
        part = corpus.log_text[starts[first] : starts[first + rng.randrange(32, 256)]]
        parts.append(part)
        size += len(part)
    return b"".join(parts)[:MIB]


def _db_block(rng: random.Random) -> bytes:
    return b"".join(_db_page(rng) for _ in range(MIB // _DB_PAGE))


def _db_page(rng: random.Random) -> bytes:
    """A heap page: header, line pointers, free space, then the rows packed at the end."""
    rows = _corpus().rows
    count = rng.randrange(_MIN_ROWS, _MAX_ROWS)
    start = rng.randrange(len(rows) // _ROW.size - count) * _ROW.size
    lower = _PAGE_HEADER.size + 4 * count
    upper = _DB_PAGE - count * _ROW.size
    header = _PAGE_HEADER.pack(rng.getrandbits(48), rng.getrandbits(16), 0, lower, upper, _DB_PAGE, 4, 0)
    return header + _line_pointers(count) + bytes(upper - lower) + rows[start : start + count * _ROW.size]


@functools.cache
def _line_pointers(count: int) -> bytes:
    """Offset, flags and length of each row; they depend only on the row count, so cache them."""
    upper = _DB_PAGE - count * _ROW.size
    return struct.pack(f"<{count}I", *(((upper + i * _ROW.size) | (1 << 15) | (_ROW.size << 17)) for i in range(count)))


# --- building and mutating ---------------------------------------------------------------------


def build_image(path: Path, layout: Layout, seed: int) -> None:
    """Write ``layout`` to ``path`` as a sparse file (holes are never written)."""
    factory = BlockFactory(seed, "base")
    with path.open("wb") as f:
        f.truncate(layout.size_mib * MIB)
        for extent in layout.extents:
            if extent.kind is Kind.HOLE:
                continue
            for index in range(extent.start_mib, extent.start_mib + extent.length_mib):
                os.pwrite(f.fileno(), factory.block(extent.kind, index), index * MIB)


@dataclass(frozen=True)
class ChangedRanges:
    """What changed between two snapshots of a disk, as Azure's page-range diff reports it."""

    changed: tuple[Range, ...]
    cleared: tuple[Range, ...]

    @property
    def changed_bytes(self) -> int:
        return sum(length for _, length in self.changed)

    @property
    def cleared_bytes(self) -> int:
        return sum(length for _, length in self.cleared)

    def to_json(self) -> str:
        return json.dumps({"changed": [list(r) for r in self.changed], "cleared": [list(r) for r in self.cleared]})

    @classmethod
    def from_json(cls, text: str) -> ChangedRanges:
        doc = json.loads(text)
        return cls(
            tuple((int(o), int(n)) for o, n in doc["changed"]),
            tuple((int(o), int(n)) for o, n in doc["cleared"]),
        )


def coalesce(ranges: Iterable[Range]) -> tuple[Range, ...]:
    """Sort and merge touching or overlapping ranges, as Azure returns them."""
    merged: list[Range] = []
    for offset, length in sorted(ranges):
        if merged and offset <= merged[-1][0] + merged[-1][1]:
            last_offset, last_length = merged[-1]
            merged[-1] = (last_offset, max(last_length, offset + length - last_offset))
        else:
            merged.append((offset, length))
    return tuple(merged)


def mutate_image(path: Path, *, pct: float, seed: int, trim_pct: float = 0.0) -> ChangedRanges:
    """Rewrite ``pct`` % of the 1 MiB blocks and trim ``trim_pct`` % of them; return the diff."""
    rng = random.Random(seed)
    blocks = os.path.getsize(path) // MIB
    rewritten = rng.sample(range(blocks), _share(blocks, pct))
    with path.open("r+b") as f:
        fd = f.fileno()
        # Trim only blocks that hold data: Azure reports clearing pages that were never written
        # as nothing at all.
        candidates = sorted(set(_data_blocks(fd)) - set(rewritten))
        trimmed = rng.sample(candidates, min(len(candidates), _share(blocks, trim_pct)))
        factory = BlockFactory(seed, "mutate")
        for i, index in enumerate(rewritten):
            kind = Kind.COMPRESSIBLE if i % 2 == 0 else Kind.RANDOM
            os.pwrite(fd, factory.block(kind, index), index * MIB)
        for index in trimmed:
            punch_hole(fd, index * MIB, MIB)
    return ChangedRanges(
        coalesce((i * MIB, MIB) for i in rewritten),
        coalesce((i * MIB, MIB) for i in trimmed),
    )


def _share(blocks: int, pct: float) -> int:
    """``pct`` % of ``blocks``, at least one when ``pct`` is positive (small test images)."""
    if pct <= 0:
        return 0
    return min(blocks, max(1, round(blocks * pct / 100)))


def _data_blocks(fd: int) -> Iterator[int]:
    for offset, length in data_extents(fd):
        yield from range(offset // MIB, (offset + length + MIB - 1) // MIB)


# --- inspecting images -------------------------------------------------------------------------


def data_extents(fd: int) -> list[Range]:
    """The allocated ranges of an open file, found with SEEK_DATA/SEEK_HOLE."""
    size = os.fstat(fd).st_size
    extents: list[Range] = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: nothing but a hole up to the end
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        extents.append((start, end - start))
        offset = end
    return extents


def allocated_bytes(path: Path) -> int:
    """The space a file occupies on disk, which is what tells whether holes were kept."""
    return path.stat().st_blocks * 512


def nonzero_blocks(path: Path, block: int = MIB) -> int:
    """How many ``block``-sized pieces hold a non-zero byte: the least a restore must allocate
    when it writes whole blocks and leaves the rest as holes."""
    zero = bytes(block)
    with path.open("rb") as f:
        fd = f.fileno()
        candidates = {
            index
            for offset, length in data_extents(fd)
            for index in range(offset // block, (offset + length - 1) // block + 1)
        }
        chunks = (os.pread(fd, block, index * block) for index in candidates)
        return sum(chunk != zero[: len(chunk)] for chunk in chunks)


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Deallocate a range of a file, the way a guest's discard (TRIM) frees disk pages."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"fallocate(PUNCH_HOLE) failed: {os.strerror(errno)}")


def diff_images(old: Path, new: Path, page: int = AZURE_PAGE) -> ChangedRanges:
    """Compare two images page by page; pages that became all zeros count as cleared."""
    changed: list[Range] = []
    cleared: list[Range] = []
    zero_page = bytes(page)
    with old.open("rb") as before, new.open("rb") as after:
        offset = 0
        while chunk := after.read(MIB):
            previous = before.read(len(chunk)).ljust(len(chunk), b"\0")
            if chunk != previous:
                for at in range(0, len(chunk), page):
                    now = chunk[at : at + page]
                    if now != previous[at : at + page]:
                        target = cleared if now == zero_page[: len(now)] else changed
                        target.append((offset + at, len(now)))
            offset += len(chunk)
    return ChangedRanges(coalesce(changed), coalesce(cleared))


# --- command line ------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.make_image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", type=Path)
    parser.add_argument("--size-mib", type=int, default=1024, help="logical disk size (default 1024)")
    parser.add_argument("--data-mib", type=int, help="MiB of data; default 70 %% of the size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--mutate", action="store_true", help="change an existing image in place")
    parser.add_argument("--pct", type=float, default=2.0, help="%% of 1 MiB blocks to rewrite (default 2)")
    parser.add_argument("--trim-pct", type=float, default=0.0, help="%% of blocks to trim (default 0)")
    parser.add_argument("--mutate-seed", type=int, default=7)
    parser.add_argument("--ranges", type=Path, help="changed-ranges JSON to write; default IMAGE.ranges.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.mutate:
        diff = mutate_image(args.image, pct=args.pct, seed=args.mutate_seed, trim_pct=args.trim_pct)
        ranges_path = args.ranges or args.image.with_name(args.image.name + ".ranges.json")
        ranges_path.write_text(diff.to_json())
        print(
            f"mutated {args.image}: {diff.changed_bytes // MIB} MiB changed, "
            f"{diff.cleared_bytes // MIB} MiB cleared; ranges in {ranges_path}"
        )
        return 0
    layout = plan_layout(args.size_mib, args.seed, args.data_mib)
    build_image(args.image, layout, args.seed)
    print(f"wrote {args.image}: {layout.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
