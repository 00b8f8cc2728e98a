"""The byte-level format: envelopes, sealed blocks, packs, indexes and maps (docs/format.md)."""

from __future__ import annotations

import os
import struct

import pytest

from shared.core.compression import Codec, compress, decompress
from shared.core.crypto import DecryptionFailed, MasterKey, ScryptParams
from shared.core.envelope import EnvelopeError, ObjectType, open_object, seal_object
from shared.repo.index import decode_index, encode_index
from shared.repo.keys import KeySlot, new_passphrase_slot, open_slot
from shared.repo.pack import PackLayout, check_block, read_trailer, seal_block
from shared.repo.point import MAP_SPAN, decode_map, encode_map

KEY = MasterKey(bytes(range(32)))
FAST = ScryptParams(n=2**10)


def test_block_ids_are_keyed() -> None:
    other = MasterKey(bytes(32))
    assert KEY.block_id(b"data") != other.block_id(b"data")
    assert len(KEY.block_id(b"data")) == 32


def test_envelope_layout_and_binding() -> None:
    sealed = seal_object(KEY, ObjectType.INDEX, "index/abc", b"payload" * 100)
    magic, version, kind, codec, reserved = struct.unpack_from("<4sBBBB", sealed)
    assert (magic, version, kind, codec, reserved) == (b"BLWK", 1, ObjectType.INDEX, Codec.ZSTD, 0)
    assert open_object(KEY, ObjectType.INDEX, "index/abc", sealed) == b"payload" * 100
    with pytest.raises(EnvelopeError, match="authentication failed"):
        open_object(KEY, ObjectType.INDEX, "index/other", sealed)  # moved to another name
    with pytest.raises(EnvelopeError, match="expected a point object"):
        open_object(KEY, ObjectType.POINT, "index/abc", sealed)
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(EnvelopeError, match="authentication failed"):
        open_object(KEY, ObjectType.INDEX, "index/abc", bytes(flipped))


def test_incompressible_blocks_are_stored_raw() -> None:
    noise = os.urandom(1 << 20)
    assert compress(noise, 1)[0] == Codec.NONE
    codec, packed = compress(b"a" * (1 << 20), 1)
    assert codec == Codec.ZSTD and len(packed) < 1000
    assert decompress(codec, bytes(packed), 1 << 20) == b"a" * (1 << 20)


def test_pack_trailer_lists_every_block_and_blocks_authenticate() -> None:
    layout = PackLayout(target_size=4096)
    blocks = [bytes([n]) * 1000 for n in range(3)]
    body = bytearray()
    for data in blocks:
        codec, packed = compress(data, 1)
        block_id = KEY.block_id(data)
        sealed = seal_block(KEY, ObjectType.DATA_BLOCK, codec, block_id, packed)
        assert layout.fits(len(sealed))
        layout.add(block_id, ObjectType.DATA_BLOCK, codec, len(sealed), len(data))
        body += sealed
    assert not layout.fits(4096)
    data = bytes(body + layout.trailer(KEY))
    entries = layout.entries
    assert read_trailer(KEY, layout.pack_id, data) == entries
    for entry, original in zip(entries, blocks, strict=True):
        assert check_block(KEY, entry, data[entry.offset : entry.offset + entry.length]) == original
    # a block presented under another id fails
    wrong = entries[1]
    with pytest.raises(DecryptionFailed):
        check_block(KEY, entries[0], data[wrong.offset : wrong.offset + wrong.length])
    with pytest.raises(EnvelopeError):
        read_trailer(KEY, layout.pack_id, data[:-1])
    with pytest.raises(EnvelopeError):
        read_trailer(KEY, "0" * 32, data)  # a trailer is bound to its pack id


def test_index_round_trip() -> None:
    layout = PackLayout(target_size=1 << 20)
    layout.add(b"\x01" * 32, ObjectType.DATA_BLOCK, Codec.NONE, 40, 12)
    assert list(decode_index(encode_index([(layout.pack_id, layout.entries)]))) == [(layout.pack_id, layout.entries)]


def test_map_round_trip_and_bounds() -> None:
    entries = {0: b"\x01" * 32, MAP_SPAN - 1: b"\x02" * 32}
    assert decode_map(encode_map(entries), MAP_SPAN) == entries
    with pytest.raises(ValueError, match="outside its span"):
        decode_map(encode_map(entries), 10)


def test_key_slot_opens_only_with_its_passphrase() -> None:
    slot = new_passphrase_slot(KEY, "correct horse", created="2026-01-01T00:00:00Z", params=FAST)
    reloaded = KeySlot.from_json(slot.to_json())
    opened = open_slot(reloaded, "correct horse")
    assert opened is not None and opened.secret == KEY.secret
    assert open_slot(reloaded, "wrong") is None
