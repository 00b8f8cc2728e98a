"""Garbage collection never takes data a restore point, or a running backup, may need."""

from __future__ import annotations

import filecmp
from pathlib import Path

from shared.core.clock import SystemClock
from shared.core.crypto import ScryptParams
from shared.engine.backup import BackupResult, backup_image
from shared.engine.restore import restore_image
from shared.repo.checker import verify_repository
from shared.repo.prune import prune_repository
from shared.repo.repository import Repository
from shared.repo.session import SessionMarker
from shared.sources.image_file import ImageFileSource
from shared.storage.directory import DirectoryStore
from shared.storage.port import Buffer
from tests.support.images import MiB, make_image


def backup(repo: Repository, image: Path) -> BackupResult:
    with ImageFileSource(image) as source:
        return backup_image(repo, source)


def two_disks(repo: Repository, tmp_path: Path) -> tuple[BackupResult, BackupResult]:
    first = backup(repo, make_image(tmp_path / "one.img", 8 * MiB, seed=1))
    second = backup(repo, make_image(tmp_path / "two.img", 8 * MiB, seed=2))
    repo.delete_point(first.point.point_id)  # its packs are now garbage
    return first, second


def test_prune_waits_while_a_backup_session_is_live(repo: Repository, tmp_path: Path) -> None:
    _, second = two_disks(repo, tmp_path)
    packs_before = {info.key for info in repo.store.list("packs/")}
    with repo.session():
        report = prune_repository(repo)
    assert report.packs_garbage >= 1 and report.packs_deleted == 0
    assert "backup session(s) are running" in report.deferred
    assert {info.key for info in repo.store.list("packs/")} == packs_before
    report = prune_repository(repo)
    assert report.packs_deleted == report.packs_garbage >= 1
    out = tmp_path / "out.img"
    restore_image(repo, second.point, out)
    assert filecmp.cmp(tmp_path / "two.img", out, shallow=False)


class _BackupStartsMidPrune(DirectoryStore):
    """Starts a backup session right after prune wrote its new index (the race of step 6)."""

    repo: Repository | None = None
    marker: SessionMarker | None = None

    def put(self, key: str, data: Buffer, *, overwrite: bool = False) -> None:
        super().put(key, data, overwrite=overwrite)
        if key.startswith("index/") and self.repo is not None and self.marker is None:
            self.marker = SessionMarker(self, self.repo.key, SystemClock()).__enter__()


def test_backup_starting_during_prune_cancels_the_deletion(tmp_path: Path) -> None:
    store = _BackupStartsMidPrune(tmp_path / "repo", fsync=False)
    repo = Repository.init(store, "pw", SystemClock(), scrypt=ScryptParams(n=2**10))
    _, second = two_disks(repo, tmp_path)
    store.repo = repo
    report = prune_repository(repo)
    assert report.packs_deleted == 0 and "started during prune" in report.deferred
    assert store.marker is not None
    store.marker.__exit__(None, None, None)
    store.repo = None
    # the garbage is no longer indexed, so nothing new can reference it; the next prune takes it
    report = prune_repository(repo)
    assert report.packs_deleted >= 1
    assert verify_repository(repo, read_data=True).ok
    out = tmp_path / "out.img"
    restore_image(repo, second.point, out)
    assert filecmp.cmp(tmp_path / "two.img", out, shallow=False)


def test_dry_run_changes_nothing(repo: Repository, tmp_path: Path) -> None:
    two_disks(repo, tmp_path)

    def objects() -> list[str]:
        return sorted(info.key for info in repo.store.list() if not info.key.startswith("locks/"))

    before = objects()
    report = prune_repository(repo, dry_run=True)
    assert report.packs_garbage >= 1 and report.packs_deleted == 0
    assert objects() == before
