"""In-memory blob stores for tests: a faithful fake and a fault-injecting wrapper."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from shared.core.errors import BlobExistsError, BlobNotFoundError, LeaseHeldError, StorageError, UsageError
from shared.storage.directory import check_key, check_lease_ttl
from shared.storage.port import BlobInfo, BlobStore, BlobWriter, Buffer, Lease

__all__ = ["FakeClock", "FaultyBlobStore", "InMemoryBlobStore"]

T = TypeVar("T")


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Lease:
    owner: str
    expires: float


class InMemoryBlobStore:
    """The blob-store port over a dict; passes the contract suite. Thread-safe."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._clock: Callable[[], float] = clock or FakeClock()
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        return "memory"

    def put(self, key: str, data: Buffer, *, overwrite: bool = False) -> None:
        check_key(key)
        blob = bytes(data)
        with self._lock:
            if not overwrite and key in self._objects:
                raise BlobExistsError(f"Object '{key}' already exists in memory.")
            self._objects[key] = (blob, self._clock())

    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> bytes:
        check_key(key)
        if offset < 0 or (length is not None and length < 0):
            raise UsageError(f"Invalid range offset={offset} length={length} for '{key}'.")
        blob, _ = self._lookup(key)
        end = len(blob) if length is None else offset + length
        return blob[offset:end]

    def stat(self, key: str) -> BlobInfo:
        check_key(key)
        blob, modified = self._lookup(key)
        return BlobInfo(key=key, size=len(blob), modified=modified)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        with self._lock:
            found = sorted((k, len(b), m) for k, (b, m) in self._objects.items() if k.startswith(prefix))
        for key, size, modified in found:
            yield BlobInfo(key=key, size=size, modified=modified)

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def acquire_lease(self, key: str, *, ttl_seconds: int) -> Lease:
        check_key(key)
        check_lease_ttl(ttl_seconds)
        owner = uuid.uuid4().hex
        with self._lock:
            self._objects.setdefault(key, (b"", self._clock()))
            self._take(key, owner, ttl_seconds, require_owner=False)
        return _MemoryLease(self, key, owner, ttl_seconds)

    # -- used by _MemoryLease ------------------------------------------------------------------------

    def open_writer(self, key: str) -> BlobWriter:
        check_key(key)
        return _MemoryWriter(self, key)

    def sweep(self) -> int:
        return 0  # puts are atomic in memory: nothing is ever left behind

    def _take(self, key: str, owner: str, ttl_seconds: int, *, require_owner: bool) -> None:
        now = self._clock()
        current = self._leases.get(key)
        mine = current is not None and current.owner == owner
        live = current is not None and current.expires > now
        if not mine and (require_owner or live):
            raise LeaseHeldError(f"Object '{key}' in memory is leased by another holder.")
        self._leases[key] = _Lease(owner, now + ttl_seconds)

    def _release(self, key: str, owner: str) -> None:
        current = self._leases.get(key)
        if current is not None and current.owner == owner:
            del self._leases[key]

    def _lookup(self, key: str) -> tuple[bytes, float]:
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise BlobNotFoundError(f"No object '{key}' in memory.")
        return found


class _MemoryWriter:
    def __init__(self, store: InMemoryBlobStore, key: str) -> None:
        self._store = store
        self._key = key
        self._data: bytearray | None = bytearray()

    def write(self, data: Buffer) -> None:
        if self._data is None:
            raise StorageError(f"writer for '{self._key}' is closed")
        self._data += memoryview(data).cast("B")

    def commit(self) -> None:
        if self._data is None:
            raise StorageError(f"writer for '{self._key}' is closed")
        data, self._data = self._data, None
        self._store.put(self._key, data)

    def abort(self) -> None:
        self._data = None


class _MemoryLease:
    def __init__(self, store: InMemoryBlobStore, key: str, owner: str, ttl_seconds: int) -> None:
        self._store = store
        self._key = key
        self._owner = owner
        self._ttl = ttl_seconds

    def renew(self) -> None:
        with self._store._lock:
            self._store._take(self._key, self._owner, self._ttl, require_owner=True)

    def release(self) -> None:
        with self._store._lock:
            self._store._release(self._key, self._owner)


@dataclass
class _Fault:
    error: Exception
    times: int
    after_call: bool


@dataclass
class _Faults:
    pending: dict[str, list[_Fault]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


class FaultyBlobStore:
    """Wrap a store and make chosen methods fail, for tests of wrappers and of the repository.

    ``store.fail("put", TransientStorageError("boom"), times=2)`` makes the next two ``put`` calls
    raise. With ``after_call=True`` the call reaches the inner store first and the error is raised
    afterwards: the write happened but its response was lost, or a listing broke after its last item.
    Methods: ``put``, ``get``, ``stat``, ``list``, ``delete``, ``acquire_lease``, ``renew``,
    ``release``. ``calls[method]`` counts calls.
    """

    METHODS = frozenset({"put", "get", "stat", "list", "delete", "acquire_lease", "renew", "release"})

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self._faults = _Faults()
        self._lock = threading.Lock()

    @property
    def calls(self) -> dict[str, int]:
        return self._faults.calls

    def fail(self, method: str, error: Exception, *, times: int = 1, after_call: bool = False) -> None:
        if method not in self.METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {sorted(self.METHODS)}")
        with self._lock:
            self._faults.pending.setdefault(method, []).append(_Fault(error, times, after_call))

    def _next_fault(self, method: str) -> _Fault | None:
        with self._lock:
            self._faults.calls[method] = self._faults.calls.get(method, 0) + 1
            queue = self._faults.pending.get(method, [])
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault

    def call(self, method: str, action: Callable[[], T]) -> T:
        fault = self._next_fault(method)
        if fault is not None and not fault.after_call:
            raise fault.error
        result = action()
        if fault is not None:
            raise fault.error
        return result

    def describe(self) -> str:
        return f"faulty({self.inner.describe()})"

    def put(self, key: str, data: Buffer, *, overwrite: bool = False) -> None:
        self.call("put", lambda: self.inner.put(key, data, overwrite=overwrite))

    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> bytes:
        return self.call("get", lambda: self.inner.get(key, offset=offset, length=length))

    def stat(self, key: str) -> BlobInfo:
        return self.call("stat", lambda: self.inner.stat(key))

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        # A fault with after_call=True strikes after the last item: a listing broken mid-way.
        fault = self._next_fault("list")
        if fault is not None and not fault.after_call:
            raise fault.error
        yield from self.inner.list(prefix)
        if fault is not None:
            raise fault.error

    def delete(self, key: str) -> None:
        self.call("delete", lambda: self.inner.delete(key))

    def open_writer(self, key: str) -> BlobWriter:
        return self.call("open_writer", lambda: self.inner.open_writer(key))

    def sweep(self) -> int:
        return self.call("sweep", self.inner.sweep)

    def acquire_lease(self, key: str, *, ttl_seconds: int) -> Lease:
        lease = self.call("acquire_lease", lambda: self.inner.acquire_lease(key, ttl_seconds=ttl_seconds))
        return _FaultyLease(self, lease)


class _FaultyLease:
    def __init__(self, store: FaultyBlobStore, inner: Lease) -> None:
        self._store = store
        self._inner = inner

    def renew(self) -> None:
        self._store.call("renew", self._inner.renew)

    def release(self) -> None:
        self._store.call("release", self._inner.release)


if TYPE_CHECKING:  # mypy checks that the classes implement the port (and its leases)

    def _conforms(inner: BlobStore) -> tuple[BlobStore, BlobStore]:
        return InMemoryBlobStore(), FaultyBlobStore(inner)
