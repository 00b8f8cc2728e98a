"""A blob-store wrapper that retries transient failures.

Only :class:`TransientStorageError` is retried (throttling, timeouts, resets, 5xx); every other
error passes through at once. Waits grow exponentially with full jitter: before retry ``n`` it
sleeps ``uniform(0, min(max_delay, base_delay * 2 ** (n - 1)))``, so many clients backing off at
once spread out instead of retrying in lockstep.

Retries are safe because every operation of the port is idempotent, except ``put`` without
overwrite: when an attempt fails transiently after the service stored the object, the next attempt
meets our own object and sees :class:`BlobExistsError`. It counts as success when the stored object
holds exactly the bytes we wrote (same size, then same content). The repository names objects by
their content hash or by a fresh random name, so an equal object under that key is ours or as good as
ours; the comparison only runs on this rare path.

The same ambiguity hits ``acquire_lease``: if the service granted a lease whose response was lost,
the retry sees :class:`LeaseHeldError` from our own lease. That lease expires within its ttl; the
caller sees the error and tries again later, as it would for any held lease.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from shared.core.errors import BlobExistsError, TransientStorageError, UsageError
from shared.storage.port import BlobInfo, BlobStore, BlobWriter, Buffer, Lease

__all__ = ["RetryingBlobStore"]

T = TypeVar("T")

_log = logging.getLogger(__name__)


class _Backoff:
    def __init__(
        self,
        *,
        attempts: int,
        base_delay: float,
        max_delay: float,
        sleep: Callable[[float], None],
        jitter: Callable[[], float],
    ) -> None:
        if attempts < 1:
            raise UsageError(f"Retry attempts must be at least 1, not {attempts}.")
        if base_delay < 0 or max_delay < 0:
            raise UsageError("Retry delays must not be negative.")
        self.attempts = attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._jitter = jitter

    def wait(self, failures: int, exc: TransientStorageError, what: str) -> None:
        """Sleep before retry number ``failures``, or raise if the attempts are used up."""
        if failures >= self.attempts:
            raise TransientStorageError(
                f"{exc.message} Gave up after {self.attempts} attempts.", hint=exc.hint
            ) from exc
        delay = self._jitter() * min(self._max_delay, self._base_delay * 2 ** (failures - 1))
        _log.warning("%s failed (%s); retry %d/%d in %.2fs", what, exc, failures, self.attempts - 1, delay)
        self._sleep(delay)

    def run(self, what: str, action: Callable[[], T]) -> T:
        failures = 0
        while True:
            try:
                return action()
            except TransientStorageError as exc:
                failures += 1
                self.wait(failures, exc, what)


class RetryingBlobStore:
    """The blob-store port around another store, retrying :class:`TransientStorageError`."""

    def __init__(
        self,
        inner: BlobStore,
        *,
        attempts: int = 6,
        base_delay: float = 0.2,
        max_delay: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._inner = inner
        self._backoff = _Backoff(
            attempts=attempts, base_delay=base_delay, max_delay=max_delay, sleep=sleep, jitter=jitter
        )

    @property
    def inner(self) -> BlobStore:
        return self._inner

    def describe(self) -> str:
        return self._inner.describe()

    def put(self, key: str, data: Buffer, *, overwrite: bool = False) -> None:
        failed_before = False

        def attempt() -> None:
            nonlocal failed_before
            try:
                self._inner.put(key, data, overwrite=overwrite)
            except TransientStorageError:
                failed_before = True
                raise
            except BlobExistsError:
                if not (failed_before and self._holds(key, data)):
                    raise

        self._backoff.run(f"put '{key}'", attempt)

    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> bytes:
        return self._backoff.run(f"get '{key}'", lambda: self._inner.get(key, offset=offset, length=length))

    def stat(self, key: str) -> BlobInfo:
        return self._backoff.run(f"stat '{key}'", lambda: self._inner.stat(key))

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        # A listing that breaks part-way resumes after the last key it yielded (lists are sorted).
        last: str | None = None
        failures = 0
        while True:
            try:
                for info in self._inner.list(prefix):
                    if last is not None and info.key <= last:
                        continue
                    failures = 0
                    last = info.key
                    yield info
                return
            except TransientStorageError as exc:
                failures += 1
                self._backoff.wait(failures, exc, f"list '{prefix}'")

    def delete(self, key: str) -> None:
        self._backoff.run(f"delete '{key}'", lambda: self._inner.delete(key))

    def acquire_lease(self, key: str, *, ttl_seconds: int) -> Lease:
        lease = self._backoff.run(f"lease '{key}'", lambda: self._inner.acquire_lease(key, ttl_seconds=ttl_seconds))
        return _RetryingLease(lease, key, self._backoff)

    def open_writer(self, key: str) -> BlobWriter:
        # Pieces are not replayed here: a piece that failed may have been half-applied. Each
        # backend request inside the writer is retried by the backend's own client.
        return self._backoff.run(f"open '{key}'", lambda: self._inner.open_writer(key))

    def sweep(self) -> int:
        return self._backoff.run("sweep", self._inner.sweep)

    def _holds(self, key: str, data: Buffer) -> bool:
        """Whether ``key`` already holds exactly ``data`` (our own earlier attempt landed)."""
        view = memoryview(data).cast("B")
        return self._inner.stat(key).size == view.nbytes and self._inner.get(key) == view


class _RetryingLease:
    def __init__(self, inner: Lease, key: str, backoff: _Backoff) -> None:
        self._inner = inner
        self._key = key
        self._backoff = backoff

    def renew(self) -> None:
        self._backoff.run(f"renew lease '{self._key}'", self._inner.renew)

    def release(self) -> None:
        self._backoff.run(f"release lease '{self._key}'", self._inner.release)


if TYPE_CHECKING:  # mypy checks that the class implements the port (and its leases)

    def _conforms(inner: BlobStore) -> BlobStore:
        return RetryingBlobStore(inner)
