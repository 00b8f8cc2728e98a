"""The page-blob data plane: what a disk source reads through (managed-disk SAS, VHD blob snapshots).

:class:`PageBlobReader` reads one page blob (a managed snapshot behind its SAS, or a blob snapshot
of an unmanaged VHD):

* ``page_ranges()``: Get Page Ranges, every page (azure-storage-blob's ``list_page_ranges`` pager
  follows ``NextMarker``);
* ``diff_managed(previous_sas)``: Get Page Ranges Diff with ``x-ms-previous-snapshot-url``. The
  SDK's ``get_page_range_diff_for_managed_disk`` makes one request and drops ``NextMarker`` (the
  pitfall in the facts doc: a diff over 10,000 ranges would silently lose the rest), so the reader
  passes ``cls=`` to see the deserialized page list, keeps its ``next_marker`` and asks again with
  ``marker=`` until there is none;
* ``diff_snapshot(previous)``: the ``prevsnapshot`` diff of unmanaged blobs (the SDK pager pages);
* ``read(offset, length)``: one ranged GET per call, thread-safe, retried on resets, timeouts, 5xx
  and short bodies (``dataplane_retry``, the policy Put Page uses too). It does not use
  ``download_blob``: for a page blob that issues a Get Page Ranges of the whole blob after every
  ranged GET, doubling the transactions of a backup and scanning the full range list each time.
  Each thread gets its own azure-core pipeline (own connection pool) from public azure-core parts.

Secrets: a SAS URL reaches Azure and nothing else. Errors name the blob's address only, pass
through ``redact`` and chain to a redacted summary of the SDK error, never to the SDK error itself
(whose text can hold the full URL, e.g. urllib3's "Max retries exceeded with url: ...?sig=...").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline import Pipeline
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, HeadersPolicy, UserAgentPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobClient, ExponentialRetry

from shared.core.errors import SnapshotAccessError, SourceError, UnsupportedDiskError, redact
from shared.core.ranges import ChangeSet, Extent, merge_extents

from .dataplane_retry import DataPlaneRetry, Transient, error_summary, transient_status
from .model import SasUrl
from .redaction import install_log_redaction

__all__ = [
    "FOOTER_BYTES",
    "DataPlaneOptions",
    "PageBlobReader",
    "PageRange",
    "RedactedCause",
    "VhdBlobs",
    "to_change_set",
    "vhd_disk_size",
]

log = logging.getLogger(__name__)

FOOTER_BYTES = 512
_STORAGE_SCOPE = "https://storage.azure.com/.default"
_STORAGE_VERSION = "2021-08-06"
_MAX_RENEWALS = 8


@dataclass(frozen=True)
class DataPlaneOptions:
    """How readers reach blob storage.

    ``credential`` authenticates VHD storage accounts (Entra ID; the identity needs 'Storage Blob
    Data Reader', or Contributor to take blob snapshots); managed-disk SASs need none.
    """

    ca_bundle: str | None = None
    credential: TokenCredential | None = None
    read_attempts: int = 6
    backoff_seconds: float = 0.25
    backoff_max_seconds: float = 8.0
    connect_timeout: float = 20.0
    read_timeout: float = 120.0
    sleep: Callable[[float], None] = time.sleep

    def retry(self) -> DataPlaneRetry:
        """The retry policy of the readers' and uploads' own requests (ranged GETs, Put Page)."""
        return DataPlaneRetry(self.read_attempts, self.backoff_seconds, self.backoff_max_seconds, self.sleep)

    def blob_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=5),
            "connection_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "user_agent": "bulwark",
        }
        if self.ca_bundle:
            kwargs["connection_verify"] = self.ca_bundle
        return kwargs


@dataclass(frozen=True, order=True)
class PageRange:
    offset: int
    length: int
    cleared: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.length


class RedactedCause(Exception):
    """Stands in for an SDK exception in a ``raise ... from`` chain: its type and redacted text."""


class PageBlobReader:
    """Reads one page blob; ``read`` may be called from many threads at once.

    ``renew`` (SAS readers only) grants a fresh SAS when Azure refuses the current one during
    ``read`` (it expired or was revoked early, e.g. in a long backup): the reader swaps it in once
    for every thread and goes on. Without it, a refused SAS raises SnapshotAccessError.
    """

    def __init__(
        self,
        url: SasUrl | str,
        *,
        snapshot: str | None = None,
        options: DataPlaneOptions | None = None,
        renew: Callable[[], SasUrl] | None = None,
    ) -> None:
        install_log_redaction()
        self._options = options or DataPlaneOptions()
        self._retry = self._options.retry()
        if isinstance(url, SasUrl):
            self._url = url.reveal()
            self._address = url.address
            credential = None
        else:
            if "?" in url:
                raise SourceError("a VHD blob URL must not carry a query", hint="pass the SAS as a SasUrl instead")
            self._url = url
            self._address = url
            credential = self._options.credential
        self._credential = credential
        self._snapshot = snapshot
        self._blob = BlobClient.from_blob_url(
            self._url, credential=credential, snapshot=snapshot, **self._options.blob_kwargs()
        )
        self._renew = renew if isinstance(url, SasUrl) else None
        self._current = (self._blob.url, 0)  # (read URL with snapshot and SAS, generation): swapped atomically
        self._renewals = 0
        self._renew_lock = threading.Lock()
        self._local = threading.local()
        self._pipelines: list[Pipeline[Any, Any]] = []
        self._lock = threading.Lock()

    @property
    def renewals(self) -> int:
        """How often a refused SAS was replaced by a fresh one."""
        return self._renewals

    @property
    def address(self) -> str:
        """The blob's URL without any query: safe for logs and messages."""
        return self._address + (f" (snapshot {self._snapshot})" if self._snapshot else "")

    # -- metadata and ranges -----------------------------------------------------------------------

    def blob_size(self) -> int:
        while True:
            generation = self._current[1]
            try:
                return int(self._blob.get_blob_properties().size)
            except AzureError as exc:
                if self._refused(exc) and self._renew_sas(generation):
                    continue
                raise self._error(exc, "read the properties of") from _cause(exc)

    def page_ranges(self) -> Iterator[PageRange]:
        """The valid (written) ranges, ascending, over every page of the listing (``NextMarker``);
        a refused SAS is renewed (with ``renew``) and the listing resumes at the page it was on."""
        token: str | None = None
        while True:
            generation = self._current[1]
            try:
                pages = self._blob.list_page_ranges().by_page(continuation_token=token)
                for page in pages:
                    yield from (_page_range(item) for item in page)
                    token = getattr(pages, "continuation_token", None) or None
                    if token is None:
                        return
                return
            except AzureError as exc:
                if self._refused(exc) and self._renew_sas(generation):
                    continue
                raise self._error(exc, "list the page ranges of") from _cause(exc)

    def diff_managed(self, previous: SasUrl) -> Iterator[PageRange]:
        """Changed (``cleared=False``) and cleared ranges since ``previous``, a SAS of an older
        snapshot of the same managed disk; ascending, over every page (``NextMarker``)."""
        marker: str | None = None
        captured: dict[str, str | None] = {}

        def keep_marker(response: Any, deserialized: Any, headers: Any) -> Any:
            captured["next"] = getattr(deserialized, "next_marker", None) or None
            return deserialized

        renewed = False
        while True:
            captured.clear()
            generation = self._current[1]
            try:
                pages, clears = self._blob.get_page_range_diff_for_managed_disk(
                    previous.reveal(), marker=marker, cls=keep_marker
                )
            except AzureError as exc:
                # Renew this SAS once; a second refusal is the previous snapshot's SAS, the caller's to renew.
                if not renewed and self._refused(exc) and self._renew_sas(generation):
                    renewed = True
                    continue
                raise self._error(exc, "diff", previous=previous) from _cause(exc)
            found = [PageRange(r["start"], r["end"] - r["start"] + 1) for r in pages]
            found += [PageRange(r["start"], r["end"] - r["start"] + 1, True) for r in clears]
            yield from sorted(found)
            marker = captured.get("next")
            if not marker:
                return

    def diff_snapshot(self, previous_snapshot: str) -> Iterator[PageRange]:
        """Changed and cleared ranges since an older blob snapshot (``prevsnapshot``) of this blob."""
        try:
            for item in self._blob.list_page_ranges(previous_snapshot=previous_snapshot):
                yield _page_range(item)
        except AzureError as exc:
            raise self._error(exc, f"diff (against snapshot {previous_snapshot})") from _cause(exc)

    # -- data ----------------------------------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (one ranged GET), retried on transient failures."""
        if length <= 0:
            return b""

        def attempt() -> bytes | Transient:
            url, generation = self._current
            request = HttpRequest("GET", url, headers={"x-ms-range": f"bytes={offset}-{offset + length - 1}"})
            try:
                response = self._pipeline().run(request).http_response
                status = response.status_code
                if status in (200, 206):
                    body: bytes = response.body()
                    if len(body) == length:
                        return body
                    return Transient(f"short body: {len(body)} of {length} bytes")
            except HttpResponseError as exc:  # e.g. a stream broken in the middle of the body
                return Transient(error_summary(exc))
            code = response.headers.get("x-ms-error-code", "")
            if status == 403 and self._renew is not None and self._renew_sas(generation):
                return Transient(f"HTTP 403 {code}: the SAS was refused and renewed")
            transient = transient_status(status, code, retry_after=response.headers.get("Retry-After"))
            if transient is not None:
                return transient
            raise self._status_error(status, code, f"read {length} bytes at offset {offset} of")

        def exhausted(attempts: int, reason: str) -> SourceError:
            return SourceError(
                f"Reading {length} bytes at offset {offset} of {self.address} failed {attempts} times ({reason}).",
                hint="check the network to the storage account; run the backup again",
            )

        return self._retry.run(attempt, exhausted, name=f"read of {self.address} at {offset}")

    def _refused(self, exc: AzureError) -> bool:
        if self._renew is None:
            return False
        status = exc.status_code if isinstance(exc, HttpResponseError) else None
        return isinstance(exc, ClientAuthenticationError) or status == 403

    def _renew_sas(self, refused_generation: int) -> bool:
        """Swap in a fresh SAS unless another thread already did; False when renewing is exhausted."""
        if self._renew is None:
            return False
        with self._renew_lock:
            if self._current[1] != refused_generation:
                return True  # another thread renewed while this request was out
            if self._renewals >= _MAX_RENEWALS:
                return False
            fresh = self._renew()
            old = self._blob
            self._blob = BlobClient.from_blob_url(
                fresh.reveal(), snapshot=self._snapshot, **self._options.blob_kwargs()
            )
            self._current = (self._blob.url, refused_generation + 1)
            self._renewals += 1
            old.close()
        log.info("the SAS for %s was refused; continuing with a fresh one", self.address)
        return True

    def close(self) -> None:
        with self._lock:
            pipelines, self._pipelines = self._pipelines, []
        for pipeline in pipelines:
            pipeline.__exit__()
        self._blob.close()

    def _pipeline(self) -> Pipeline[Any, Any]:
        pipeline: Pipeline[Any, Any] | None = getattr(self._local, "pipeline", None)
        if pipeline is None:
            policies: list[Any] = [
                HeadersPolicy({"x-ms-version": _STORAGE_VERSION}),
                UserAgentPolicy("bulwark"),
            ]
            if self._credential is not None:
                policies.append(BearerTokenCredentialPolicy(self._credential, _STORAGE_SCOPE))
            transport = RequestsTransport(
                connection_verify=self._options.ca_bundle or True,
                connection_timeout=self._options.connect_timeout,
                read_timeout=self._options.read_timeout,
            )
            pipeline = Pipeline(transport=transport, policies=policies)
            self._local.pipeline = pipeline
            with self._lock:
                self._pipelines.append(pipeline)
        return pipeline

    # -- errors --------------------------------------------------------------------------------------

    def _error(self, exc: AzureError, action: str, *, previous: SasUrl | None = None) -> SourceError:
        status = exc.status_code if isinstance(exc, HttpResponseError) else None
        code = _storage_code(exc)
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            return self._status_error(status or 403, code, action)
        if isinstance(exc, ResourceNotFoundError) or status == 404:
            return self._status_error(404, code, action)
        if code in ("PreviousSnapshotNotFound", "PreviousSnapshotCannotBeNewer"):
            return SourceError(
                f"Cannot {action} {self.address} against {previous.address if previous else 'the previous snapshot'}: "
                f"{code} (the previous snapshot is not an older snapshot of the same disk).",
                hint="back up this snapshot in full: its chain no longer matches the last restore point",
            )
        if code == "UnsupportedHeaderForNonManagedDisksAccount":
            return SourceError(
                f"Cannot {action} {self.address}: it is not a managed-disk snapshot.",
                hint="unmanaged (VHD) disks diff against a blob snapshot (prevsnapshot)",
            )
        reason = redact(f"{type(exc).__name__}{f' HTTP {status}' if status else ''} {code}: {_first_line(exc)}")
        return SourceError(f"Cannot {action} {self.address} ({reason}).", hint="run the backup again")

    def _status_error(self, status: int, code: str, action: str) -> SourceError:
        if status in (401, 403):
            return SnapshotAccessError(
                f"Access to {self.address} was refused ({status} {code}) while trying to {action} it: "
                "the SAS expired, was revoked (endGetAccess) or is not valid for this operation.",
                hint="grant access again (beginGetAccess) and retry; make the SAS outlive the backup",
            )
        if status == 404:
            return SourceError(
                f"{self.address} does not exist ({code or 'BlobNotFound'}) while trying to {action} it.",
                hint="the snapshot or blob was deleted; take a new snapshot",
            )
        return SourceError(f"Cannot {action} {self.address}: HTTP {status} {code}.", hint="run the backup again")


class VhdBlobs:
    """Blob snapshots of unmanaged VHD disks in their storage accounts (Entra ID credential)."""

    def __init__(self, options: DataPlaneOptions) -> None:
        self._options = options

    def create_snapshot(self, vhd_uri: str, *, metadata: dict[str, str] | None = None) -> str:
        """Snapshot the VHD page blob; returns the snapshot's timestamp (its id)."""
        client = self._client(vhd_uri)
        try:
            result = client.create_snapshot(metadata=metadata)
        except AzureError as exc:
            raise _vhd_error(exc, "snapshot", vhd_uri) from _cause(exc)
        finally:
            client.close()
        return str(result["snapshot"])

    def delete_snapshot(self, vhd_uri: str, snapshot: str) -> None:
        """Delete one blob snapshot; one already gone is not an error."""
        client = self._client(vhd_uri, snapshot=snapshot)
        try:
            client.delete_blob()
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise _vhd_error(exc, f"delete snapshot {snapshot} of", vhd_uri) from _cause(exc)
        finally:
            client.close()

    def reader(self, vhd_uri: str, snapshot: str) -> PageBlobReader:
        return PageBlobReader(vhd_uri, snapshot=snapshot, options=self._options)

    def _client(self, vhd_uri: str, *, snapshot: str | None = None) -> BlobClient:
        if "?" in vhd_uri:
            raise SourceError("a VHD URI must not carry a query string", hint="pass the blob's URL only")
        return BlobClient.from_blob_url(
            vhd_uri, credential=self._options.credential, snapshot=snapshot, **self._options.blob_kwargs()
        )


def vhd_disk_size(reader: PageBlobReader) -> int:
    """The disk size a fixed-VHD page blob holds: the blob less its 512-byte footer, which must
    carry the ``conectix`` cookie (VHDX and dynamic VHDs are refused)."""
    blob_size = reader.blob_size()
    if blob_size < FOOTER_BYTES or blob_size % 512:
        raise UnsupportedDiskError(
            f"{reader.address} is {blob_size} bytes: not a fixed VHD (a multiple of 512 + footer)"
        )
    footer = reader.read(blob_size - FOOTER_BYTES, FOOTER_BYTES)
    if footer[:8] != b"conectix":
        raise UnsupportedDiskError(
            f"{reader.address} does not end in a fixed-VHD footer (no 'conectix' cookie).",
            hint="Premium SSD v2 and Ultra disk snapshots are VHDX; Bulwark reads fixed-VHD snapshots only",
        )
    return blob_size - FOOTER_BYTES


def to_change_set(ranges: Iterable[PageRange], size: int) -> ChangeSet:
    """A ChangeSet of a disk of ``size`` bytes from a page-range diff (the footer and anything past
    the disk's end clipped away)."""
    changed: list[Extent] = []
    cleared: list[Extent] = []
    for item in ranges:
        start, end = max(0, item.offset), min(size, item.end)
        if end > start:
            (cleared if item.cleared else changed).append(Extent(start, end - start))
    return ChangeSet(merge_extents(changed), merge_extents(cleared))


def _vhd_error(exc: AzureError, action: str, uri: str) -> SourceError:
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    code = _storage_code(exc)
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return SnapshotAccessError(
            f"Storage refused to {action} {uri} ({status} {code}).",
            hint="give the identity 'Storage Blob Data Contributor' on the VM's storage account",
        )
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return SourceError(
            f"Cannot {action} {uri}: {code or 'not found'}.",
            hint="check the VM's storage profile: the VHD or its container no longer exists",
        )
    return SourceError(redact(f"Cannot {action} {uri} ({code or type(exc).__name__}: {_first_line(exc)})."))


def _page_range(item: Any) -> PageRange:
    start, end = int(item.start), int(item.end)
    return PageRange(start, end - start + 1, bool(item.cleared))


def _cause(exc: BaseException) -> RedactedCause:
    return RedactedCause(error_summary(exc))


def _storage_code(exc: AzureError) -> str:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _first_line(exc: BaseException) -> str:
    lines = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return redact(lines[0] if lines else "")
