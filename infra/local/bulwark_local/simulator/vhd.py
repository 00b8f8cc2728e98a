"""The 512-byte fixed-VHD footer that ends every managed-disk page blob (and an uploaded disk)."""

from __future__ import annotations

import datetime as dt
import struct
import uuid

FOOTER_SIZE = 512
COOKIE = b"conectix"
_VHD_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def vhd_footer(disk_size: int, unique_id: str | None = None) -> bytes:
    footer = bytearray(FOOTER_SIZE)
    footer[0:8] = COOKIE
    struct.pack_into(">I", footer, 8, 2)  # features: reserved bit set
    struct.pack_into(">I", footer, 12, 0x00010000)  # format version 1.0
    struct.pack_into(">Q", footer, 16, 0xFFFFFFFFFFFFFFFF)  # data offset: none (fixed disk)
    seconds = int((dt.datetime.now(dt.UTC) - _VHD_EPOCH).total_seconds())
    struct.pack_into(">I", footer, 24, seconds & 0xFFFFFFFF)
    footer[28:32] = b"bwrk"
    struct.pack_into(">I", footer, 32, 0x000A0000)
    footer[36:40] = b"Wi2k"
    struct.pack_into(">Q", footer, 40, disk_size)
    struct.pack_into(">Q", footer, 48, disk_size)
    struct.pack_into(">I", footer, 56, _geometry(disk_size))
    struct.pack_into(">I", footer, 60, 2)  # disk type: fixed
    footer[68:84] = uuid.UUID(unique_id).bytes if unique_id else uuid.uuid4().bytes
    struct.pack_into(">I", footer, 64, ~sum(footer) & 0xFFFFFFFF)
    return bytes(footer)


def is_valid_footer(footer: bytes) -> bool:
    if len(footer) != FOOTER_SIZE or footer[0:8] != COOKIE:
        return False
    stored = struct.unpack_from(">I", footer, 64)[0]
    blank = bytearray(footer)
    blank[64:68] = bytes(4)
    return bool(stored == (~sum(blank) & 0xFFFFFFFF))


def _geometry(size: int) -> int:
    """Cylinders/heads/sectors as the VHD specification computes them."""
    sectors = min(size // 512, 65535 * 16 * 255)
    if sectors >= 65535 * 16 * 63:
        per_track, heads = 255, 16
        cylinder_heads = sectors // per_track
    else:
        per_track = 17
        cylinder_heads = sectors // per_track
        heads = max(4, (cylinder_heads + 1023) // 1024)
        if cylinder_heads >= heads * 1024 or heads > 16:
            per_track, heads = 31, 16
            cylinder_heads = sectors // per_track
        if cylinder_heads >= heads * 1024:
            per_track, heads = 63, 16
            cylinder_heads = sectors // per_track
    cylinders = cylinder_heads // heads
    return (cylinders << 16) | (heads << 8) | per_track
