"""Index objects: which pack holds each block, so restores read only what they need.

An index object (``index/<random id>``, envelope type INDEX) lists packs and their entries:

    u32 version (1) | u32 pack count | per pack: 16-byte pack id, u32 entry count, entries

with entries laid out as in pack trailers. Index objects are only ever added, or replaced
whole by ``prune``; the same block may appear in several (concurrent writers), which is harmless.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from shared.repo.pack import PackEntry, decode_entries, encode_entries

__all__ = ["INDEX_PREFIX", "Index", "Location", "decode_index", "encode_index", "new_index_key"]

INDEX_PREFIX = "index/"
_HEADER = struct.Struct("<II")
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Location:
    pack_id: str
    entry: PackEntry


def new_index_key() -> str:
    return INDEX_PREFIX + os.urandom(16).hex()


def encode_index(packs: Iterable[tuple[str, list[PackEntry]]]) -> bytes:
    parts: list[bytes] = []
    count = 0
    for pack_id, entries in packs:
        parts.append(bytes.fromhex(pack_id))
        parts.append(encode_entries(entries))
        count += 1
    return _HEADER.pack(_VERSION, count) + b"".join(parts)


def decode_index(data: bytes) -> Iterator[tuple[str, list[PackEntry]]]:
    version, count = _HEADER.unpack_from(data)
    if version != _VERSION:
        raise ValueError(f"index version {version} is not supported")
    offset = _HEADER.size
    for _ in range(count):
        pack_id = data[offset : offset + 16].hex()
        entries, offset = decode_entries(data, offset + 16)
        yield pack_id, entries
    if offset != len(data):
        raise ValueError("index has trailing bytes")


class Index:
    """The in-memory map from block id to its location (about 200 bytes per block)."""

    def __init__(self) -> None:
        self._where: dict[bytes, Location] = {}
        self._packs: set[str] = set()
        self.damaged: list[str] = []
        """Index objects that failed to open while loading."""

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, block_id: object) -> bool:
        return block_id in self._where

    def add_pack(self, pack_id: str, entries: Iterable[PackEntry]) -> None:
        self._packs.add(pack_id)
        for entry in entries:
            # First writer wins: any copy is as good as another.
            self._where.setdefault(entry.block_id, Location(pack_id, entry))

    def get(self, block_id: bytes) -> Location | None:
        return self._where.get(block_id)

    def pack_ids(self) -> set[str]:
        return set(self._packs)

    def by_pack(self) -> dict[str, list[PackEntry]]:
        packs: dict[str, list[PackEntry]] = {}
        for location in self._where.values():
            packs.setdefault(location.pack_id, []).append(location.entry)
        return packs
