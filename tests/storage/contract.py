"""The blob-store contract (shared/storage/port.py) as one test suite for every implementation.

Subclass :class:`BlobStoreContract` in a ``test_*.py`` module and provide two fixtures:

* ``store``: an empty store;
* ``advance``: a function that lets ``seconds`` pass for that store's lease clock (a fake clock's
  ``advance``, or ``time.sleep`` for a real service).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from shared.core.errors import BlobExistsError, BlobNotFoundError, LeaseHeldError, UsageError
from shared.storage.port import BlobStore

Advance = Callable[[float], None]

LEASE_TTL = 15  # the shortest lease Azure grants; every store accepts it


class BlobStoreContract:
    # -- put / get / stat ----------------------------------------------------------------------------

    def test_describe_is_text(self, store: BlobStore) -> None:
        assert isinstance(store.describe(), str)
        assert store.describe()

    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    def test_put_then_get_returns_the_bytes(self, store: BlobStore, kind: Callable[[bytes], bytes]) -> None:
        data = bytes(range(256)) * 5
        store.put("objects/one", kind(data))
        got = store.get("objects/one")
        assert isinstance(got, bytes)
        assert got == data

    def test_empty_object(self, store: BlobStore) -> None:
        store.put("empty", b"")
        assert store.get("empty") == b""
        assert store.get("empty", offset=3) == b""
        assert store.stat("empty").size == 0

    def test_missing_key_raises_not_found(self, store: BlobStore) -> None:
        with pytest.raises(BlobNotFoundError, match="nothing/here"):
            store.get("nothing/here")
        with pytest.raises(BlobNotFoundError):
            store.get("nothing/here", offset=1, length=1)
        with pytest.raises(BlobNotFoundError):
            store.stat("nothing/here")

    def test_put_refuses_to_overwrite_by_default(self, store: BlobStore) -> None:
        store.put("config", b"first")
        with pytest.raises(BlobExistsError, match="config"):
            store.put("config", b"second")
        assert store.get("config") == b"first"

    def test_put_with_overwrite_replaces(self, store: BlobStore) -> None:
        store.put("config", b"first version")
        store.put("config", b"second", overwrite=True)
        assert store.get("config") == b"second"
        assert store.stat("config").size == 6
        store.put("fresh", b"x", overwrite=True)  # overwrite=True also creates
        assert store.get("fresh") == b"x"

    def test_ranges(self, store: BlobStore) -> None:
        data = bytes(range(100))
        store.put("ranged", data)
        assert store.get("ranged", offset=10) == data[10:]
        assert store.get("ranged", offset=10, length=5) == data[10:15]
        assert store.get("ranged", length=3) == data[:3]
        assert store.get("ranged", offset=95, length=50) == data[95:]
        assert store.get("ranged", offset=99, length=1) == data[99:]
        assert store.get("ranged", offset=100) == b""
        assert store.get("ranged", offset=250, length=10) == b""
        assert store.get("ranged", offset=5, length=0) == b""

    def test_negative_ranges_are_refused(self, store: BlobStore) -> None:
        store.put("ranged", b"abc")
        with pytest.raises(UsageError):
            store.get("ranged", offset=-1)
        with pytest.raises(UsageError):
            store.get("ranged", length=-1)

    def test_stat(self, store: BlobStore) -> None:
        store.put("packs/ab/abcdef", b"12345")
        info = store.stat("packs/ab/abcdef")
        assert info.key == "packs/ab/abcdef"
        assert info.size == 5
        assert info.modified > 1_000_000_000

    @pytest.mark.parametrize(
        "key", ["", "/lead", "trail/", "a//b", "../up", "a/../b", "./a", "a/.tmp-x", "tab\tkey", "ü"]
    )
    def test_invalid_keys_are_refused(self, store: BlobStore, key: str) -> None:
        with pytest.raises(UsageError):
            store.put(key, b"x")
        with pytest.raises(UsageError):
            store.get(key)

    # -- list / delete -------------------------------------------------------------------------------

    def test_list_is_sorted_and_filtered_by_prefix(self, store: BlobStore) -> None:
        # No key is also a folder of another ("a" and "a/b"): a directory store cannot hold both.
        keys = ["b/x", "a/c/d", "a0", "a-b", "a/b", "ab", "a!", "a/c-e", "a/c/e/f", "c"]
        for index, key in enumerate(keys):
            store.put(key, b"z" * index)
        listed = list(store.list())
        assert [info.key for info in listed] == sorted(keys)
        assert {info.key: info.size for info in listed} == {key: index for index, key in enumerate(keys)}
        assert [info.key for info in store.list("a/")] == ["a/b", "a/c-e", "a/c/d", "a/c/e/f"]
        assert [info.key for info in store.list("a/c")] == ["a/c-e", "a/c/d", "a/c/e/f"]
        assert [info.key for info in store.list("a/c/")] == ["a/c/d", "a/c/e/f"]
        assert [info.key for info in store.list("a")] == sorted(k for k in keys if k.startswith("a"))
        assert [info.key for info in store.list("a/b")] == ["a/b"]
        assert list(store.list("zzz")) == []
        assert list(store.list("b/x/")) == []

    def test_list_of_empty_store(self, store: BlobStore) -> None:
        assert list(store.list()) == []
        assert list(store.list("packs/")) == []

    def test_delete_is_idempotent(self, store: BlobStore) -> None:
        store.put("snapshots/1", b"one")
        store.put("snapshots/2", b"two")
        store.delete("snapshots/1")
        store.delete("snapshots/1")
        store.delete("never/was")
        with pytest.raises(BlobNotFoundError):
            store.get("snapshots/1")
        assert [info.key for info in store.list()] == ["snapshots/2"]
        store.put("snapshots/1", b"again")  # a deleted key can be written afresh
        assert store.get("snapshots/1") == b"again"

    def test_overwrite_is_atomic_for_readers(self, store: BlobStore) -> None:
        versions = (b"A" * 300_000, b"B" * 200_000)
        store.put("flip", versions[0])
        seen: set[bytes] = set()
        done = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for round_ in range(12):
                    store.put("flip", versions[round_ % 2], overwrite=True)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                done.set()

        writer = threading.Thread(target=write)
        writer.start()
        while not done.is_set():
            got = store.get("flip")
            assert got in versions, f"torn read of {len(got)} bytes"
            seen.add(got[:1])
        writer.join()
        assert not errors
        assert store.get("flip") == versions[1]

    def test_large_object_from_memoryview(self, store: BlobStore) -> None:
        size = 40 * 1024 * 1024 + 123
        data = bytearray(size)
        data[::4096] = b"\x07" * len(data[::4096])
        data[-10:] = b"0123456789"
        store.put("packs/large", memoryview(data))
        assert store.stat("packs/large").size == size
        assert store.get("packs/large", offset=size - 10) == b"0123456789"
        assert store.get("packs/large", offset=4096 * 3, length=2) == b"\x07\x00"
        assert store.get("packs/large") == data

    # -- leases --------------------------------------------------------------------------------------

    def test_writer_publishes_only_on_commit(self, store: BlobStore) -> None:
        writer = store.open_writer("w/obj")
        writer.write(b"abc")
        writer.write(memoryview(bytearray(b"x" * (9 << 20))))  # crosses any staging size
        assert [info.key for info in store.list("w/")] == []
        writer.commit()
        assert store.get("w/obj", length=3) == b"abc"
        assert store.stat("w/obj").size == 3 + (9 << 20)

    def test_writer_abort_leaves_nothing(self, store: BlobStore) -> None:
        writer = store.open_writer("w/gone")
        writer.write(b"partial")
        writer.abort()
        writer.abort()
        assert [info.key for info in store.list("w/")] == []

    def test_writer_never_overwrites(self, store: BlobStore) -> None:
        store.put("w/taken", b"first")
        writer = store.open_writer("w/taken")
        writer.write(b"second")
        with pytest.raises(BlobExistsError):
            writer.commit()
        assert store.get("w/taken") == b"first"

    def test_sweep_keeps_every_object(self, store: BlobStore) -> None:
        store.put("a/b", b"1")
        store.put("c", b"2")
        assert store.sweep() >= 0
        assert [info.key for info in store.list()] == ["a/b", "c"]

    def test_lease_creates_the_key_and_is_exclusive(self, store: BlobStore) -> None:
        lease = store.acquire_lease("locks/exclusive", ttl_seconds=LEASE_TTL)
        assert store.get("locks/exclusive") == b""
        assert [info.key for info in store.list("locks/")] == ["locks/exclusive"]
        with pytest.raises(LeaseHeldError, match="locks/exclusive"):
            store.acquire_lease("locks/exclusive", ttl_seconds=LEASE_TTL)
        lease.renew()
        lease.release()
        with pytest.raises(LeaseHeldError):
            lease.renew()  # a released lease is gone
        again = store.acquire_lease("locks/exclusive", ttl_seconds=LEASE_TTL)
        again.release()
        again.release()  # releasing twice is fine

    def test_lease_keeps_existing_content(self, store: BlobStore) -> None:
        store.put("locks/with-data", b"payload")
        lease = store.acquire_lease("locks/with-data", ttl_seconds=LEASE_TTL)
        assert store.get("locks/with-data") == b"payload"
        lease.release()

    def test_leases_on_different_keys_are_independent(self, store: BlobStore) -> None:
        first = store.acquire_lease("locks/a", ttl_seconds=LEASE_TTL)
        second = store.acquire_lease("locks/b", ttl_seconds=LEASE_TTL)
        first.release()
        second.release()

    def test_lease_ttl_above_the_limit_is_refused(self, store: BlobStore) -> None:
        with pytest.raises(UsageError):
            store.acquire_lease("locks/long", ttl_seconds=61)

    @pytest.mark.slow
    def test_leases_expire_unless_renewed(self, store: BlobStore, advance: Advance) -> None:
        # One wait serves both cases, as a real service's clock makes each wait cost 8+ seconds.
        stale = store.acquire_lease("locks/expiring", ttl_seconds=LEASE_TTL)
        kept = store.acquire_lease("locks/renewed", ttl_seconds=LEASE_TTL)
        advance(LEASE_TTL / 2 + 1)
        kept.renew()
        advance(LEASE_TTL / 2 + 1)  # past the first expiry, within the renewed one
        with pytest.raises(LeaseHeldError):
            store.acquire_lease("locks/renewed", ttl_seconds=LEASE_TTL)
        kept.release()

        fresh = store.acquire_lease("locks/expiring", ttl_seconds=LEASE_TTL)
        with pytest.raises(LeaseHeldError):
            stale.renew()
        stale.release()  # a lost lease releases quietly and leaves the new holder alone
        with pytest.raises(LeaseHeldError):
            store.acquire_lease("locks/expiring", ttl_seconds=LEASE_TTL)
        fresh.renew()
        fresh.release()
