"""BACPAC files: read and validate one for backup, and rebuild one from a file-set point.

A BACPAC is a zip archive (an OPC package) written by SqlPackage or the Azure SQL export service:

    model.xml                      the schema; Origin.xml holds its SHA-256
    Origin.xml                     export metadata and <Checksums><Checksum Uri="/model.xml">HEX
    DacMetadata.xml, [Content_Types].xml, _rels/.rels
    Data/<schema>.<table>/TableData-NNN-NNNNN.BCP   table rows in native BCP format

Backup validates the file before storing anything (a zip, with model.xml and Origin.xml, and
every checksum in Origin.xml matching its member), then hands each member to the engine as a
stream; zip CRCs are checked as members are read. Each member's zip metadata goes into the point
(docs/format.md, "File-set points"), so the rebuild writes the same member names, order, times
and attributes with the same content. The compressed bytes differ (deflate level, encoder), which
no reader of the package sees. The rebuild re-checks every member's CRC-32 and SHA-256 against
what the backup saw, and Origin.xml's checksums against the rebuilt members, before the file
appears under its final name.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO
from xml.etree import ElementTree

from shared.core.errors import IntegrityError, SourceError, UsageError
from shared.repo.point import Attr, FileMember, FileSet

__all__ = ["CONTAINER", "BacpacFile", "BacpacMember", "BacpacWriter", "TableInfo", "parse_origin", "read_tables"]

CONTAINER = "zip"
MODEL = "model.xml"
ORIGIN = "Origin.xml"
# Origin.xml is a few KiB; refusing more keeps a hostile file from costing memory.
_MAX_ORIGIN = 16 << 20
# Deflate level of the rebuilt archive: level 1 deflates BCP data at ~190 MB/s against ~55 at
# the default 6, for archives ~9 % larger (measured on AdventureWorksLT's members).
DEFAULT_DEFLATE_LEVEL = 1
_ZIP64_EXTRA = 0x0001
_EXTRA_HEADER = struct.Struct("<HH")
_TABLE_NAME = re.compile(r"^\[((?:[^\]]|\]\])+)\]\.\[((?:[^\]]|\]\])+)\]$")


@dataclass(frozen=True)
class TableInfo:
    """A table of the exported database. ``rows`` is None: a BACPAC records only the total
    (Origin.xml, ``BacpacFile.total_rows``), not per-table counts."""

    schema: str
    name: str
    data_members: int
    data_bytes: int
    rows: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "name": self.name,
            "data_members": self.data_members,
            "data_bytes": self.data_bytes,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class BacpacMember:
    name: str
    size: int
    attrs: dict[str, Attr]


@dataclass(frozen=True)
class Origin:
    checksums: dict[str, str]
    """Member name -> upper-case hex SHA-256, from <Checksum Uri="/name">."""
    total_rows: int | None


def parse_origin(data: bytes) -> Origin:
    """Checksums and row total of an Origin.xml; raises ValueError when it is not XML."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise ValueError(f"Origin.xml is not valid XML: {exc}") from exc
    checksums: dict[str, str] = {}
    total: int | None = None
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "Checksum":
            uri = element.get("Uri", "")
            checksums[uri.lstrip("/")] = (element.text or "").strip().upper()
        elif tag == "TableRowCountTotalTag" and (element.text or "").strip().isdigit():
            total = int((element.text or "").strip())
    return Origin(checksums, total)


def read_tables(model: IO[bytes], data_sizes: dict[str, list[int]]) -> list[TableInfo]:
    """Tables named by model.xml (streamed: it can be large), with the size of their data.

    ``data_sizes`` maps "<schema>.<table>" (the Data/ folder name) to its members' sizes.
    """
    tables: list[TableInfo] = []
    for _, element in ElementTree.iterparse(model, events=("end",)):
        if element.tag.rsplit("}", 1)[-1] != "Element":
            continue
        if element.get("Type") == "SqlTable":
            match = _TABLE_NAME.match(element.get("Name", ""))
            if match:
                schema, name = (part.replace("]]", "]") for part in match.groups())
                sizes = data_sizes.get(f"{schema}.{name}", [])
                tables.append(TableInfo(schema, name, len(sizes), sum(sizes)))
        element.clear()  # keep memory flat over a large model
    return tables


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _strip_zip64(extra: bytes) -> bytes:
    """The extra field without its zip64 record: the writer adds its own when sizes need it."""
    out = bytearray()
    pos = 0
    while pos + _EXTRA_HEADER.size <= len(extra):
        kind, length = _EXTRA_HEADER.unpack_from(extra, pos)
        end = pos + _EXTRA_HEADER.size + length
        if end > len(extra):
            return extra  # not a record list we understand: keep it as it was
        if kind != _ZIP64_EXTRA:
            out += extra[pos:end]
        pos = end
    return bytes(out) if pos == len(extra) else extra


def _zip_attrs(info: zipfile.ZipInfo) -> dict[str, Attr]:
    return {
        "date_time": list(info.date_time),
        "compress_type": info.compress_type,
        "external_attr": info.external_attr,
        "internal_attr": info.internal_attr,
        "create_system": info.create_system,
        "create_version": info.create_version,
        "extract_version": info.extract_version,
        "comment": _b64(info.comment),
        "extra": _b64(_strip_zip64(info.extra)),
        "crc32": info.CRC,
    }


class _MemberStream:
    """A member's decompressed bytes; zip and zlib failures become SourceError."""

    def __init__(self, raw: IO[bytes], path: Path, name: str) -> None:
        self._raw = raw
        self._path = path
        self._name = name

    def readinto(self, b: memoryview) -> int:
        try:
            data = self._raw.read(len(b))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise SourceError(
                f"the BACPAC {self._path} is damaged: member {self._name} cannot be read ({exc})",
                hint="export the database again",
            ) from exc
        b[: len(data)] = data
        return len(data)


class BacpacFile:
    """An open, validated BACPAC on the local file system (a FileSetSource for the engine)."""

    def __init__(self, path: Path, *, source_id: str | None = None) -> None:
        self._path = path
        self._source_id = source_id or str(path.resolve())
        if not path.exists():
            raise SourceError(f"the BACPAC {path} does not exist")
        if not path.is_file():
            raise SourceError(f"{path} is not a file", hint="give the path of a .bacpac file")
        try:
            self._zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise SourceError(
                f"{path} is not a BACPAC: it is not a zip archive",
                hint="give a .bacpac file exported by SqlPackage or the Azure SQL export service",
            ) from exc
        except OSError as exc:
            raise SourceError(f"cannot open the BACPAC {path}: {exc.strerror}") from exc
        try:
            self._infos = self._zip.infolist()
            self.origin = self._validate()
        except BaseException:
            self._zip.close()
            raise

    # -- validation ------------------------------------------------------------------------

    def _damaged(self, why: str) -> SourceError:
        return SourceError(f"the BACPAC {self._path} is damaged: {why}", hint="export the database again")

    def _find(self, name: str) -> zipfile.ZipInfo | None:
        # OPC part names are case-insensitive.
        return next((i for i in self._infos if i.filename.lower() == name.lower()), None)

    def _validate(self) -> Origin:
        names = [info.filename for info in self._infos]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise self._damaged(f"member {name} appears twice")
            seen.add(name)
        for info in self._infos:
            if info.flag_bits & 0x1:
                raise SourceError(f"{self._path}: member {info.filename} is encrypted, which no BACPAC is")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise SourceError(
                    f"{self._path}: member {info.filename} uses zip compression method {info.compress_type}, "
                    "which Bulwark does not read (BACPACs use deflate)"
                )
        for required in (MODEL, ORIGIN):
            if self._find(required) is None:
                raise SourceError(
                    f"{self._path} is not a BACPAC: it has no {required}",
                    hint="give a .bacpac file exported by SqlPackage or the Azure SQL export service",
                )
        origin_info = self._find(ORIGIN)
        assert origin_info is not None
        if origin_info.file_size > _MAX_ORIGIN:
            raise self._damaged(f"{ORIGIN} is {origin_info.file_size} bytes, far more than an Origin.xml holds")
        try:
            origin = parse_origin(self._read_whole(origin_info))
        except ValueError as exc:
            raise self._damaged(str(exc)) from exc
        if MODEL.lower() not in {name.lower() for name in origin.checksums}:
            raise self._damaged(f"{ORIGIN} holds no checksum of {MODEL}")
        for name, expected in origin.checksums.items():
            checked = self._find(name)
            if checked is None:
                raise self._damaged(f"{ORIGIN} has a checksum of {name}, which the archive lacks")
            if self._sha256(checked) != expected:
                raise self._damaged(f"{checked.filename} does not match its checksum in {ORIGIN}")
        return origin

    def _read_whole(self, info: zipfile.ZipInfo) -> bytes:
        with self._open_raw(info) as stream:
            buffer = bytearray(info.file_size)
            view = memoryview(buffer)
            got = 0
            while got < len(buffer):
                n = stream.readinto(view[got:])
                if n == 0:
                    break
                got += n
            return bytes(buffer[:got])

    def _sha256(self, info: zipfile.ZipInfo) -> str:
        digest = hashlib.sha256()
        buffer = memoryview(bytearray(1 << 20))
        with self._open_raw(info) as stream:
            while n := stream.readinto(buffer):
                digest.update(buffer[:n])
        return digest.hexdigest().upper()

    @contextmanager
    def _open_raw(self, info: zipfile.ZipInfo) -> Iterator[_MemberStream]:
        try:
            raw = self._zip.open(info)
        except (zipfile.BadZipFile, zlib.error, OSError, NotImplementedError) as exc:
            raise self._damaged(f"member {info.filename} cannot be opened ({exc})") from exc
        with raw:
            yield _MemberStream(raw, self._path, info.filename)

    # -- the FileSetSource port ------------------------------------------------------------

    @property
    def source_id(self) -> str:
        return self._source_id

    @property
    def container(self) -> str:
        return CONTAINER

    @property
    def attrs(self) -> dict[str, Attr]:
        return {"comment": _b64(self._zip.comment)}

    def members(self) -> list[BacpacMember]:
        checksums = {name.lower(): value for name, value in self.origin.checksums.items()}
        out = []
        for info in self._infos:
            attrs = _zip_attrs(info)
            if info.filename.lower() in checksums:
                # Recorded so the rebuild can prove the checksum holds before it publishes.
                attrs["sha256"] = checksums[info.filename.lower()]
            out.append(BacpacMember(info.filename, info.file_size, attrs))
        return out

    @contextmanager
    def open(self, name: str) -> Iterator[_MemberStream]:
        info = self._zip.getinfo(name)
        with self._open_raw(info) as stream:
            yield stream

    # -- browsing --------------------------------------------------------------------------

    @property
    def total_rows(self) -> int | None:
        return self.origin.total_rows

    def tables(self) -> list[TableInfo]:
        """The tables model.xml declares, with the number and bytes of their data members."""
        data_sizes: dict[str, list[int]] = {}
        for info in self._infos:
            parts = info.filename.split("/")
            if len(parts) == 3 and parts[0] == "Data":
                data_sizes.setdefault(parts[1], []).append(info.file_size)
        model = self._find(MODEL)
        assert model is not None
        try:
            with self._zip.open(model) as stream:
                return read_tables(stream, data_sizes)
        except ElementTree.ParseError as exc:
            raise self._damaged(f"{MODEL} is not valid XML: {exc}") from exc

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> BacpacFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _set_deflate_level(info: zipfile.ZipInfo, level: int) -> None:
    if sys.version_info >= (3, 13):
        info.compress_level = level
    else:
        info._compresslevel = level  # type: ignore[attr-defined]


def _number(member: FileMember, name: str, default: int) -> int:
    value = member.attrs.get(name, default)
    if not isinstance(value, int):
        raise IntegrityError(f"member {member.name}: zip metadata {name} is not a number")
    return value


def _blob(member: FileMember, name: str) -> bytes:
    value = member.attrs.get(name, "")
    try:
        if not isinstance(value, str):
            raise ValueError("not text")
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise IntegrityError(f"member {member.name}: zip metadata {name} is not base64 text") from exc


def _zip_info(member: FileMember, level: int) -> zipfile.ZipInfo:
    date_time = member.attrs.get("date_time")
    if not isinstance(date_time, list) or len(date_time) != 6:
        raise IntegrityError(f"member {member.name}: the point's zip metadata has no valid date_time")
    y, mo, d, h, mi, s = date_time
    info = zipfile.ZipInfo(member.name, date_time=(y, mo, d, h, mi, s))
    info.compress_type = _number(member, "compress_type", zipfile.ZIP_DEFLATED)
    info.internal_attr = _number(member, "internal_attr", 0)
    info.create_system = _number(member, "create_system", info.create_system)
    info.create_version = _number(member, "create_version", info.create_version)
    info.extract_version = _number(member, "extract_version", info.extract_version)
    info.comment = _blob(member, "comment")
    info.extra = _blob(member, "extra")
    info.file_size = member.size  # lets the writer choose zip64 up front for large members
    _set_deflate_level(info, level)
    return info


class _HashingSink:
    def __init__(self, stream: IO[bytes], digest: hashlib._Hash | None, keep: bytearray | None) -> None:
        self._stream = stream
        self._digest = digest
        self._keep = keep

    def write(self, data: bytes) -> int:
        if self._digest is not None:
            self._digest.update(data)
        if self._keep is not None:
            if len(self._keep) + len(data) > _MAX_ORIGIN:
                raise IntegrityError(f"the restored {ORIGIN} exceeds {_MAX_ORIGIN} bytes")
            self._keep += data
        return self._stream.write(data)


class BacpacWriter:
    """Rebuilds a BACPAC at ``target`` from a file-set point (a FileSetSink for the engine).

    Writes go to a temporary file beside the target, renamed into place only when every member
    is complete and every checksum holds; on any failure the temporary file is removed, so
    ``target`` either is the whole BACPAC or does not exist.
    """

    def __init__(
        self, target: Path, files: FileSet, *, overwrite: bool = False, deflate_level: int = DEFAULT_DEFLATE_LEVEL
    ) -> None:
        if files.container != CONTAINER:
            raise UsageError(f"the point holds a {files.container!r} file set, not a BACPAC")
        if target.exists() and not overwrite:
            raise UsageError(f"{target} already exists", hint="choose a new file, or pass --overwrite")
        if target.exists() and not target.is_file():
            raise UsageError(f"{target} is not a regular file", hint="restore into a file path")
        self._target = target
        self._files = files
        self._level = deflate_level
        self._temp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.partial")
        self._handle: IO[bytes] | None = None
        self._zip: zipfile.ZipFile | None = None
        self._digests: dict[str, str] = {}
        self._origin: bytes | None = None

    def __enter__(self) -> BacpacWriter:
        try:
            handle = self._temp.open("xb")
        except OSError as exc:
            raise UsageError(f"cannot create {self._target}: {exc.strerror}", hint="check the target folder") from exc
        self._handle = handle
        self._zip = zipfile.ZipFile(handle, "w", allowZip64=True)
        self._zip.comment = base64.b64decode(str(self._files.attrs.get("comment", "")))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc is None:
                self._finish()
        finally:
            self._discard()

    def _discard(self) -> None:
        """Close whatever is still open and remove the temporary file (gone after a success)."""
        zf, self._zip = self._zip, None
        if zf is not None:
            with suppress(OSError, ValueError):  # the archive is being discarded anyway
                zf.close()
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._temp.unlink(missing_ok=True)

    @contextmanager
    def member(self, member: FileMember) -> Iterator[_HashingSink]:
        assert self._zip is not None, "use BacpacWriter as a context manager"
        info = _zip_info(member, self._level)
        expected_sha = member.attrs.get("sha256")
        digest = hashlib.sha256() if isinstance(expected_sha, str) else None
        keep = bytearray() if member.name.lower() == ORIGIN.lower() else None
        with self._zip.open(info, "w") as stream:
            yield _HashingSink(stream, digest, keep)
        # The writer sets unset attributes to rw------- for the local header it wrote; the
        # central directory (written at close) gets the original value.
        info.external_attr = _number(member, "external_attr", 0)
        crc = member.attrs.get("crc32")
        if isinstance(crc, int) and crc != info.CRC:
            raise IntegrityError(f"rebuilt member {member.name} fails its CRC-32 check")
        if digest is not None:
            self._digests[member.name.lower()] = digest.hexdigest().upper()
            if self._digests[member.name.lower()] != expected_sha:
                raise IntegrityError(f"rebuilt member {member.name} does not match its SHA-256")
        if keep is not None:
            self._origin = bytes(keep)

    def _finish(self) -> None:
        if self._origin is None:
            raise IntegrityError(f"the point holds no {ORIGIN}: the rebuilt file would not be a BACPAC")
        try:
            origin = parse_origin(self._origin)
        except ValueError as exc:
            raise IntegrityError(f"the restored {ORIGIN} is not valid: {exc}") from exc
        for name, expected in origin.checksums.items():
            if self._digests.get(name.lower()) != expected:
                raise IntegrityError(f"the rebuilt {name} does not match its checksum in {ORIGIN}")
        assert self._zip is not None and self._handle is not None
        zf, self._zip = self._zip, None
        zf.close()  # writes the central directory
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        os.replace(self._temp, self._target)
