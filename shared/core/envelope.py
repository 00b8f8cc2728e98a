"""The envelope of every encrypted metadata object (config, index, point, pack trailer, session).

    offset  size  field
    0       4     magic  b"BLWK"
    4       1     format version (1)
    5       1     object type (ObjectType)
    6       1     codec of the plaintext (0 none, 1 zstd)
    7       1     reserved, 0
    8       12    nonce
    20      n+16  AES-256-GCM ciphertext and tag

The associated data is the 8-byte header followed by the object's name (its storage key, or
"pack-trailer:<pack id>"), so an object moved to another name, or given another type, fails
authentication instead of being misread.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from shared.core.compression import Codec, compress, decompress
from shared.core.crypto import DecryptionFailed, MasterKey

__all__ = ["FORMAT_VERSION", "MAGIC", "EnvelopeError", "ObjectType", "open_object", "seal_object"]

MAGIC = b"BLWK"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sBBBB")
# Metadata is small and read often; level 3 costs little here and shrinks indexes further.
_METADATA_LEVEL = 3
# Bounds decompression of metadata so a forged length cannot exhaust memory.
_MAX_METADATA = 1 << 31


class ObjectType(IntEnum):
    CONFIG = 1
    INDEX = 2
    POINT = 3
    PACK_TRAILER = 4
    SESSION = 5
    # Blocks inside packs carry these types in their associated data (docs/format.md).
    DATA_BLOCK = 16
    MAP_BLOCK = 17
    FILE_BLOCK = 18
    FILE_LIST = 19


class EnvelopeError(Exception):
    """The object is not a valid envelope of the expected kind, or it fails authentication."""


def seal_object(key: MasterKey, kind: ObjectType, name: str, payload: bytes) -> bytes:
    codec, body = compress(payload, _METADATA_LEVEL)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, kind, codec, 0)
    return header + key.seal(body, header + name.encode())


def open_object(key: MasterKey, kind: ObjectType, name: str, data: bytes) -> bytes:
    if len(data) < _HEADER.size:
        raise EnvelopeError(f"{name}: {len(data)} bytes is too short for an object header")
    magic, version, found_kind, codec, _ = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise EnvelopeError(f"{name}: not a Bulwark object (bad magic)")
    if version != FORMAT_VERSION:
        raise EnvelopeError(f"{name}: format version {version} is not supported by this Bulwark")
    if found_kind != kind:
        raise EnvelopeError(f"{name}: expected a {kind.name.lower()} object, found type {found_kind}")
    if codec not in (Codec.NONE, Codec.ZSTD):
        raise EnvelopeError(f"{name}: unknown codec {codec}")
    try:
        body = key.open(memoryview(data)[_HEADER.size :], data[: _HEADER.size] + name.encode())
    except DecryptionFailed as exc:
        raise EnvelopeError(f"{name}: authentication failed (damaged or altered)") from exc
    return decompress(codec, body, _MAX_METADATA)
