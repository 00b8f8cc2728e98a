"""Packs written on two lanes: an index object never names a pack before that pack is committed,
and a pack that fails to commit fails the session and leaves nothing published or half-written."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from shared.core.clock import SystemClock
from shared.core.crypto import ScryptParams
from shared.core.errors import StorageError
from shared.engine.backup import backup_image
from shared.repo.index import INDEX_PREFIX
from shared.repo.pack import PACKS_PREFIX
from shared.repo.repository import Repository
from shared.repo.writer import PACK_LANES
from shared.sources.image_file import ImageFileSource
from shared.storage.directory import DirectoryStore
from shared.storage.port import BlobWriter, Buffer
from tests.support.images import MiB, make_image


class _Recorder:
    """Events in the order the store saw them, from every lane."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, kind: str, key: str) -> None:
        with self._lock:
            self.events.append((kind, key))


class _Writer:
    def __init__(self, inner: BlobWriter, key: str, store: _Store) -> None:
        self._inner = inner
        self._key = key
        self._store = store

    def write(self, data: Buffer) -> None:
        self._inner.write(data)

    def commit(self) -> None:
        number = self._store.commits = self._store.commits + 1
        if number == self._store.fail_commit:
            raise StorageError(f"injected failure committing {self._key}")
        time.sleep(0.05 if number % 2 else 0)  # odd packs commit slowly: the next one overtakes
        self._inner.commit()
        self._store.record.add("commit", self._key)

    def abort(self) -> None:
        self._inner.abort()


class _Store(DirectoryStore):
    """A real directory store that records commits and puts, and can fail one commit."""

    def __init__(self, root: Path, fail_commit: int = 0) -> None:
        super().__init__(root, fsync=False)
        self.record = _Recorder()
        self.commits = 0
        self.fail_commit = fail_commit

    def open_writer(self, key: str) -> BlobWriter:  # type: ignore[override]  # any writer will do here
        return _Writer(super().open_writer(key), key, self)

    def put(self, key: str, data: Buffer, *, overwrite: bool = False) -> None:
        super().put(key, data, overwrite=overwrite)
        self.record.add("put", key)


def _image(tmp_path: Path) -> Path:
    return make_image(tmp_path / "disk.img", 48 * MiB, data_blocks=40)


def _repository(store: _Store) -> Repository:
    return Repository.init(store, "pw", SystemClock(), scrypt=ScryptParams(n=2**10), pack_target=4 << 20)


def test_every_index_object_comes_after_the_commits_of_the_packs_it_names(tmp_path: Path) -> None:
    assert PACK_LANES >= 2
    store = _Store(tmp_path / "repo")
    repo = _repository(store)
    with ImageFileSource(_image(tmp_path)) as source:
        point = backup_image(repo, source).point
    committed: set[str] = set()
    indexes = 0
    for kind, key in store.record.events:
        if kind == "commit":
            committed.add(key.rsplit("/", 1)[-1])
        elif key.startswith(INDEX_PREFIX):
            indexes += 1
            named = {pack_id for pack_id, _ in repo.read_index_object(key)}
            assert named <= committed, f"{key} names packs not yet committed: {sorted(named - committed)}"
    assert indexes >= 1 and len(committed) >= 4
    assert repo.load_point(point.point_id).point_id == point.point_id


def test_a_pack_that_fails_to_commit_fails_the_backup_and_leaves_no_index_naming_it(tmp_path: Path) -> None:
    store = _Store(tmp_path / "repo", fail_commit=3)
    repo = _repository(store)
    with ImageFileSource(_image(tmp_path)) as source, pytest.raises(StorageError, match="injected failure"):
        backup_image(repo, source)
    packs = {info.key.rsplit("/", 1)[-1] for info in store.list(PACKS_PREFIX)}
    named = {pack_id for name in repo.index_names() for pack_id, _ in repo.read_index_object(name)}
    assert named <= packs  # nothing indexed that is not stored
    assert not repo.list_points()
    leftovers = [p for p in (tmp_path / "repo").rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []  # every unfinished pack was aborted, none half-written
