"""The blob-store port over Azure Blob Storage (block blobs, synchronous SDK client).

The store maps key ``k`` to blob ``<prefix>k`` in one container. SDK exceptions are translated into
the error tree in one place, :func:`_translate`; messages name the key and the container but never
a SAS signature or an account key.

Semantics on Azure:

* ``put(overwrite=False)`` sends ``If-None-Match: *``, so the service refuses an existing blob
  atomically (409 BlobAlreadyExists).
* Objects above the client's single-put size upload as parallel blocks and commit at once, so a
  reader never sees a partial object.
* Leases are Azure blob leases, which last 15 to 60 seconds: shorter ttls are raised to 15.
  While a blob is leased, writes and deletes of it without the lease fail with LeaseHeldError.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobBlock, BlobClient, BlobLeaseClient, ContainerClient

from shared.core.errors import (
    BlobExistsError,
    BlobNotFoundError,
    LeaseHeldError,
    StorageAuthError,
    StorageError,
    TransientStorageError,
    UsageError,
    redact,
)
from shared.storage.directory import check_key, check_lease_ttl
from shared.storage.port import BlobInfo, BlobStore, Buffer

__all__ = ["CLIENT_OPTIONS", "MIN_LEASE_SECONDS", "AzureBlobLease", "AzureBlobStore"]

MIN_LEASE_SECONDS = 15
"""Azure's shortest lease; shorter requests get this."""

_MiB = 1024 * 1024

CLIENT_OPTIONS: Mapping[str, Any] = {
    "max_single_put_size": 8 * _MiB,
    "max_block_size": 8 * _MiB,
    "max_single_get_size": 8 * _MiB,
    "max_chunk_get_size": 8 * _MiB,
    "user_agent": "bulwark",
}
"""Keyword arguments for the ``ContainerClient`` a store wraps: objects above 8 MiB move in 8 MiB
blocks, ``_CONCURRENCY`` at a time, instead of one long request that fails as a whole."""

_CONCURRENCY = 4
_STAGE_SIZE = 8 * _MiB
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_AUTH_HINT = (
    "check AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or that your identity has the "
    "'Storage Blob Data Contributor' role on the container"
)


class AzureBlobStore:
    """The blob-store port over one container (and optionally a prefix inside it)."""

    def __init__(self, container: ContainerClient, *, prefix: str = "") -> None:
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        self._container = container
        self._prefix = f"{prefix}/" if prefix else ""
        # The client's URL may carry a SAS token in its query: keep only scheme, host and path.
        base = container.url.split("?", 1)[0].rstrip("/")
        self._where = redact(f"{base}/{self._prefix}")

    def describe(self) -> str:
        return self._where

    def ensure_container(self) -> None:
        """Create the container unless it exists (for ``repo init``)."""
        try:
            with suppress(ResourceExistsError):
                self._container.create_container()
        except AzureError as exc:
            raise _translate(exc, "", self._where) from exc

    # -- objects -------------------------------------------------------------------------------------

    def put(self, key: str, data: Buffer, *, overwrite: bool = False) -> None:
        name = self._name(key)
        view = memoryview(data).cast("B")
        body: bytes | _BufferReader = data if isinstance(data, bytes) else _BufferReader(view)
        try:
            self._container.upload_blob(
                name, body, length=view.nbytes, overwrite=overwrite, max_concurrency=_CONCURRENCY
            )
        except AzureError as exc:
            raise _translate(exc, key, self._where) from exc

    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise UsageError(f"Invalid range offset={offset} length={length} for '{key}'.")
        name = self._name(key)
        if length == 0:
            self.stat(key)  # an empty range still needs the object to exist
            return b""
        try:
            downloader = self._container.download_blob(
                name,
                offset=None if offset == 0 and length is None else offset,  # no range: the whole blob
                length=length,
                max_concurrency=_CONCURRENCY,
            )
            return downloader.readall()
        except HttpResponseError as exc:
            if exc.status_code == 416:  # the range starts at or past the end of an existing blob
                return b""
            raise _translate(exc, key, self._where) from exc
        except AzureError as exc:
            raise _translate(exc, key, self._where) from exc

    def stat(self, key: str) -> BlobInfo:
        name = self._name(key)
        try:
            properties = self._container.get_blob_client(name).get_blob_properties()
        except AzureError as exc:
            raise _translate(exc, key, self._where) from exc
        return BlobInfo(key=key, size=properties.size, modified=properties.last_modified.timestamp())

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        # The service lists blob names in ascending (UTF-8 byte, here ASCII) order.
        skip = len(self._prefix)
        try:
            for properties in self._container.list_blobs(name_starts_with=self._prefix + prefix):
                yield BlobInfo(
                    key=properties.name[skip:],
                    size=properties.size,
                    modified=properties.last_modified.timestamp(),
                )
        except ResourceNotFoundError:
            return  # no container yet: nothing stored
        except AzureError as exc:
            raise _translate(exc, prefix, self._where) from exc

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self._container.delete_blob(name)
        except ResourceNotFoundError:
            pass
        except AzureError as exc:
            raise _translate(exc, key, self._where) from exc

    # -- leases --------------------------------------------------------------------------------------

    def acquire_lease(self, key: str, *, ttl_seconds: int) -> AzureBlobLease:
        check_lease_ttl(ttl_seconds)
        name = self._name(key)
        blob = self._container.get_blob_client(name)
        try:
            with suppress(ResourceExistsError):
                blob.upload_blob(b"", overwrite=False)
            client = BlobLeaseClient(blob)
            client.acquire(lease_duration=max(ttl_seconds, MIN_LEASE_SECONDS))
        except AzureError as exc:
            raise _translate(exc, key, self._where) from exc
        return AzureBlobLease(client, key, self._where)

    def open_writer(self, key: str) -> AzureBlobWriter:
        return AzureBlobWriter(self._container.get_blob_client(self._name(key)), key, self._where)

    def sweep(self) -> int:
        # Interrupted uploads leave only uncommitted blocks, which the service discards itself
        # (after a week); there is nothing of ours to remove.
        return 0

    def _name(self, key: str) -> str:
        check_key(key)
        return self._prefix + key


class AzureBlobWriter:
    """Stages blocks of ``_STAGE_SIZE`` as data arrives and commits the block list at the end.

    Staged blocks are invisible until the commit, which uses If-None-Match: * so it never
    overwrites; an abandoned writer leaves only uncommitted blocks, which the service discards.
    """

    def __init__(self, client: BlobClient, key: str, where: str) -> None:
        self._client = client
        self._key = key
        self._where = where
        self._buffer = bytearray()
        self._blocks: list[str] = []
        self._closed = False

    def write(self, data: Buffer) -> None:
        if self._closed:
            raise StorageError(f"writer for '{self._key}' is closed")
        self._buffer += memoryview(data).cast("B")
        while len(self._buffer) >= _STAGE_SIZE:
            self._stage(memoryview(self._buffer)[:_STAGE_SIZE])
            del self._buffer[:_STAGE_SIZE]

    def _stage(self, chunk: memoryview) -> None:
        block_id = base64.b64encode(f"{len(self._blocks):08d}".encode()).decode()
        try:
            self._client.stage_block(block_id, bytes(chunk), length=len(chunk))
        except AzureError as exc:
            raise _translate(exc, self._key, self._where) from exc
        self._blocks.append(block_id)

    def commit(self) -> None:
        if self._closed:
            raise StorageError(f"writer for '{self._key}' is closed")
        self._closed = True
        if self._buffer or not self._blocks:
            self._stage(memoryview(self._buffer))
            self._buffer = bytearray()
        try:
            self._client.commit_block_list(
                [BlobBlock(block_id=b) for b in self._blocks], match_condition=MatchConditions.IfMissing
            )
        except AzureError as exc:
            raise _translate(exc, self._key, self._where) from exc

    def abort(self) -> None:
        self._closed = True
        self._buffer = bytearray()


class AzureBlobLease:
    """An Azure blob lease taken by :meth:`AzureBlobStore.acquire_lease`."""

    def __init__(self, client: BlobLeaseClient, key: str, where: str) -> None:
        self._client = client
        self._key = key
        self._where = where
        self._released = False  # the SDK client forgets its lease id once released

    def renew(self) -> None:
        if self._released:
            raise LeaseHeldError(f"The lease on '{self._key}' in {self._where} was released.")
        try:
            self._client.renew()
        except ResourceNotFoundError as exc:
            raise LeaseHeldError(f"Lost the lease on '{self._key}' in {self._where}: the object was deleted.") from exc
        except AzureError as exc:
            raise _translate(exc, self._key, self._where) from exc

    def release(self) -> None:
        if self._released:
            return
        try:
            self._client.release()
        except AzureError as exc:
            error = _translate(exc, self._key, self._where)
            if not isinstance(error, LeaseHeldError | BlobNotFoundError):
                raise error from exc  # a lease already lost is released
        self._released = True


def _translate(exc: AzureError, key: str, where: str) -> StorageError:
    """Map an Azure SDK exception about ``key`` to the error tree (the one place that does)."""
    subject = f"'{key}' in {where}" if key else where
    reason = _reason(exc)
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    code = _error_code(exc)
    if code.startswith("Lease") or (status == 409 and "lease" in reason.lower()):
        return LeaseHeldError(
            f"Object {subject} is leased by another holder ({reason}).",
            hint="wait for that lease to be released or to expire",
        )
    if isinstance(exc, ResourceNotFoundError):
        if code == "ContainerNotFound":
            return BlobNotFoundError(
                f"No object {subject}: the container does not exist.",
                hint="check the location, or create a repository there first",
            )
        return BlobNotFoundError(f"No object {subject}.")
    if isinstance(exc, ResourceExistsError):
        return BlobExistsError(f"Object {subject} already exists.")
    if isinstance(exc, ClientAuthenticationError) or status == 403:
        return StorageAuthError(f"Access to {subject} was refused ({reason}).", hint=_AUTH_HINT)
    if isinstance(exc, ServiceRequestError | ServiceResponseError | IncompleteReadError) or status in _TRANSIENT_STATUS:
        return TransientStorageError(f"Temporary failure on {subject} ({reason}).")
    return StorageError(f"Storage failure on {subject} ({reason}).")


def _reason(exc: AzureError) -> str:
    """A short, secret-free reason: status, error code and the first line of the SDK message."""
    lines = str(exc.message or exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if isinstance(exc, HttpResponseError) and exc.status_code:
        code = _error_code(exc)
        text = f"HTTP {exc.status_code}{' ' + code if code else ''}: {text}"
    return redact(text)


def _error_code(exc: AzureError) -> str:
    """The service's error code (``x-ms-error-code``), which the storage SDK sets on its errors."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


class _BufferReader(io.RawIOBase):
    """A seekable read-only file over a buffer: the SDK reads blocks from it without a full copy."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(self._position + size, len(self._view))
        chunk = bytes(self._view[self._position : end])
        self._position = max(end, self._position)
        return chunk

    def readall(self) -> bytes:
        return self.read(-1)


if TYPE_CHECKING:  # mypy checks that the class implements the port (and its leases)

    def _conforms(container: ContainerClient) -> BlobStore:
        return AzureBlobStore(container)
