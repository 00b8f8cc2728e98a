"""Restore-point manifests and the block maps of disk images.

A point (``points/<id>``, envelope type POINT) is JSON: who, when, what (docs/format.md §Points).
For a disk image it holds the image size, the block size and one *map* reference per span of
``map_span`` blocks (null for a span without data). A map is itself a block (kind MAP_BLOCK) in
the packs, deduplicated like data, so an incremental point re-uses every map its parent had for
spans that did not change, and a 1 TiB disk needs only 64 small map references in its manifest:

    map block:  u32 version (1) | u32 count | count x (u32 block index within span, 32-byte block id)

entries sorted by index; an index absent from the map is a hole (reads as zeros).

A *file-set* point (kind "bacpac": the members of a zip archive) instead lists its members in
order, each with its size, archive metadata and the ids of its *chunk lists*: blocks (kind
FILE_LIST) of at most ``LIST_SPAN`` entries naming the member's content-defined chunks (kind
FILE_BLOCK) in order, so a 200 GB member costs a few dozen ids in the manifest:

    chunk list: u32 version (1) | u32 count | count x (32-byte chunk id, u32 chunk length)
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field

__all__ = [
    "LIST_SPAN",
    "MAP_SPAN",
    "POINTS_PREFIX",
    "Attr",
    "ChunkRef",
    "FileMember",
    "FileSet",
    "ImageMap",
    "Point",
    "decode_chunk_list",
    "decode_map",
    "encode_chunk_list",
    "encode_map",
    "new_point_id",
    "point_key",
]

POINTS_PREFIX = "points/"
MAP_SPAN = 16384
_MAP_HEADER = struct.Struct("<II")
_MAP_ENTRY = struct.Struct("<I32s")
_VERSION = 1
# 4096 entries x 36 bytes = 144 KiB per list: ~5 GiB of member content at ~1.2 MiB per chunk.
LIST_SPAN = 4096
_LIST_ENTRY = struct.Struct("<32sI")


def new_point_id() -> str:
    return os.urandom(8).hex()


def point_key(point_id: str) -> str:
    return POINTS_PREFIX + point_id


def encode_map(entries: dict[int, bytes]) -> bytes:
    parts = [_MAP_HEADER.pack(_VERSION, len(entries))]
    parts.extend(_MAP_ENTRY.pack(index, entries[index]) for index in sorted(entries))
    return b"".join(parts)


def decode_map(data: bytes, span: int) -> dict[int, bytes]:
    version, count = _MAP_HEADER.unpack_from(data)
    if version != _VERSION:
        raise ValueError(f"map version {version} is not supported")
    end = _MAP_HEADER.size + count * _MAP_ENTRY.size
    if end != len(data):
        raise ValueError("map length does not match its entry count")
    entries = dict(_MAP_ENTRY.iter_unpack(memoryview(data)[_MAP_HEADER.size :]))
    if any(index >= span for index in entries):
        raise ValueError("map entry outside its span")
    return entries


ChunkRef = tuple[bytes, int]
"""A chunk's block id and plaintext length."""


def encode_chunk_list(entries: list[ChunkRef]) -> bytes:
    if len(entries) > LIST_SPAN:
        raise ValueError(f"a chunk list holds at most {LIST_SPAN} entries")
    parts = [_MAP_HEADER.pack(_VERSION, len(entries))]
    parts.extend(_LIST_ENTRY.pack(block_id, length) for block_id, length in entries)
    return b"".join(parts)


def decode_chunk_list(data: bytes) -> list[ChunkRef]:
    if len(data) < _MAP_HEADER.size:
        raise ValueError("chunk list is shorter than its header")
    version, count = _MAP_HEADER.unpack_from(data)
    if version != _VERSION:
        raise ValueError(f"chunk list version {version} is not supported")
    if _MAP_HEADER.size + count * _LIST_ENTRY.size != len(data):
        raise ValueError("chunk list length does not match its entry count")
    return list(_LIST_ENTRY.iter_unpack(memoryview(data)[_MAP_HEADER.size :]))


@dataclass(frozen=True)
class ImageMap:
    size: int
    block_size: int
    map_span: int
    maps: list[bytes | None]

    @property
    def span_bytes(self) -> int:
        return self.block_size * self.map_span

    def to_dict(self) -> dict[str, object]:
        return {
            "size": self.size,
            "block_size": self.block_size,
            "map_span": self.map_span,
            "maps": [m.hex() if m else None for m in self.maps],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> ImageMap:
        maps = doc["maps"]
        if not isinstance(maps, list):
            raise ValueError("image maps must be a list")
        return cls(
            size=int(str(doc["size"])),
            block_size=int(str(doc["block_size"])),
            map_span=int(str(doc["map_span"])),
            maps=[bytes.fromhex(m) if m else None for m in maps],
        )


Attr = str | int | list[int]
"""A value of archive metadata in a manifest (binary values are base64 strings)."""


def _attrs(doc: object) -> dict[str, Attr]:
    if not isinstance(doc, dict):
        raise ValueError("attrs must be an object")
    out: dict[str, Attr] = {}
    for name, value in doc.items():
        if isinstance(value, list):
            out[str(name)] = [int(v) for v in value]
        elif isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"attr {name!r} has an unsupported type")
        else:
            out[str(name)] = value
    return out


@dataclass(frozen=True)
class FileMember:
    """One member of a file set: its content is the concatenation of its chunks, in list order."""

    name: str
    size: int
    lists: list[bytes]
    """Ids of the member's chunk lists (FILE_LIST blocks), in order."""
    attrs: dict[str, Attr] = field(default_factory=dict)
    """Container-specific metadata needed to rebuild the member (for zip: docs/format.md)."""

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "lists": [i.hex() for i in self.lists], "attrs": self.attrs}

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> FileMember:
        lists = doc["lists"]
        if not isinstance(lists, list):
            raise ValueError("member lists must be a list")
        return cls(
            name=str(doc["name"]),
            size=int(str(doc["size"])),
            lists=[bytes.fromhex(str(i)) for i in lists],
            attrs=_attrs(doc.get("attrs", {})),
        )


@dataclass(frozen=True)
class FileSet:
    """The content of a file-set point: members in order, and how they were chunked."""

    container: str
    """How the members are packaged on restore: "zip" for a BACPAC."""
    chunker: dict[str, str | int]
    """The chunker's name and parameters (shared.core.chunking.ChunkerSpec.to_dict)."""
    members: list[FileMember]
    attrs: dict[str, Attr] = field(default_factory=dict)
    """Container-level metadata (for zip: the archive comment)."""

    @property
    def size(self) -> int:
        return sum(m.size for m in self.members)

    def to_dict(self) -> dict[str, object]:
        return {
            "container": self.container,
            "chunker": self.chunker,
            "list_span": LIST_SPAN,
            "attrs": self.attrs,
            "members": [m.to_dict() for m in self.members],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> FileSet:
        members = doc["members"]
        chunker = doc["chunker"]
        if not isinstance(members, list) or not isinstance(chunker, dict):
            raise ValueError("file set members must be a list and its chunker an object")
        return cls(
            container=str(doc["container"]),
            chunker={str(k): v if isinstance(v, int) else str(v) for k, v in chunker.items()},
            members=[FileMember.from_dict(m) for m in members],
            attrs=_attrs(doc.get("attrs", {})),
        )


@dataclass(frozen=True)
class Point:
    point_id: str
    kind: str
    time: str
    """ISO 8601, UTC."""
    source: str
    host: str
    parent: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    image: ImageMap | None = None
    stats: dict[str, float] = field(default_factory=dict)
    files: FileSet | None = None
    """Set for file-set points (kind "bacpac"); image points leave it None."""

    def to_json(self) -> bytes:
        doc: dict[str, object] = {
            "version": _VERSION,
            "id": self.point_id,
            "kind": self.kind,
            "time": self.time,
            "source": self.source,
            "host": self.host,
            "parent": self.parent,
            "tags": self.tags,
            "stats": self.stats,
        }
        if self.image is not None:
            doc["image"] = self.image.to_dict()
        if self.files is not None:
            doc["files"] = self.files.to_dict()
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Point:
        doc = json.loads(data)
        if doc.get("version") != _VERSION:
            raise ValueError(f"point version {doc.get('version')} is not supported")
        image = doc.get("image")
        files = doc.get("files")
        return cls(
            point_id=str(doc["id"]),
            kind=str(doc["kind"]),
            time=str(doc["time"]),
            source=str(doc["source"]),
            host=str(doc.get("host", "")),
            parent=doc.get("parent"),
            tags={str(k): str(v) for k, v in doc.get("tags", {}).items()},
            image=ImageMap.from_dict(image) if image else None,
            stats={str(k): float(v) for k, v in doc.get("stats", {}).items()},
            files=FileSet.from_dict(files) if files else None,
        )
