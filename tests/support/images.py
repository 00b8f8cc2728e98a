"""Small disk images for tests: sparse files with known content at known places."""

from __future__ import annotations

import ctypes
import os
import random
from pathlib import Path

MiB = 1 << 20


def compressible(rng: random.Random, length: int) -> bytes:
    words = [b"alpha", b"beta", b"invoice", b"customer", b"status=200", b"\n", b"  "]
    out = bytearray()
    while len(out) < length:
        out += rng.choice(words) + str(rng.randrange(10_000)).encode()
    return bytes(out[:length])


def make_image(path: Path, size: int, *, seed: int = 1, data_blocks: int | None = None) -> Path:
    """A sparse image: some 1 MiB blocks compressible, some random, the rest holes.

    Also plants a zero block that is allocated (written), which must not be stored.
    """
    rng = random.Random(seed)
    blocks = size // MiB
    chosen = sorted(rng.sample(range(blocks), data_blocks if data_blocks is not None else blocks // 2))
    with path.open("wb") as f:
        f.truncate(size)
        for n, block in enumerate(chosen):
            f.seek(block * MiB)
            if n == 1:
                f.write(bytes(MiB))  # allocated but zero
            elif n % 2:
                f.write(rng.randbytes(MiB))
            else:
                f.write(compressible(rng, MiB))
    return path


def write_at(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def punch_hole(path: Path, offset: int, length: int) -> None:
    """Deallocate a range (like a guest TRIM); it reads back as zeros."""
    fd = os.open(path, os.O_RDWR)
    try:
        # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE; fall back to writing zeros
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.fallocate(fd, 0x02 | 0x01, ctypes.c_long(offset), ctypes.c_long(length)) != 0:
            os.pwrite(fd, bytes(length), offset)
    finally:
        os.close(fd)


def allocated_bytes(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def diff_ranges(old: Path, new: Path, page: int = 4096) -> dict[str, list[list[int]]]:
    """What a page-range diff between two snapshots reports: pages that differ.

    Pages that became zero are reported as cleared, the rest as changed (Azure reports
    trimmed pages as cleared and rewritten ones as changed).
    """
    changed: list[list[int]] = []
    cleared: list[list[int]] = []
    zero = bytes(page)
    with old.open("rb") as a, new.open("rb") as b:
        offset = 0
        while True:
            left, right = a.read(page), b.read(page)
            if not left and not right:
                break
            if left != right:
                target = cleared if right == zero[: len(right)] else changed
                if target and target[-1][0] + target[-1][1] == offset:
                    target[-1][1] += len(right)
                else:
                    target.append([offset, len(right)])
            offset += max(len(left), len(right))
    return {"changed": changed, "cleared": cleared}


def build_tree(root: Path, seed: int = 3) -> Path:
    """A small directory tree of text and binary files to put into an ext4 image."""
    rng = random.Random(seed)
    (root / "etc").mkdir(parents=True)
    (root / "var" / "log").mkdir(parents=True)
    (root / "home" / "user" / "data").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("bulwark-test\n")
    (root / "var" / "log" / "app.log").write_bytes(compressible(rng, 3 * MiB + 123))
    (root / "home" / "user" / "data" / "blob.bin").write_bytes(rng.randbytes(2 * MiB + 7))
    for n in range(20):
        (root / "home" / "user" / f"note-{n}.txt").write_text(f"note {n}\n" * (n + 1))
    return root
