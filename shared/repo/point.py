"""Restore-point manifests and the block maps of disk images.

A point (``points/<id>``, envelope type POINT) is JSON: who, when, what (docs/format.md §Points).
For a disk image it holds the image size, the block size and one *map* reference per span of
``map_span`` blocks (null for a span without data). A map is itself a block (kind MAP_BLOCK) in
the packs, deduplicated like data, so an incremental point re-uses every map its parent had for
spans that did not change, and a 1 TiB disk needs only 64 small map references in its manifest:

    map block:  u32 version (1) | u32 count | count x (u32 block index within span, 32-byte block id)

entries sorted by index; an index absent from the map is a hole (reads as zeros).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field

__all__ = [
    "MAP_SPAN",
    "POINTS_PREFIX",
    "ImageMap",
    "Point",
    "decode_map",
    "encode_map",
    "new_point_id",
    "point_key",
]

POINTS_PREFIX = "points/"
MAP_SPAN = 16384
_MAP_HEADER = struct.Struct("<II")
_MAP_ENTRY = struct.Struct("<I32s")
_VERSION = 1


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
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Point:
        doc = json.loads(data)
        if doc.get("version") != _VERSION:
            raise ValueError(f"point version {doc.get('version')} is not supported")
        image = doc.get("image")
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
        )
