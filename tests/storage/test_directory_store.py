from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from shared.core.errors import BlobNotFoundError, LeaseHeldError, StorageError
from shared.storage.directory import DirectoryStore
from tests.storage.contract import LEASE_TTL, Advance, BlobStoreContract
from tests.support.memory_store import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> DirectoryStore:
    return DirectoryStore(tmp_path / "repo", clock=clock)


@pytest.fixture
def advance(clock: FakeClock) -> Advance:
    return clock.advance


class TestDirectoryStore(BlobStoreContract):
    pass


def test_describe_is_the_path(tmp_path: Path) -> None:
    assert DirectoryStore(tmp_path).describe() == str(tmp_path)


def test_files_are_laid_out_by_key(tmp_path: Path) -> None:
    DirectoryStore(tmp_path).put("packs/ab/abcd", b"data")
    assert (tmp_path / "packs" / "ab" / "abcd").read_bytes() == b"data"


def test_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.put("a/b", b"1")
    store.put("a/b", b"2", overwrite=True)
    with pytest.raises(StorageError):
        store.put("a/b", b"3")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


def test_list_skips_leftover_temporary_and_lease_files(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, fsync=False)
    store.put("packs/one", b"1")
    (tmp_path / "packs" / ".tmp-crashed").write_bytes(b"partial")
    store.acquire_lease("packs/lock", ttl_seconds=LEASE_TTL)
    assert [info.key for info in store.list()] == ["packs/lock", "packs/one"]


def test_missing_root_reads_as_empty(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "absent")
    assert list(store.list()) == []
    with pytest.raises(BlobNotFoundError):
        store.get("config")
    store.delete("config")


def test_folders_are_not_objects(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.put("packs/ab/one", b"1")
    with pytest.raises(BlobNotFoundError):
        store.get("packs/ab")
    with pytest.raises(BlobNotFoundError):
        store.stat("packs")
    store.delete("packs")
    assert store.get("packs/ab/one") == b"1"


def test_key_under_an_object_is_a_storage_error(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.put("config", b"1")
    with pytest.raises(StorageError, match="config/sub"):
        store.put("config/sub", b"2")


def test_unreadable_folder_is_a_storage_error(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "file-not-folder")
    (tmp_path / "file-not-folder").write_bytes(b"")
    with pytest.raises(StorageError):
        store.put("x", b"1")


def test_lease_is_exclusive_across_store_instances(tmp_path: Path) -> None:
    clock = FakeClock()
    first = DirectoryStore(tmp_path, clock=clock)
    second = DirectoryStore(tmp_path, clock=clock)
    lease = first.acquire_lease("locks/exclusive", ttl_seconds=LEASE_TTL)
    with pytest.raises(LeaseHeldError):
        second.acquire_lease("locks/exclusive", ttl_seconds=LEASE_TTL)
    clock.advance(LEASE_TTL + 1)
    taken = second.acquire_lease("locks/exclusive", ttl_seconds=LEASE_TTL)
    with pytest.raises(LeaseHeldError):
        lease.renew()
    taken.release()


def test_torn_lease_file_counts_as_free(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.acquire_lease("lock", ttl_seconds=LEASE_TTL)
    (tmp_path / ".lease-lock").write_bytes(b'{"owner": "dead", "exp')
    store.acquire_lease("lock", ttl_seconds=LEASE_TTL).release()


def test_without_fsync(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, fsync=False)
    store.put("a", memoryview(b"abc")[1:])
    assert store.get("a") == b"bc"


def test_list_never_leaves_the_root(tmp_path: Path) -> None:
    (tmp_path / "outside").write_bytes(b"secret")
    store = DirectoryStore(tmp_path / "repo")
    store.put("inside", b"1")
    for prefix in ["../", "../out", "/", str(tmp_path) + "/", "a//b/", "./"]:
        assert list(store.list(prefix)) == []


def test_huge_range_reads_what_exists(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.put("small", b"abc")
    assert store.get("small", offset=1, length=1 << 60) == b"bc"


def test_sweep_removes_temporaries_of_dead_writers_only(tmp_path: Path, clock: FakeClock) -> None:
    store = DirectoryStore(tmp_path, clock=clock)
    store.put("packs/ab/abcd", b"kept")
    folder = tmp_path / "packs" / "ab"
    host = socket.gethostname()
    dead_pid = _exited_pid()
    (folder / f".tmp-{host}.{dead_pid}.x1").write_bytes(b"x" * 100)  # killed mid-put
    (folder / f".tmp-{host}.{os.getpid()}.x2").write_bytes(b"y" * 10)  # our own put in progress
    foreign = folder / ".tmp-otherhost.1.x3"
    foreign.write_bytes(b"z" * 10)  # another machine's: too young to judge
    os.utime(foreign, (clock(), clock()))
    assert store.sweep() == 100
    assert {p.name for p in folder.iterdir()} == {f".tmp-{host}.{os.getpid()}.x2", ".tmp-otherhost.1.x3", "abcd"}
    clock.advance(2 * 24 * 3600)
    assert store.sweep() == 10  # the foreign one, once it is a day old
    assert store.get("packs/ab/abcd") == b"kept"


def _exited_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
