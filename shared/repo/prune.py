"""``prune``: delete packs no restore point needs, safely while backups run.

Protocol (docs/format.md §Garbage collection), under the maintenance lease:

1. Read the session markers; delete dead ones. Remember the live ones.
2. Collect every block id any point references. A damaged point or map stops the run: we never
   delete data a point might need.
3. Learn every stored pack's blocks: from the index, or from the pack's own trailer when no index
   names it (an interrupted run, or a damaged index). A pack whose trailer cannot be read is kept.
4. A pack is garbage when none of its blocks is referenced.
5. If any writer session is live, stop here: a live backup may de-duplicate against a garbage
   block, or own an unindexed pack. Report what waits for the next run.
6. Otherwise write one new index for every kept pack, delete the index objects it replaces,
   then look at the session markers again: a backup that started meanwhile may have read the
   old index, so its arrival cancels the deletion (the garbage is no longer indexed and goes
   next time). Only then delete the garbage packs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.core.envelope import EnvelopeError, ObjectType, seal_object
from shared.core.errors import BlobNotFoundError, IntegrityError
from shared.repo.index import encode_index, new_index_key
from shared.repo.pack import PACKS_PREFIX, PackEntry, pack_key, read_trailer
from shared.repo.repository import Repository
from shared.repo.session import SESSIONS_PREFIX, is_alive, read_session
from shared.repo.walk import point_references

__all__ = ["PruneReport", "prune_repository"]


@dataclass
class PruneReport:
    dry_run: bool
    packs_total: int = 0
    packs_garbage: int = 0
    packs_deleted: int = 0
    bytes_freed: int = 0
    packs_unreadable: int = 0
    bytes_swept: int = 0
    """Leftovers of writes that were killed mid-object."""
    index_objects_replaced: int = 0
    dead_sessions_removed: int = 0
    live_sessions: list[str] = field(default_factory=list)
    deferred: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "packs_total": self.packs_total,
            "packs_garbage": self.packs_garbage,
            "packs_deleted": self.packs_deleted,
            "bytes_freed": self.bytes_freed,
            "packs_unreadable": self.packs_unreadable,
            "bytes_swept": self.bytes_swept,
            "index_objects_replaced": self.index_objects_replaced,
            "dead_sessions_removed": self.dead_sessions_removed,
            "live_sessions": self.live_sessions,
            "deferred": self.deferred,
        }


def _live_sessions(repo: Repository, *, remove_dead: bool, report: PruneReport | None) -> set[str]:
    now = repo.clock.now()
    live: set[str] = set()
    for info in repo.store.list(SESSIONS_PREFIX):
        try:
            session = read_session(repo.store, repo.key, info.key)
        except BlobNotFoundError:
            continue
        except (EnvelopeError, ValueError, KeyError):
            live.add(info.key)  # unreadable: assume it is somebody's, and keep data safe
            continue
        if is_alive(session, now):
            live.add(info.key)
        elif remove_dead:
            repo.store.delete(info.key)
            if report is not None:
                report.dead_sessions_removed += 1
    return live


def _referenced(repo: Repository) -> set[bytes]:
    index = repo.load_index()
    used: set[bytes] = set()
    for point_id in repo.point_ids():
        try:
            point = repo.load_point(point_id)
            used.update(point_references(repo, index, point))
        except IntegrityError as exc:
            raise IntegrityError(
                f"refusing to prune: {exc.message}",
                hint="run `bulwark verify` and deal with the damaged restore point first",
            ) from exc
    return used


def prune_repository(repo: Repository, *, dry_run: bool = False) -> PruneReport:
    report = PruneReport(dry_run=dry_run)
    with repo.maintenance_lock() as lock:
        live = _live_sessions(repo, remove_dead=not dry_run, report=report)
        if not dry_run:
            report.bytes_swept = repo.store.sweep()
        used = _referenced(repo)
        index_names = repo.index_names()
        packs: dict[str, list[PackEntry]] = {}
        for name in index_names:
            try:
                listed_packs = repo.read_index_object(name)
            except IntegrityError:
                continue  # its packs are read through their trailers below, and re-indexed
            for pack_id, listed in listed_packs:
                packs.setdefault(pack_id, []).extend(listed)
        stored = {info.key.rsplit("/", 1)[-1]: info.size for info in repo.store.list(PACKS_PREFIX)}
        report.packs_total = len(stored)
        keep: dict[str, list[PackEntry]] = {}
        garbage: dict[str, int] = {}
        available: set[bytes] = set()
        # Indexed packs first: an unindexed pack (a killed run's) is only worth keeping for
        # blocks that no indexed pack already holds.
        for pack_id in sorted(stored, key=lambda p: p not in packs):
            entries: list[PackEntry] | None = packs.get(pack_id)
            if entries is None:
                try:
                    entries = read_trailer(repo.key, pack_id, repo.store.get(pack_key(pack_id)))
                except (EnvelopeError, ValueError, BlobNotFoundError):
                    report.packs_unreadable += 1
                    continue  # unknown content stays, and stays unindexed
                needed = any(e.block_id in used and e.block_id not in available for e in entries)
            else:
                needed = any(e.block_id in used for e in entries)
            if needed:
                keep[pack_id] = _unique(entries)
                available.update(e.block_id for e in entries)
            else:
                garbage[pack_id] = stored[pack_id]
        report.packs_garbage = len(garbage)
        unindexed_kept = keep.keys() - packs.keys()
        if dry_run or not (garbage or unindexed_kept):
            return report
        if live:
            report.live_sessions = sorted(live)
            report.deferred = (
                f"{len(live)} backup session(s) are running; the {len(garbage)} unused packs "
                "stay until a prune runs while no backup does"
            )
            return report
        lock.check()
        _replace_index(repo, keep, index_names)
        report.index_objects_replaced = len(index_names)
        if _live_sessions(repo, remove_dead=False, report=None):
            report.deferred = "a backup started during prune; unused packs are removed by the next prune"
            return report
        for pack_id, size in garbage.items():
            lock.check()
            repo.store.delete(pack_key(pack_id))
            report.packs_deleted += 1
            report.bytes_freed += size
    return report


def _unique(entries: list[PackEntry]) -> list[PackEntry]:
    seen: dict[tuple[bytes, int], PackEntry] = {}
    for entry in entries:
        seen.setdefault((entry.block_id, entry.offset), entry)
    return list(seen.values())


def _replace_index(repo: Repository, keep: dict[str, list[PackEntry]], old_names: list[str]) -> None:
    """New index first, then delete the old ones: a crash in between only leaves duplicates."""
    if keep:
        name = new_index_key()
        payload = encode_index(sorted(keep.items()))
        repo.store.put(name, seal_object(repo.key, ObjectType.INDEX, name, payload))
    for old in old_names:
        repo.store.delete(old)
