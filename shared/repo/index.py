"""Index objects: which pack holds each block, so restores read only what they need.

An index object (``index/<random id>``, envelope type INDEX) lists packs and their entries:

    u32 version (1) | u32 pack count | per pack: 16-byte pack id, u32 entry count, entries

with entries laid out as in pack trailers. Index objects are only ever added, or replaced
whole by ``prune``; the same block may appear in several (concurrent writers), which is harmless.
"""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

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


_ID = 32
# Beside each id: pack number, kind, codec, offset, length, raw length (18 bytes).
_META = struct.Struct("<IBBIII")
_BUCKETS = 1 << 16  # the fan-out table: where each 2-byte id prefix starts, as in git's pack index
# Blocks added since the last merge wait in a dict until they are this many, or an eighth of the
# table: each merge copies the table once, so merging stays linear in the blocks added.
_MERGE_MIN = 1 << 15
_MERGE_SHARE = 8


@dataclass(frozen=True, slots=True)
class _Table:
    """Sorted ids, their packed locations in the same order, and the fan-out table. Never changed
    once built: a merge builds a new one."""

    ids: bytes | bytearray = b""
    meta: bytes | bytearray = b""
    fanout: array[int] = field(default_factory=lambda: array("I", bytes(4 * (_BUCKETS + 1))))

    def __len__(self) -> int:
        return len(self.ids) // _ID

    def find(self, block_id: bytes) -> tuple[int, bool]:
        """Where ``block_id`` is (True), or where it would go (False)."""
        bucket = block_id[0] << 8 | block_id[1]
        low, high = self.fanout[bucket], self.fanout[bucket + 1]
        ids = self.ids
        while low < high:
            middle = (low + high) >> 1
            probe = ids[middle * _ID : middle * _ID + _ID]
            if probe < block_id:
                low = middle + 1
            elif probe > block_id:
                high = middle
            else:
                return middle, True
        return low, False


class Index:
    """The map from block id to its location: ~50 bytes per block (a dict of objects took ~280,
    so 1 TiB of unique data cost 280 MB in every process that opened the repository).

    Ids are kept sorted in one byte string with their packed locations beside them; blocks added
    since the last merge wait in a small dict. The first location added for a block wins (any
    copy is as good as another). Lookups may run on several threads while one thread adds packs:
    a merge builds a new table and swaps it in with one assignment, before it empties the dict.
    """

    def __init__(self) -> None:
        self._table = _Table()
        self._recent: dict[bytes, bytes] = {}  # id -> packed location
        self._pack_ids: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self.damaged: list[str] = []
        """Index objects that failed to open while loading."""

    def __len__(self) -> int:
        self._merge()  # the dict may hold copies of blocks the table has
        return len(self._table)

    def __contains__(self, block_id: object) -> bool:
        if not isinstance(block_id, bytes) or len(block_id) != _ID:
            return False
        recent = self._recent  # read before the table: see the class docstring
        return self._table.find(block_id)[1] or block_id in recent

    def add_pack(self, pack_id: str, entries: Iterable[PackEntry]) -> None:
        number = self._pack_numbers.get(pack_id)
        if number is None:
            number = self._pack_numbers[pack_id] = len(self._pack_ids)
            self._pack_ids.append(pack_id)
        recent = self._recent
        for entry in entries:
            if entry.block_id not in recent:
                recent[entry.block_id] = _META.pack(
                    number, entry.kind, entry.codec, entry.offset, entry.length, entry.raw_length
                )
        if len(recent) >= max(_MERGE_MIN, len(self._table) // _MERGE_SHARE):
            self._merge()

    def get(self, block_id: bytes) -> Location | None:
        if len(block_id) != _ID:
            return None
        recent = self._recent
        table = self._table
        found, present = table.find(block_id)
        packed: bytes | bytearray | None = (
            table.meta[found * _META.size : found * _META.size + _META.size] if present else recent.get(block_id)
        )
        if packed is None:
            return None
        number, kind, codec, offset, length, raw_length = _META.unpack(packed)
        return Location(self._pack_ids[number], PackEntry(bytes(block_id), kind, codec, offset, length, raw_length))

    def pack_ids(self) -> set[str]:
        return set(self._pack_ids)

    def _merge(self) -> None:
        """Fold the dict into a new table: the old table copied once, the new ids placed between."""
        if not self._recent:
            return
        old = self._table
        recent = sorted(self._recent.items())
        ids, meta = bytearray((len(old) + len(recent)) * _ID), bytearray((len(old) + len(recent)) * _META.size)
        old_ids, old_meta = memoryview(old.ids), memoryview(old.meta)
        shift = array("I", bytes(4 * (_BUCKETS + 1)))  # new ids per bucket, counted one bucket on
        size = _META.size
        taken = placed = 0  # old entries copied and new ones placed so far
        for block_id, packed in recent:
            at, present = old.find(block_id)
            if present:
                continue  # a copy of a block the table has: the first location stays
            start = taken + placed  # where the old run before this id goes in the new table
            ids[start * _ID : (start + at - taken) * _ID] = old_ids[taken * _ID : at * _ID]
            meta[start * size : (start + at - taken) * size] = old_meta[taken * size : at * size]
            here = placed + at
            ids[here * _ID : here * _ID + _ID] = block_id
            meta[here * size : here * size + size] = packed
            taken = at
            placed += 1
            shift[(block_id[0] << 8 | block_id[1]) + 1] += 1
        start = taken + placed
        end = len(old) + placed
        ids[start * _ID : end * _ID] = old_ids[taken * _ID :]
        meta[start * size : end * size] = old_meta[taken * size :]
        del ids[end * _ID :], meta[end * size :]  # room left for copies that were skipped
        fanout = array("I", old.fanout)
        running = 0
        for bucket in range(_BUCKETS + 1):
            running += shift[bucket]
            fanout[bucket] += running
        old_ids.release()
        old_meta.release()
        self._table = _Table(ids, meta, fanout)
        self._recent = {}
