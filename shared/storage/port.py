"""The blob-store port: the only way the repository touches storage.

Contract (every implementation passes tests/storage/contract.py):

* Keys are ``/``-separated names of printable ASCII without leading or trailing ``/``.
* ``put`` is atomic: a reader sees either the whole object or none of it, never a part. With
  ``overwrite=False`` it raises :class:`BlobExistsError` when the key exists.
* Read-after-write: an object is visible to ``get``, ``stat`` and ``list`` as soon as ``put``
  returns.
* ``get`` raises :class:`BlobNotFoundError` for a missing key; ``offset``/``length`` select a byte
  range (``length=None`` reads to the end). Reading past the end returns what exists.
* ``list`` yields every object whose key starts with ``prefix``, in ascending key order.
* ``delete`` of a missing key is not an error (deletes are retried and must be idempotent).
* ``acquire_lease`` takes an exclusive, expiring lease on a key (creating it empty if missing).
  It raises :class:`LeaseHeldError` while another holder's lease is live. A holder keeps the
  lease by calling ``renew`` within ``ttl_seconds``; a lease that is not renewed expires, so a
  crashed holder never blocks others for long.
* ``open_writer`` returns a BlobWriter for an object written in pieces: nothing is visible until
  ``commit``, which publishes it atomically and raises BlobExistsError if the key exists;
  ``abort`` discards it (idempotent). Writers are used from one thread at a time.
* ``sweep`` removes the store's own leftovers of puts that can never complete (a process killed
  mid-put) and returns the bytes freed; it never touches a put that may still be running.
* Errors: :class:`TransientStorageError` for failures worth retrying (throttling, timeouts,
  resets, 5xx), :class:`StorageAuthError` for refused credentials, :class:`StorageError` for the
  rest. Implementations never leak SDK exceptions or secrets in messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    modified: float
    """Last modification, seconds since the epoch (storage clock)."""


class Lease(Protocol):
    def renew(self) -> None:
        """Extend the lease by its ttl; raises LeaseHeldError if it was lost."""

    def release(self) -> None:
        """Give the lease up; releasing a lost lease is not an error."""


class BlobWriter(Protocol):
    def write(self, data: Buffer) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class BlobStore(Protocol):
    def describe(self) -> str:
        """Where the store is, for messages; never contains a secret."""

    def put(self, key: str, data: Buffer, *, overwrite: bool = False) -> None: ...

    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> bytes: ...

    def stat(self, key: str) -> BlobInfo: ...

    def list(self, prefix: str = "") -> Iterator[BlobInfo]: ...

    def delete(self, key: str) -> None: ...

    def acquire_lease(self, key: str, *, ttl_seconds: int) -> Lease: ...

    def open_writer(self, key: str) -> BlobWriter: ...

    def sweep(self) -> int: ...
