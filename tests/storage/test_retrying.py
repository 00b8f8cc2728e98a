from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.core.errors import (
    BlobExistsError,
    BlobNotFoundError,
    LeaseHeldError,
    StorageAuthError,
    StorageError,
    TransientStorageError,
    UsageError,
)
from shared.storage.retrying import RetryingBlobStore
from tests.storage.contract import LEASE_TTL, Advance, BlobStoreContract
from tests.support.memory_store import FakeClock, FaultyBlobStore, InMemoryBlobStore


class Sleeps(list[float]):
    """Records requested sleeps instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def faulty() -> FaultyBlobStore:
    return FaultyBlobStore(InMemoryBlobStore())


@pytest.fixture
def retrying(faulty: FaultyBlobStore, sleeps: Sleeps) -> RetryingBlobStore:
    return RetryingBlobStore(faulty, attempts=4, base_delay=0.5, max_delay=3.0, sleep=sleeps)


def transient() -> TransientStorageError:
    return TransientStorageError("throttled")


class TestRetryingBlobStoreContract(BlobStoreContract):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store(self, clock: FakeClock, sleeps: Sleeps) -> RetryingBlobStore:
        return RetryingBlobStore(InMemoryBlobStore(clock=clock), sleep=sleeps)

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Advance:
        return clock.advance


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("get", lambda s: s.get("k")),
        ("stat", lambda s: s.stat("k")),
        ("delete", lambda s: s.delete("k")),
        ("list", lambda s: list(s.list())),
        ("put", lambda s: s.put("k", b"new", overwrite=True)),
    ],
)
def test_transient_errors_are_retried(
    faulty: FaultyBlobStore,
    retrying: RetryingBlobStore,
    sleeps: Sleeps,
    method: str,
    call: Callable[[RetryingBlobStore], object],
) -> None:
    faulty.inner.put("k", b"old")
    faulty.fail(method, transient(), times=2)
    call(retrying)
    assert faulty.calls[method] == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    "error",
    [BlobNotFoundError("gone"), StorageAuthError("denied"), StorageError("broken"), LeaseHeldError("held")],
)
def test_permanent_errors_pass_through_at_once(
    faulty: FaultyBlobStore, retrying: RetryingBlobStore, sleeps: Sleeps, error: StorageError
) -> None:
    faulty.fail("get", error)
    with pytest.raises(type(error)) as caught:
        retrying.get("k")
    assert caught.value is error
    assert faulty.calls["get"] == 1
    assert sleeps == []


def test_attempts_are_bounded(faulty: FaultyBlobStore, retrying: RetryingBlobStore, sleeps: Sleeps) -> None:
    faulty.fail("stat", transient(), times=10)
    with pytest.raises(TransientStorageError, match="Gave up after 4 attempts") as caught:
        retrying.stat("k")
    assert isinstance(caught.value.__cause__, TransientStorageError)
    assert faulty.calls["stat"] == 4
    assert len(sleeps) == 3


def test_backoff_grows_exponentially_with_full_jitter(faulty: FaultyBlobStore) -> None:
    sleeps = Sleeps()
    store = RetryingBlobStore(faulty, attempts=6, base_delay=0.5, max_delay=3.0, sleep=sleeps, jitter=lambda: 1.0)
    faulty.fail("get", transient(), times=5)
    with pytest.raises(BlobNotFoundError):
        store.get("k")
    assert sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]

    jittered = Sleeps()
    store = RetryingBlobStore(faulty, base_delay=0.5, max_delay=3.0, sleep=jittered, jitter=lambda: 0.25)
    faulty.fail("get", transient(), times=3)
    with pytest.raises(BlobNotFoundError):
        store.get("k")
    assert jittered == [0.125, 0.25, 0.5]


def test_default_jitter_stays_within_the_cap(faulty: FaultyBlobStore, sleeps: Sleeps) -> None:
    store = RetryingBlobStore(faulty, attempts=6, base_delay=0.2, max_delay=1.0, sleep=sleeps)
    faulty.fail("delete", transient(), times=5)
    store.delete("k")
    caps = [0.2, 0.4, 0.8, 1.0, 1.0]
    assert all(0 <= slept <= cap for slept, cap in zip(sleeps, caps, strict=True))


def test_put_whose_first_attempt_landed_counts_as_success(faulty: FaultyBlobStore, retrying: RetryingBlobStore) -> None:
    faulty.fail("put", transient(), after_call=True)  # stored, but the response was lost
    retrying.put("packs/p1", memoryview(b"pack bytes"))
    assert faulty.inner.get("packs/p1") == b"pack bytes"
    assert faulty.calls["put"] == 2


def test_put_meeting_a_different_object_after_a_retry_still_fails(
    faulty: FaultyBlobStore, retrying: RetryingBlobStore
) -> None:
    faulty.inner.put("config", b"someone else's")
    faulty.fail("put", transient())
    with pytest.raises(BlobExistsError):
        retrying.put("config", b"ours, same len")
    faulty.fail("put", transient())
    with pytest.raises(BlobExistsError):
        retrying.put("config", b"mine")


def test_put_on_an_existing_key_without_retry_fails(faulty: FaultyBlobStore, retrying: RetryingBlobStore) -> None:
    faulty.inner.put("k", b"same")
    with pytest.raises(BlobExistsError):
        retrying.put("k", b"same")  # no transient failure first: not our write


def test_broken_listing_resumes_without_repeating_keys(faulty: FaultyBlobStore, retrying: RetryingBlobStore) -> None:
    for key in ["a", "b", "c"]:
        faulty.inner.put(key, b"x")
    faulty.fail("list", transient(), after_call=True)
    assert [info.key for info in retrying.list()] == ["a", "b", "c"]
    assert faulty.calls["list"] == 2


def test_lease_operations_are_retried(faulty: FaultyBlobStore, retrying: RetryingBlobStore) -> None:
    faulty.fail("acquire_lease", transient())
    lease = retrying.acquire_lease("locks/x", ttl_seconds=LEASE_TTL)
    faulty.fail("renew", transient(), times=2)
    lease.renew()
    faulty.fail("release", transient())
    lease.release()
    assert faulty.calls == {"acquire_lease": 2, "renew": 3, "release": 2}
    with pytest.raises(LeaseHeldError):
        faulty.fail("renew", LeaseHeldError("lost"))
        lease.renew()


def test_bad_settings_are_refused(faulty: FaultyBlobStore) -> None:
    with pytest.raises(UsageError):
        RetryingBlobStore(faulty, attempts=0)
    with pytest.raises(UsageError):
        RetryingBlobStore(faulty, base_delay=-1)


def test_describe_is_the_inner_store(faulty: FaultyBlobStore, retrying: RetryingBlobStore) -> None:
    assert retrying.describe() == faulty.describe()
    assert retrying.inner is faulty
