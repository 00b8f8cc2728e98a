"""Pack objects: many sealed blocks in one blob, followed by an encrypted trailer.

    [sealed block 0][sealed block 1]...[trailer envelope][u32 LE trailer length]

A sealed block is ``nonce(12) || AES-256-GCM(ciphertext || tag)`` of the (maybe compressed)
block, with associated data ``b"BLWK" || version || kind || codec || block id``. The trailer lists
every block in the pack (the same entry layout as index objects), so the index can be rebuilt
from packs alone. Packs are written once, under a random id, and never modified.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from shared.core.compression import Codec, decompress
from shared.core.crypto import NONCE_SIZE, TAG_SIZE, DecryptionFailed, MasterKey
from shared.core.envelope import FORMAT_VERSION, MAGIC, EnvelopeError, ObjectType, open_object, seal_object

__all__ = [
    "ENTRY",
    "PACKS_PREFIX",
    "PackEntry",
    "PackLayout",
    "decode_entries",
    "check_block",
    "encode_entries",
    "iter_sealed",
    "open_block",
    "pack_key",
    "read_trailer",
    "seal_block",
]

PACKS_PREFIX = "packs/"
SEAL_OVERHEAD = NONCE_SIZE + TAG_SIZE
# block id, kind, codec, offset in pack, stored length (sealed), plaintext length
ENTRY = struct.Struct("<32sBBIII")
_COUNT = struct.Struct("<I")
_TRAILER_LEN = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class PackEntry:
    block_id: bytes
    kind: int
    codec: int
    offset: int
    length: int
    raw_length: int


def pack_key(pack_id: str) -> str:
    """Packs fan out over 256 folders so a directory listing stays small."""
    return f"{PACKS_PREFIX}{pack_id[:2]}/{pack_id}"


def _block_aad(kind: int, codec: int, block_id: bytes) -> bytes:
    return MAGIC + bytes((FORMAT_VERSION, kind, codec)) + block_id


def seal_block(key: MasterKey, kind: int, codec: int, block_id: bytes, body: bytes | memoryview) -> bytearray:
    return key.seal(body, _block_aad(kind, codec, block_id))


def open_block(key: MasterKey, entry: PackEntry, sealed: bytes | memoryview) -> bytes:
    """Decrypt one block; raises DecryptionFailed if it was altered, moved or mislabelled."""
    return key.open(sealed, _block_aad(entry.kind, entry.codec, entry.block_id))


def encode_entries(entries: list[PackEntry]) -> bytes:
    parts = [_COUNT.pack(len(entries))]
    parts.extend(ENTRY.pack(e.block_id, e.kind, e.codec, e.offset, e.length, e.raw_length) for e in entries)
    return b"".join(parts)


def decode_entries(data: bytes | memoryview, offset: int = 0) -> tuple[list[PackEntry], int]:
    """Decode a counted entry list at ``offset``; returns the entries and the offset after them."""
    (count,) = _COUNT.unpack_from(data, offset)
    offset += _COUNT.size
    end = offset + count * ENTRY.size
    if end > len(data):
        raise ValueError("entry list runs past the end of its object")
    entries = [PackEntry(*fields) for fields in ENTRY.iter_unpack(memoryview(data)[offset:end])]
    return entries, end


def _trailer_name(pack_id: str) -> str:
    return f"pack-trailer:{pack_id}"


class PackLayout:
    """Where each block of the pack being written goes, and the trailer that ends it.

    Bytes themselves are streamed to storage by the caller; this only keeps the bookkeeping,
    so a pack costs no memory beyond its entry list.
    """

    def __init__(self, target_size: int) -> None:
        self._target = target_size
        self.pack_id = os.urandom(16).hex()
        self.size = 0
        self.entries: list[PackEntry] = []

    @property
    def is_empty(self) -> bool:
        return not self.entries

    def fits(self, sealed_length: int) -> bool:
        """Whether a block of this sealed size belongs in this pack (a first block always does)."""
        return self.is_empty or self.size + sealed_length <= self._target

    def add(self, block_id: bytes, kind: int, codec: Codec, sealed_length: int, raw_length: int) -> None:
        self.entries.append(PackEntry(block_id, kind, int(codec), self.size, sealed_length, raw_length))
        self.size += sealed_length

    def trailer(self, key: MasterKey) -> bytes:
        """The encrypted trailer and its length field: the last bytes of the pack."""
        sealed = seal_object(key, ObjectType.PACK_TRAILER, _trailer_name(self.pack_id), encode_entries(self.entries))
        return sealed + _TRAILER_LEN.pack(len(sealed))


def read_trailer(key: MasterKey, pack_id: str, data: bytes) -> list[PackEntry]:
    """Decode the trailer from a whole pack (or from its tail, given as the last bytes).

    Raises EnvelopeError when the trailer is missing, truncated or altered.
    """
    if len(data) < _TRAILER_LEN.size:
        raise EnvelopeError(f"pack {pack_id}: too short to hold a trailer")
    (length,) = _TRAILER_LEN.unpack_from(data, len(data) - _TRAILER_LEN.size)
    start = len(data) - _TRAILER_LEN.size - length
    if start < 0:
        raise EnvelopeError(f"pack {pack_id}: trailer length {length} exceeds the pack (truncated?)")
    payload = open_object(key, ObjectType.PACK_TRAILER, _trailer_name(pack_id), data[start : -_TRAILER_LEN.size])
    entries, _ = decode_entries(payload)
    return entries


def iter_sealed(data: bytes | memoryview, entries: list[PackEntry]) -> Iterator[tuple[PackEntry, memoryview]]:
    view = memoryview(data)
    for entry in entries:
        yield entry, view[entry.offset : entry.offset + entry.length]


def check_block(key: MasterKey, entry: PackEntry, sealed: bytes | memoryview) -> bytes:
    """Decrypt and decompress one block and confirm its id; raises DecryptionFailed/ValueError."""
    body = open_block(key, entry, sealed)
    plain = decompress(entry.codec, body, entry.raw_length)
    if len(plain) != entry.raw_length or key.block_id(plain) != entry.block_id:
        raise DecryptionFailed("block content does not match its id")
    return plain
