"""Browse restore points: what a catalog point holds, read from the repository on demand.

* BACPAC points: the tables model.xml declares, each with its data size and its row count
  (``shared.sources.bacpac_rows``), and the export's own total from Origin.xml. Only model.xml,
  Origin.xml and the table data members are read from the repository, never a rebuilt archive.
* Image points (one repository point per disk): each disk's partitions and file systems, folder
  listings and single files (``shared.restore.files``: dissect over an ImagePointReader, which
  fetches only the blocks the parsers touch).
* Snapshot points live outside the repository: their disks and snapshot ids only.

The repository's passphrase is resolved from the point's policy reference inside these calls and
never leaves them.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Protocol

from shared.catalog.model import PointKind, RestorePoint, to_dict
from shared.catalog.port import Catalog
from shared.core.errors import FieldProblem, IntegrityError, InvalidDocumentError, UsageError
from shared.engine.image_reader import ImagePointReader
from shared.policy.model import Policy
from shared.repo import walk
from shared.repo.point import Point
from shared.repo.repository import Repository
from shared.restore.files import Disk, Entry, FileSystem
from shared.sources.bacpac import parse_origin
from shared.sources.bacpac_rows import TableRows, count_rows, parse_layouts

from .job_spec import RepositoryRef
from .ports import RepositoryOpener, SecretResolver

__all__ = ["BrowsePolicies", "FileDownload", "PointBrowser"]

_SUBJECT = "the browse request"
MAX_COUNTED_BYTES = 256 << 20
"""Table data walked for row counts per point; past it the counts are left out (null)."""


class BrowsePolicies(Protocol):
    def policy(self, policy_id: str) -> Policy: ...

    def repository(self, policy: Policy) -> RepositoryRef: ...


@dataclass(frozen=True)
class FileDownload:
    """A file of an image point, opened for reading (``stream`` is positioned at its start)."""

    entry: Entry
    stream: IO[bytes]


class PointBrowser:
    def __init__(
        self,
        *,
        catalog: Catalog,
        policies: BrowsePolicies,
        secrets: SecretResolver,
        repositories: RepositoryOpener,
    ) -> None:
        self._catalog = catalog
        self._policies = policies
        self._secrets = secrets
        self._repositories = repositories

    def contents(self, point_id: str) -> dict[str, Any]:
        """The catalog's record of the point and what it holds: ``tables`` or ``disks``."""
        point = self._catalog.get_point(point_id)
        document: dict[str, Any] = {"point": to_dict(point)}
        if point.kind is PointKind.SNAPSHOT:
            document["contents"] = None
            document["note"] = "a snapshot point is outside the repository: restore it to browse its files"
            return document
        repo = self._open(point)
        if point.kind is PointKind.BACPAC:
            stored = repo.load_point(repo.resolve_point(point.repository_point_id or ""))
            tables, total = bacpac_tables(repo, stored)
            document["tables"] = [t.to_dict() for t in tables]
            document["total_rows"] = total
            document["members"] = len(walk.files_of(stored).members)
            return document
        disks = []
        for label, stored in self._disks(repo, point):
            disk = Disk(ImagePointReader(repo, stored))
            disks.append(
                {
                    "disk": label,
                    "repository_point_id": stored.point_id,
                    "size": disk.reader.size,
                    "scheme": disk.scheme,
                    "partitions": [v.to_dict() for v in disk.volumes],
                }
            )
        document["disks"] = disks
        return document

    def list_folder(self, point_id: str, path: str, disk: str | None) -> dict[str, Any]:
        with self._filesystem(point_id, path, disk) as (label, volume, fs, inner):
            entry = fs.lookup(inner)
            entries = fs.children(entry) if entry.kind == "dir" else [entry]
            return {
                "point": point_id,
                "disk": label,
                "partition": volume,
                "filesystem": fs.kind,
                "path": inner,
                "type": entry.kind,
                "entries": [e.to_dict() for e in entries],
            }

    @contextmanager
    def open_file(self, point_id: str, path: str, disk: str | None) -> Iterator[FileDownload]:
        with self._filesystem(point_id, path, disk) as (_, _, fs, inner):
            entry = fs.lookup(inner)
            if entry.kind != "file":
                raise InvalidDocumentError(
                    _SUBJECT,
                    [FieldProblem("path", f"'{inner}' is a {entry.kind}, not a file", "list it with .../files?path=")],
                )
            stream = fs.open(entry)
            try:
                yield FileDownload(entry, stream)
            finally:
                stream.close()

    # -- internals ---------------------------------------------------------------------------

    def _open(self, point: RestorePoint) -> Repository:
        if not point.repository_point_id:
            raise UsageError(f"restore point '{point.point_id}' names no repository point")
        repository = self._policies.repository(self._policies.policy(point.policy_id))
        passphrase = self._secrets.resolve(repository.passphrase)
        try:
            return self._repositories.open(repository.location, passphrase)
        finally:
            del passphrase

    def _disks(self, repo: Repository, point: RestorePoint) -> list[tuple[str, Point]]:
        """``(label, repository point)`` per disk: "os" or the LUN."""
        if point.disks:
            chosen = [(("os" if d.lun is None else str(d.lun)), d.repository_point_id) for d in point.disks]
        else:
            ids = (point.repository_point_id or "").split(",")
            chosen = [("os" if i == 0 else str(i - 1), p) for i, p in enumerate(ids)]
        return [(label, repo.load_point(repo.resolve_point(pid))) for label, pid in chosen if pid]

    @contextmanager
    def _filesystem(self, point_id: str, path: str, disk: str | None) -> Iterator[tuple[str, int, FileSystem, str]]:
        if not path:
            raise InvalidDocumentError(
                _SUBJECT, [FieldProblem("path", "is missing", "give [pN:]/path, e.g. p1:/etc (see .../contents)")]
            )
        point = self._catalog.get_point(point_id)
        if point.kind is not PointKind.IMAGE:
            raise InvalidDocumentError(
                _SUBJECT,
                [
                    FieldProblem(
                        "point", f"'{point_id}' is a {point.kind.value} point", "files are listed in image points"
                    )
                ],
            )
        repo = self._open(point)
        disks = self._disks(repo, point)
        labels = [label for label, _ in disks]
        wanted = disk or labels[0]
        found = [stored for label, stored in disks if label == wanted]
        if not found:
            raise InvalidDocumentError(
                _SUBJECT, [FieldProblem("disk", f"the point has no disk '{wanted}'", f"use one of {', '.join(labels)}")]
            )
        image = Disk(ImagePointReader(repo, found[0]))
        volume, inner = image.resolve(path)
        yield wanted, volume.number, image.filesystem(volume), posixpath.normpath(inner)


def bacpac_tables(
    repo: Repository, point: Point, *, max_bytes: int = MAX_COUNTED_BYTES
) -> tuple[list[TableRows], int | None]:
    """The tables of a BACPAC point with their row counts (``shared.sources.bacpac_rows``) and the
    export's row total from Origin.xml. Reads model.xml, Origin.xml and the data members only."""
    files = walk.files_of(point)
    index = repo.load_index()
    members = {m.name: m for m in files.members}

    def pieces(name: str) -> Iterator[bytes]:
        member = members[name]
        for chunk_id, _ in walk.member_chunks(repo, index, point, member):
            location = index.get(chunk_id)
            if location is None:
                raise IntegrityError(
                    f"point {point.point_id}: a chunk of {name} is missing from the index",
                    hint="run `bulwark verify`",
                )
            yield repo.read_block(location)

    model_name = next((n for n in members if n.lower() == "model.xml"), None)
    origin_name = next((n for n in members if n.lower() == "origin.xml"), None)
    if model_name is None or origin_name is None:
        raise IntegrityError(f"point {point.point_id} holds no model.xml or Origin.xml: it is not a BACPAC")
    layouts = parse_layouts(b"".join(pieces(model_name)))
    total = parse_origin(b"".join(pieces(origin_name))).total_rows
    data: dict[str, list[str]] = {}
    for name in members:
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "Data":
            data.setdefault(parts[1], []).append(name)
    budget = max_bytes
    tables: list[TableRows] = []
    for key, layout in layouts.items():
        schema, _, table = key.partition(".")
        names = sorted(data.get(key, []))
        size = sum(members[n].size for n in names)
        rows: int | None = 0
        if names:
            budget -= size
            rows = count_rows(layout, (p for n in names for p in pieces(n))) if budget >= 0 else None
        tables.append(TableRows(schema, table, size, len(names), rows))
    counted = [t.rows for t in tables]
    if total is not None and None not in counted and sum(r or 0 for r in counted) != total:
        tables = [TableRows(t.schema, t.name, t.data_bytes, t.data_members, None) for t in tables]
    return tables, total


def read_range(stream: IO[bytes], offset: int, length: int) -> bytes:
    """``length`` bytes of ``stream`` from ``offset`` (fewer at its end)."""
    stream.seek(offset, io.SEEK_SET)
    parts: list[bytes] = []
    left = length
    while left > 0:
        data = stream.read(min(left, 1 << 20))
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)
