"""Disk images for file-level restore tests: a real ext4 file system (mkfs.ext4 -d), bare or
inside a GPT or MBR partition table written here (no sgdisk/sfdisk needed)."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import uuid
import zlib
from pathlib import Path

MiB = 1 << 20
SECTOR = 512
PART_OFFSET = MiB
MKFS = shutil.which("mkfs.ext4") or "/usr/sbin/mkfs.ext4"
LINUX_FS = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
MTIME = 1_700_000_000  # whole seconds: what every file of the tree is dated


def build_tree(root: Path) -> Path:
    """Text, binary, nested folders, a symlink, an empty file and a ~20 MiB file."""
    rng = random.Random(7)
    files = {
        "etc/hostname": b"web-01\n",
        "etc/app/config.toml": b"[server]\nport = 8080\n" * 50,
        "home/user/notes.txt": "Grüße, ünïcödé\n".encode() * 100,
        "home/user/data/blob.bin": rng.randbytes(300_000),
        "home/user/data/deep/er/still.txt": b"nested\n",
        "home/user/empty": b"",
        "var/big.bin": rng.randbytes(20 * MiB + 12345),
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.symlink("../../etc/hostname", root / "home/user/hostname-link")
    (root / "srv").mkdir()
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (MTIME, MTIME + zlib.crc32(path.name.encode()) % 1000), follow_symlinks=False)
    os.utime(root, (MTIME, MTIME))
    return root


def make_ext4(tree: Path, image: Path, size_mib: int = 64) -> Path:
    subprocess.run(
        [MKFS, "-q", "-F", "-b", "4096", "-d", str(tree), str(image), f"{size_mib}M"], check=True, capture_output=True
    )
    return image


def _guid() -> bytes:
    return uuid.uuid4().bytes_le


def _gpt_header(current: int, backup: int, entries_lba: int, last: int, disk_guid: bytes, entries_crc: int) -> bytes:
    fields = [b"EFI PART", 0x00010000, 92, 0, 0, current, backup, 34, last - 34, disk_guid, entries_lba, 128, 128]
    header = struct.pack("<8sIIIIQQQQ16sQII", *fields) + struct.pack("<I", entries_crc)
    crc = zlib.crc32(header)
    header = header[:16] + struct.pack("<I", crc) + header[20:]
    return header.ljust(SECTOR, b"\0")


def _mbr(entries: list[tuple[int, int, int]]) -> bytes:
    """Boot sector with up to four (type, first LBA, sector count) entries."""
    table = b"".join(
        struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", kind, b"\xff\xff\xff", first, count)
        for kind, first, count in entries
    )
    return bytes(446) + table.ljust(64, b"\0") + b"\x55\xaa"


def make_partitioned(fs_image: Path, disk: Path, scheme: str) -> Path:
    """``fs_image`` as partition 1 at 1 MiB of a GPT or MBR disk with 1 MiB free at the end."""
    fs_size = fs_image.stat().st_size
    total = (PART_OFFSET + fs_size + MiB) // SECTOR
    first, count = PART_OFFSET // SECTOR, fs_size // SECTOR
    with disk.open("wb") as out:
        out.truncate(total * SECTOR)
        if scheme == "mbr":
            out.write(_mbr([(0x83, first, count)]))
        else:
            out.write(_mbr([(0xEE, 1, min(total - 1, 0xFFFFFFFF))]))
            entry = struct.pack(
                "<16s16sQQQ72s", LINUX_FS.bytes_le, _guid(), first, first + count - 1, 0, "rootfs".encode("utf-16-le")
            )
            entries = entry.ljust(128 * 128, b"\0")
            crc = zlib.crc32(entries)
            disk_guid = _guid()
            out.seek(SECTOR)
            out.write(_gpt_header(1, total - 1, 2, total - 1, disk_guid, crc))
            out.write(entries)
            out.seek((total - 33) * SECTOR)
            out.write(entries)
            out.write(_gpt_header(total - 1, 1, total - 33, total - 1, disk_guid, crc))
        out.seek(PART_OFFSET)
        with fs_image.open("rb") as src:
            shutil.copyfileobj(src, out, MiB)
    return disk
