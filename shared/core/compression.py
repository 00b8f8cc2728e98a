"""Block compression: zstd, or raw when compression does not pay.

zstd contexts are not thread-safe, so each thread keeps its own (the pipeline compresses on a
thread pool; zstandard releases the GIL while it works).
"""

from __future__ import annotations

import threading
from enum import IntEnum

import zstandard

__all__ = ["Codec", "compress", "decompress"]

# Keep the compressed form only if it saves at least 3 %; otherwise store raw, which also
# makes the restore of incompressible data free of decompression.
_WORTHWHILE = 0.97


class Codec(IntEnum):
    NONE = 0
    ZSTD = 1


_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get(level)
    if comp is None:
        # write_content_size lets the decompressor allocate the output once.
        comp = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec


def compress(data: bytes | memoryview, level: int) -> tuple[Codec, bytes | memoryview]:
    """Compress with zstd at ``level``; return the raw input when the saving is under 3 %."""
    packed: bytes = _compressor(level).compress(data)
    if len(packed) <= len(data) * _WORTHWHILE:
        return Codec.ZSTD, packed
    return Codec.NONE, data


def decompress(codec: int, data: bytes, raw_length: int) -> bytes:
    if codec == Codec.NONE:
        return data
    if codec == Codec.ZSTD:
        out: bytes = _decompressor().decompress(data, max_output_size=raw_length)
        return out
    raise ValueError(f"unknown codec {codec}")
