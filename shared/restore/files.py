"""File-level restore: partitions, file systems, and files read on demand from an image point.

The disk image is never restored: an :class:`~shared.engine.image_reader.ImagePointReader` gives
the parsers random access to it, so listing a folder reads a few metadata blocks and extracting a
file reads its own blocks, not the disk. Partition tables and file systems are parsed by the
dissect libraries (dissect.volume for MBR and GPT, dissect.extfs for ext2/3/4, dissect.ntfs for
NTFS); this module adapts them to one small interface and maps their failures to Bulwark errors.

Paths name a volume and a path inside it: ``p2:/etc/hostname`` is /etc/hostname on partition 2;
``/etc/hostname`` alone works when the disk holds a single readable file system (a partitioned
disk with one, or a file system written on the whole disk).

Extraction writes under temporary names inside the output folder and renames into place only when
everything was read and authenticated, so a failure leaves nothing half-written. Names are
checked one component at a time and files are created exclusively without following links, so
nothing is written outside the output folder whatever the file system contains.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from shared.core.errors import BulwarkError, IntegrityError, SourceError, UnsupportedDiskError, UsageError
from shared.engine.image_reader import ImagePointReader

__all__ = [
    "Disk",
    "Entry",
    "ExtractResult",
    "FileSystem",
    "Volume",
    "extract",
]

_COPY_CHUNK = 1 << 20
_SUPPORTED = "ext2/3/4 and NTFS"
_PATH_SPEC = re.compile(r"^p(\d+):(.*)$")

# Signatures of file systems and containers Bulwark cannot open, so that an error can say what
# it found: (offset, magic, description).
_OTHER_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"XFSB", "XFS"),
    (0x10040, b"_BHRfS_M", "Btrfs"),
    (0, b"LUKS\xba\xbe", "a LUKS encrypted volume"),
    (3, b"-FVE-FS-", "a BitLocker encrypted volume"),
    (0x218, b"LVM2 001", "an LVM physical volume"),
    (0x1018, b"LVM2 001", "an LVM physical volume"),
    (4086, b"SWAPSPACE2", "Linux swap"),
    (3, b"ReFS\x00", "ReFS"),
    (0x52, b"FAT32   ", "FAT32"),
    (0x36, b"FAT16   ", "FAT16"),
    (0x36, b"FAT12   ", "FAT12"),
    (0x8001, b"CD001", "an ISO 9660 image"),
)


@dataclass(frozen=True)
class Entry:
    """One file, folder or link of a file system."""

    name: str
    path: str
    kind: str
    """"file", "dir", "symlink" or "other" (devices, pipes, sockets)."""
    size: int
    mtime_ns: int
    mode: int
    """st_mode: file type and permission bits."""
    target: str | None = None
    """A symlink's target."""
    handle: Any = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "name": self.name,
            "path": self.path,
            "type": self.kind,
            "size": self.size,
            "mtime": _iso_time(self.mtime_ns),
            "mtime_ns": self.mtime_ns,
            "mode": self.mode,
        }
        if self.target is not None:
            doc["target"] = self.target
        return doc


class FileSystem(Protocol):
    """What listing and extraction need from a file system."""

    @property
    def kind(self) -> str: ...

    def lookup(self, path: str) -> Entry:
        """The entry at an absolute path; links are not followed. Raises UsageError if none."""
        ...

    def children(self, entry: Entry) -> list[Entry]:
        """A folder's entries by name, without "." and ".."."""
        ...

    def open(self, entry: Entry) -> IO[bytes]: ...


@dataclass(frozen=True)
class Volume:
    """A partition, or the whole disk when it holds a file system without a partition table."""

    number: int
    """Partition number (1-based), or 0 for a file system on the whole disk."""
    offset: int
    size: int
    type: str
    """The partition type as the table states it."""
    name: str
    filesystem: str | None
    """"ext2", "ext3", "ext4" or "ntfs" when Bulwark can read it, else None."""
    found: str
    """What the volume holds, for people: a file system name or "unknown content"."""

    @property
    def label(self) -> str:
        return f"p{self.number}" if self.number else "disk"

    def to_dict(self) -> dict[str, object]:
        return {
            "partition": self.number,
            "name": self.label,
            "offset": self.offset,
            "size": self.size,
            "type": self.type,
            "label": self.name,
            "filesystem": self.filesystem,
            "found": self.found,
        }


class Disk:
    """The partitions and file systems of one image point, read on demand."""

    def __init__(self, reader: ImagePointReader) -> None:
        self.reader = reader
        self.scheme, self.volumes = self._scan()
        self._open: dict[int, FileSystem] = {}

    # -- volumes ---------------------------------------------------------------------------

    def _scan(self) -> tuple[str, list[Volume]]:
        reader = self.reader
        with self._parsing("the disk"):
            whole = _identify(reader, 0, reader.size)
            if whole[0] is not None:
                return "none", [Volume(0, 0, reader.size, "whole disk", "", whole[0], whole[1])]
            from dissect.volume.disk import Disk as DissectDisk  # type: ignore[import-untyped]
            from dissect.volume.exceptions import DiskError  # type: ignore[import-untyped]

            try:
                reader.seek(0)
                disk = DissectDisk(reader)
            except DiskError:
                if reader.failure is not None:
                    raise reader.failure from None
                return "none", [Volume(0, 0, reader.size, "whole disk", "", None, whole[1])]
            scheme = type(disk.scheme).__name__.lower()
            volumes = []
            for part in disk.partitions:
                if part.type in (0x00, 0x05, 0x0F, 0x85, 0xEE):  # empty, extended containers, GPT protective
                    continue
                size = int(part.size)
                raw = getattr(part, "raw", None)
                if scheme == "gpt" and raw is not None:  # dissect leaves out the inclusive last sector
                    size = (int(raw.last_lba) - int(raw.first_lba) + 1) * disk.sector_size
                offset = int(part.offset)
                size = max(0, min(size, reader.size - offset))
                filesystem, found = _identify(reader, offset, size)
                volumes.append(
                    Volume(int(part.number), offset, size, str(part.type_str), part.name or "", filesystem, found)
                )
        return scheme, volumes

    def volume(self, number: int) -> Volume:
        for volume in self.volumes:
            if volume.number == number:
                return volume
        numbers = ", ".join(v.label for v in self.volumes) or "none"
        raise UsageError(f"the disk has no partition {number}", hint=f"its partitions: {numbers}")

    def resolve(self, spec: str) -> tuple[Volume, str]:
        """The volume and the absolute path inside it that ``p<N>:PATH`` or ``PATH`` names."""
        match = _PATH_SPEC.match(spec)
        if match:
            volume, path = self.volume(int(match.group(1))), match.group(2)
        else:
            readable = [v for v in self.volumes if v.filesystem is not None]
            if len(readable) != 1:
                if not readable:
                    self._unsupported(None)
                names = ", ".join(f"{v.label} ({v.filesystem})" for v in readable)
                raise UsageError(
                    f"the disk holds {len(readable)} file systems: {names}; say which one",
                    hint=f"write the path as {readable[0].label}:{spec or '/'}",
                )
            volume, path = readable[0], spec
        return volume, posixpath.normpath("/" + path.lstrip("/"))

    def filesystem(self, volume: Volume) -> FileSystem:
        opened = self._open.get(volume.number)
        if opened is not None:
            return opened
        if volume.filesystem is None:
            self._unsupported(volume)
        where = f"{volume.label} ({volume.filesystem})"
        with self._parsing(where):
            from dissect.util.stream import RangeStream  # type: ignore[import-untyped]

            stream = RangeStream(self.reader, volume.offset, volume.size)
            fs: FileSystem
            if volume.filesystem == "ntfs":
                fs = _NtfsFileSystem(stream, self._parsing, where)
            else:
                fs = _ExtFileSystem(stream, self._parsing, where)
        self._open[volume.number] = fs
        return fs

    def _unsupported(self, volume: Volume | None) -> None:
        if volume is None:
            found = "; ".join(f"{v.label}: {v.found}" for v in self.volumes) or (
                "no partition table (MBR or GPT) and no file system at the start of the disk"
            )
            raise UnsupportedDiskError(
                f"the disk holds no file system Bulwark can read ({found})", hint=f"supported: {_SUPPORTED}"
            )
        raise UnsupportedDiskError(
            f"partition {volume.label} ({volume.type}) holds {volume.found}, which Bulwark cannot read",
            hint=f"supported: {_SUPPORTED}",
        )

    # -- errors ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _parsing(self, where: str) -> Iterator[None]:
        """Maps a parser's failure to a Bulwark error: a damaged block it read (it may have swallowed
        that error itself) is an IntegrityError, anything else an unreadable file system."""
        try:
            yield
        except BulwarkError:
            raise
        except Exception as exc:
            if self.reader.failure is not None:
                raise self.reader.failure from exc
            raise SourceError(
                f"{where} cannot be read: {type(exc).__name__}: {exc}",
                hint="the file system may be damaged or use a feature the parser does not support",
            ) from exc


Parsing = Callable[[str], contextlib.AbstractContextManager[None]]


def _identify(reader: ImagePointReader, offset: int, size: int) -> tuple[str | None, str]:
    """(readable file system kind or None, what the volume holds in words)."""

    def at(position: int, length: int) -> bytes:
        if position + length > size:
            return b""
        reader.seek(offset + position)
        return reader.read(length)

    superblock = at(1024, 1024)
    if len(superblock) == 1024 and superblock[56:58] == b"\x53\xef":
        compat, incompat = (int.from_bytes(superblock[o : o + 4], "little") for o in (92, 96))
        kind = "ext4" if incompat & 0x40 else "ext3" if compat & 0x4 else "ext2"  # extents, journal
        return kind, kind
    if at(3, 8) == b"NTFS    ":
        return "ntfs", "NTFS"
    for position, magic, description in _OTHER_SIGNATURES:
        if at(position, len(magic)) == magic:
            return None, description
    if not any(at(0, 4096)):
        return None, "no data at its start (empty or unformatted)"
    return None, "unknown content"


class _ExtFileSystem:
    def __init__(self, stream: IO[bytes], parsing: Parsing, where: str) -> None:
        from dissect.extfs import ExtFS  # type: ignore[import-untyped]

        self._parsing = parsing
        self._where = where
        self._fs = ExtFS(stream)
        self.kind = {2: "ext2", 3: "ext3", 4: "ext4"}.get(int(self._fs.type), "ext")

    def lookup(self, path: str) -> Entry:
        node = self._fs.root
        with self._parsing(self._where):
            for part in [p for p in path.split("/") if p]:
                if node.filetype != stat.S_IFDIR:
                    raise UsageError(f"{self._where}: {path} does not exist ({part!r} is under a file, not a folder)")
                for child in node.iterdir():
                    if child.filename == part:
                        node = child
                        break
                else:
                    raise UsageError(f"{self._where}: no file or folder {path}", hint="list the folder with `files ls`")
            return self._entry(node, posixpath.basename(path), path)

    def children(self, entry: Entry) -> list[Entry]:
        with self._parsing(self._where):
            nodes = [n for n in entry.handle.iterdir() if n.filename not in (".", "..")]
            entries = [self._entry(n, n.filename, posixpath.join(entry.path, n.filename)) for n in nodes]
        return sorted(entries, key=lambda e: e.name)

    def open(self, entry: Entry) -> IO[bytes]:
        with self._parsing(self._where):
            stream: IO[bytes] = entry.handle.open()
            return stream

    def _entry(self, node: Any, name: str, path: str) -> Entry:
        mode = int(node.inode.i_mode)
        kind = _kind_of(mode)
        target = str(node.link) if kind == "symlink" else None
        size = int(node.size)
        return Entry(name, path, kind, size, int(node.mtime_ns), mode, target, node)


class _NtfsFileSystem:
    """NTFS through dissect.ntfs: files, folders and symlinks (reparse points) of the default stream.

    Not covered by the tests of this repository (no mkntfs on the build machines)."""

    kind = "ntfs"

    def __init__(self, stream: IO[bytes], parsing: Parsing, where: str) -> None:
        from dissect.ntfs import NTFS  # type: ignore[import-untyped]

        self._parsing = parsing
        self._where = where
        self._fs = NTFS(stream)

    def lookup(self, path: str) -> Entry:
        from dissect.ntfs.exceptions import Error as NtfsError  # type: ignore[import-untyped]

        with self._parsing(self._where):
            try:
                record = self._fs.mft.get(path) if path != "/" else self._fs.mft.root
            except (NtfsError, FileNotFoundError, NotADirectoryError) as exc:
                raise UsageError(
                    f"{self._where}: no file or folder {path}", hint="list the folder with `files ls`"
                ) from exc
            return self._entry(record, posixpath.basename(path), path)

    def children(self, entry: Entry) -> list[Entry]:
        entries = []
        with self._parsing(self._where):
            for index_entry in entry.handle.iterdir(ignore_dos=True):
                name = str(index_entry.attribute.file_name)
                if name == "." or (entry.path == "/" and name.startswith("$")):
                    continue  # the metadata files of the root ($MFT, $Bitmap, ...)
                record = index_entry.dereference()
                entries.append(self._entry(record, name, posixpath.join(entry.path, name)))
        return sorted(entries, key=lambda e: e.name)

    def open(self, entry: Entry) -> IO[bytes]:
        with self._parsing(self._where):
            stream: IO[bytes] = entry.handle.open()
            return stream

    def _entry(self, record: Any, name: str, path: str) -> Entry:
        from dissect.ntfs.c_ntfs import ATTRIBUTE_TYPE_CODE  # type: ignore[import-untyped]

        mtime_ns = 0
        info = record.attributes[ATTRIBUTE_TYPE_CODE.STANDARD_INFORMATION]
        if info:
            mtime_ns = int(info[0].last_modification_time_ns)
        target = None
        if record.is_symlink():
            kind, mode, size = "symlink", stat.S_IFLNK | 0o777, 0
            target = str(record.reparse_point_name).replace("\\", "/")
        elif record.is_dir():
            kind, mode, size = "dir", stat.S_IFDIR | 0o755, 0
        else:
            kind, mode = "file", stat.S_IFREG | 0o644
            size = int(record.size()) if record.has_stream() else 0
        return Entry(name, path, kind, size, mtime_ns, mode, target, record)


def _kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _iso_time(ns: int) -> str:
    from datetime import UTC, datetime

    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"


# -- extraction ---------------------------------------------------------------------------------


@dataclass
class ExtractResult:
    path: Path
    files: int = 0
    folders: int = 0
    symlinks: int = 0
    bytes_written: int = 0
    skipped: list[str] = field(default_factory=list)
    """Devices, pipes and sockets: not recreated."""

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "files": self.files,
            "folders": self.folders,
            "symlinks": self.symlinks,
            "bytes_written": self.bytes_written,
            "skipped": self.skipped,
        }


def extract(
    fs: FileSystem,
    entry: Entry,
    out_dir: Path,
    *,
    name: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExtractResult:
    """Write ``entry`` (a file, a link, or a folder with everything under it) as OUT_DIR/NAME.

    Everything is written under a temporary name first and renamed into place at the end; on any
    failure the temporary tree is removed and an existing OUT_DIR/NAME is left as it was."""
    final_name = name if name is not None else entry.name
    _check_name(final_name, entry.path)
    if entry.kind == "other":
        raise UsageError(f"{entry.path} is a device, pipe or socket: there is nothing to extract")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {out_dir}: {exc.strerror}") from exc
    final = out_dir / final_name
    if os.path.lexists(final) and not overwrite:
        raise UsageError(f"{final} exists; nothing was written", hint="pass --overwrite to replace it")
    temp = out_dir / f".{final_name[:64]}.bulwark-{os.urandom(4).hex()}.tmp"
    result = ExtractResult(final)
    try:
        _write(fs, entry, temp, result, progress)
        _move_into_place(temp, final, out_dir)
    except BaseException:
        _remove(temp)
        raise
    return result


def _write(
    fs: FileSystem, entry: Entry, target: Path, result: ExtractResult, progress: Callable[[int], None] | None
) -> None:
    try:
        if entry.kind == "dir":
            target.mkdir(mode=0o700)
            for child in fs.children(entry):
                _check_name(child.name, child.path)
                if child.kind == "other":
                    result.skipped.append(child.path)
                    continue
                _write(fs, child, target / child.name, result, progress)
            os.chmod(target, (entry.mode & 0o777) | 0o700)
            os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns))
            result.folders += 1
        elif entry.kind == "symlink":
            os.symlink(entry.target or "", target)
            with contextlib.suppress(NotImplementedError, OSError):
                os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
            result.symlinks += 1
        else:
            result.bytes_written += _write_file(fs, entry, target, progress)
            result.files += 1
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc


def _write_file(fs: FileSystem, entry: Entry, target: Path, progress: Callable[[int], None] | None) -> int:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    written = 0
    with os.fdopen(fd, "wb") as out:
        source = fs.open(entry)
        while written < entry.size:
            chunk = source.read(min(_COPY_CHUNK, entry.size - written))
            if not chunk:
                raise IntegrityError(
                    f"{entry.path} ends after {written} of its {entry.size} bytes",
                    hint="the file system in the image may be damaged",
                )
            out.write(chunk)
            written += len(chunk)
            if progress is not None:
                progress(len(chunk))
        os.fchmod(out.fileno(), entry.mode & 0o777)
    os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns))
    return written


def _move_into_place(temp: Path, final: Path, out_dir: Path) -> None:
    if not os.path.lexists(final):
        os.rename(temp, final)
        return
    aside = out_dir / f".{final.name[:64]}.bulwark-{os.urandom(4).hex()}.old"
    os.rename(final, aside)
    try:
        os.rename(temp, final)
    except BaseException:
        os.rename(aside, final)
        raise
    _remove(aside)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _check_name(name: str, path: str) -> None:
    """A single, ordinary path component: anything else could write outside the output folder."""
    if name in ("", ".", "..") or "/" in name or "\x00" in name or len(name.encode(errors="surrogateescape")) > 255:
        raise SourceError(
            f"refusing to extract {path!r}: its name {name!r} is not a plain file name",
            hint="nothing is written outside the output folder",
        )
