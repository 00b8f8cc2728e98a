"""``verify``: is every restore point restorable, and if not, which are affected and why.

Structure check (default): every index object opens; every indexed pack exists, is long enough
and its trailer agrees with the index; every point opens and every block it references is
indexed in a healthy pack. With ``read_data`` every pack is read whole and every block is
decrypted, decompressed and re-hashed against its id.

Packs that no index names (left by an interrupted backup) are not damage: ``prune`` removes them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.core.crypto import DecryptionFailed
from shared.core.envelope import EnvelopeError
from shared.core.errors import BlobNotFoundError, IntegrityError, RepositoryError
from shared.repo.index import Index
from shared.repo.pack import PACKS_PREFIX, PackEntry, check_block, pack_key, read_trailer
from shared.repo.repository import Repository
from shared.repo.walk import point_references

__all__ = ["Problem", "VerifyReport", "verify_repository"]


@dataclass
class Problem:
    name: str
    """The damaged object (a storage key)."""
    message: str
    points: list[str] = field(default_factory=list)
    """Restore points that cannot be restored in full because of it."""

    def to_dict(self) -> dict[str, object]:
        return {"object": self.name, "message": self.message, "points": self.points}


@dataclass
class VerifyReport:
    points: int = 0
    packs: int = 0
    blocks: int = 0
    bytes_read: int = 0
    unreferenced_packs: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "points": self.points,
            "packs": self.packs,
            "blocks": self.blocks,
            "bytes_read": self.bytes_read,
            "unreferenced_packs": self.unreferenced_packs,
            "problems": [p.to_dict() for p in self.problems],
        }


def _stored_packs(repo: Repository) -> dict[str, int]:
    return {info.key.rsplit("/", 1)[-1]: info.size for info in repo.store.list(PACKS_PREFIX)}


class _Verifier:
    def __init__(self, repo: Repository, read_data: bool, progress: Callable[[int], None] | None) -> None:
        self.repo = repo
        self.read_data = read_data
        self.progress = progress
        self.report = VerifyReport()
        self.index = Index()  # healthy locations only
        self.bad_blocks: dict[bytes, Problem] = {}

    def problem(self, name: str, message: str) -> Problem:
        found = Problem(name, message)
        self.report.problems.append(found)
        return found

    def run(self) -> VerifyReport:
        indexed: dict[str, list[PackEntry]] = {}
        for name in self.repo.index_names():
            try:
                for pack_id, entries in self.repo.read_index_object(name):
                    indexed.setdefault(pack_id, []).extend(entries)
            except IntegrityError as exc:
                self.problem(name, exc.message)
            except BlobNotFoundError:
                continue
        stored = _stored_packs(self.repo)
        for pack_id, entries in indexed.items():
            self.check_pack(pack_id, entries, stored.get(pack_id))
        self.report.packs = len(stored)
        for pack_id in sorted(stored.keys() - indexed.keys()):
            self.report.unreferenced_packs += 1
            self.recover_orphan(pack_id, stored[pack_id])
        self.check_points()
        return self.report

    def check_pack(self, pack_id: str, entries: list[PackEntry], size: int | None) -> None:
        name = pack_key(pack_id)
        if size is None:
            self.mark_bad(entries, self.problem(name, "pack is missing"))
            return
        needed = max(e.offset + e.length for e in entries)
        if size < needed:
            self.mark_bad(entries, self.problem(name, f"pack is truncated ({size} bytes, index needs {needed})"))
            return
        try:
            data = self.fetch(name, size)
        except BlobNotFoundError:
            self.mark_bad(entries, self.problem(name, "pack disappeared during verify"))
            return
        self.report.bytes_read += len(data)
        try:
            listed = {(e.block_id, e.offset, e.length) for e in read_trailer(self.repo.key, pack_id, data)}
        except (EnvelopeError, ValueError) as exc:
            # Restores do not need trailers, so no point is affected; rebuilding the index is.
            self.problem(name, f"pack trailer is damaged: {exc}")
        else:
            if any((e.block_id, e.offset, e.length) not in listed for e in entries):
                self.problem(name, "pack trailer disagrees with the index")
        damaged: Problem | None = None
        for entry in entries:
            if self.read_data:
                try:
                    check_block(self.repo.key, entry, memoryview(data)[entry.offset : entry.offset + entry.length])
                except (DecryptionFailed, ValueError) as exc:
                    if damaged is None:
                        damaged = self.problem(name, f"block {entry.block_id.hex()[:16]} is damaged: {exc}")
                    self.bad_blocks.setdefault(entry.block_id, damaged)
                    continue
                self.report.blocks += 1
                if self.progress is not None:
                    self.progress(entry.raw_length)
            self.index.add_pack(pack_id, [entry])

    def fetch(self, name: str, size: int) -> bytes:
        """The whole pack when reading data, else just its tail (trailer and its length)."""
        if self.read_data:
            return self.repo.store.get(name)
        (length,) = struct.unpack("<I", self.repo.store.get(name, offset=max(0, size - 4), length=4))
        return self.repo.store.get(name, offset=max(0, size - 4 - length))

    def recover_orphan(self, pack_id: str, size: int) -> None:
        """An unindexed pack may be what a damaged index described: its trailer says what it
        holds, and restores find those blocks the same way (Repository.load_index)."""
        try:
            entries = read_trailer(self.repo.key, pack_id, self.fetch(pack_key(pack_id), size))
        except (EnvelopeError, ValueError, BlobNotFoundError):
            return  # unreadable leftovers are prune's business; referenced blocks show up below
        self.check_pack(pack_id, entries, size)

    def mark_bad(self, entries: list[PackEntry], problem: Problem) -> None:
        for entry in entries:
            self.bad_blocks.setdefault(entry.block_id, problem)

    def check_points(self) -> None:
        for point_id in self.repo.point_ids():
            self.report.points += 1
            try:
                point = self.repo.load_point(point_id)
            except IntegrityError as exc:
                self.problem(f"points/{point_id}", exc.message).points.append(point_id)
                continue
            except RepositoryError:
                continue
            affected: set[int] = set()
            try:
                for block_id in point_references(self.repo, self.index, point):
                    if block_id in self.index:
                        continue
                    problem = self.bad_blocks.get(block_id)
                    if problem is None:
                        problem = self.problem(
                            f"points/{point_id}", f"references block {block_id.hex()[:16]} that no pack holds"
                        )
                        self.bad_blocks[block_id] = problem
                    if id(problem) not in affected:
                        affected.add(id(problem))
                        self.attach(problem, point_id)
            except IntegrityError as exc:
                self.attach(self.problem(f"points/{point_id}", exc.message), point_id)

    def attach(self, problem: Problem, point_id: str) -> None:
        if problem not in self.report.problems:
            self.report.problems.append(problem)
        if point_id not in problem.points:
            problem.points.append(point_id)


def verify_repository(
    repo: Repository, *, read_data: bool = False, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    return _Verifier(repo, read_data, progress).run()
