"""Writing a managed disk created with createOption Upload: Put Page through its write SAS.

:class:`DiskUpload` is the target a restore writes a disk image into. Azure's rules for an upload
disk (facts doc, "Upload a VHD"): the blob is the disk plus a 512-byte fixed-VHD footer; Put Page
writes whole 512-byte pages, at most 4 MiB per request; pages never written read as zeros, so only
the image's allocated blocks are sent; the upload ends with endGetAccess, which Azure refuses unless
the last 512 bytes hold a valid footer. ``write`` may be called from many threads at once: each
thread has its own azure-core pipeline (own connection pool), as in ``pageblob.PageBlobReader``, and
a failed Put Page is retried by the same policy as its reads (``dataplane_retry``).

Secrets: the SAS reaches Azure and nothing else; errors name the disk's address only.
"""

from __future__ import annotations

import logging
import struct
import threading
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from azure.core.pipeline import Pipeline
from azure.core.pipeline.policies import HeadersPolicy, UserAgentPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest

from shared.core.errors import SnapshotAccessError, SourceError

from .dataplane_retry import Transient, transient_status
from .model import SasUrl
from .pageblob import FOOTER_BYTES, DataPlaneOptions
from .redaction import install_log_redaction

__all__ = ["MAX_PUT_PAGE", "DiskUpload", "fixed_vhd_footer"]

log = logging.getLogger(__name__)

MAX_PUT_PAGE = 4 << 20
_PAGE = 512
_STORAGE_VERSION = "2021-08-06"
_VHD_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# cookie, features, version, data offset, timestamp, creator app/version/OS, sizes, geometry, type
_FOOTER = struct.Struct(">8sIIQI4sI4sQQIII16sB")


def fixed_vhd_footer(disk_size: int, *, unique_id: uuid.UUID, created: datetime) -> bytes:
    """The 512-byte footer of a fixed VHD of ``disk_size`` bytes (VHD specification, "Hard Disk
    Footer Format"); Azure checks it when an upload ends."""
    seconds = int((created - _VHD_EPOCH).total_seconds()) & 0xFFFFFFFF
    fields = [b"conectix", 2, 0x00010000, 0xFFFFFFFFFFFFFFFF, seconds, b"bwrk", 0x00010000, b"Wi2k"]
    fields += [disk_size, disk_size, _chs(disk_size), 2, 0, unique_id.bytes, 0]
    footer = bytearray(_FOOTER.pack(*fields).ljust(FOOTER_BYTES, b"\0"))
    struct.pack_into(">I", footer, 64, ~sum(footer) & 0xFFFFFFFF)  # one's complement of the byte sum
    return bytes(footer)


def _chs(size: int) -> int:
    """The footer's disk geometry (cylinders << 16 | heads << 8 | sectors per track)."""
    total = min(size // _PAGE, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        sectors, heads = 255, 16
    else:
        sectors = 17
        heads = max(4, (total // sectors + 1023) // 1024)
        if total // sectors >= heads * 1024 or heads > 16:
            sectors, heads = 31, 16
        if total // sectors >= heads * 1024:
            sectors, heads = 63, 16
    return ((total // sectors // heads) << 16) | (heads << 8) | sectors


class DiskUpload:
    """Writes one upload disk of ``size`` bytes through its write SAS; see the module docstring."""

    def __init__(self, sas: SasUrl, size: int, *, options: DataPlaneOptions | None = None) -> None:
        if size <= 0 or size % _PAGE:
            raise SourceError(f"an upload disk holds whole 512-byte pages, not {size} bytes")
        install_log_redaction()
        self._url = sas.reveal()
        self._address = sas.address
        self._size = size
        self._options = options or DataPlaneOptions()
        self._retry = self._options.retry()
        self._local = threading.local()
        self._pipelines: list[Pipeline[Any, Any]] = []
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes_written = 0

    @property
    def address(self) -> str:
        return self._address

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Write ``data`` at ``offset`` (512-aligned) in Put Page requests of at most 4 MiB; a
        short last piece of the disk is padded with zeros to its page."""
        if offset % _PAGE:
            raise SourceError(f"Put Page writes whole pages: offset {offset} is not a multiple of 512")
        if offset + len(data) > self._size:
            raise SourceError(f"a write of {len(data)} bytes at {offset} runs past the disk's {self._size} bytes")
        view = memoryview(data)
        for start in range(0, len(view), MAX_PUT_PAGE):
            piece = view[start : start + MAX_PUT_PAGE]
            if len(piece) % _PAGE:
                piece = memoryview(bytes(piece).ljust(len(piece) + _PAGE - len(piece) % _PAGE, b"\0"))
            self._put(offset + start, piece)

    def finish(self, *, unique_id: uuid.UUID, created: datetime) -> None:
        """Write the fixed-VHD footer after the disk's last byte (endGetAccess checks it)."""
        self._put(self._size, memoryview(fixed_vhd_footer(self._size, unique_id=unique_id, created=created)))

    def _put(self, offset: int, piece: memoryview) -> None:
        headers = {
            "x-ms-page-write": "update",
            "x-ms-range": f"bytes={offset}-{offset + len(piece) - 1}",
            "Content-Length": str(len(piece)),
        }

        def attempt() -> Transient | None:
            request = HttpRequest("PUT", f"{self._url}&comp=page", headers=headers, content=bytes(piece))
            response = self._pipeline().run(request).http_response
            status = response.status_code
            if status == 201:
                with self._lock:
                    self.requests += 1
                    self.bytes_written += len(piece)
                return None
            code = response.headers.get("x-ms-error-code", "")
            transient = transient_status(status, code)
            if transient is not None:
                return transient
            if status in (401, 403, 404):
                raise SnapshotAccessError(
                    f"Azure refused the write to {self._address} (HTTP {status} {code}).",
                    hint="the write SAS expired or was revoked; run the restore again (it grants a fresh one)",
                )
            raise SourceError(f"Put Page at offset {offset} of {self._address} failed: HTTP {status} {code}")

        def exhausted(attempts: int, reason: str) -> SourceError:
            return SourceError(
                f"Put Page at offset {offset} of {self._address} failed {attempts} times ({reason}).",
                hint="check the network to the disk's region; run the restore again (it is idempotent)",
            )

        self._retry.run(attempt, exhausted, name=f"Put Page at {offset} of {self._address}")

    def _pipeline(self) -> Pipeline[Any, Any]:
        pipeline: Pipeline[Any, Any] | None = getattr(self._local, "pipeline", None)
        if pipeline is None:
            transport = RequestsTransport(
                connection_verify=self._options.ca_bundle or True,
                connection_timeout=self._options.connect_timeout,
                read_timeout=self._options.read_timeout,
            )
            policies: list[Any] = [HeadersPolicy({"x-ms-version": _STORAGE_VERSION}), UserAgentPolicy("bulwark")]
            pipeline = Pipeline(transport=transport, policies=policies)
            self._local.pipeline = pipeline
            with self._lock:
                self._pipelines.append(pipeline)
        return pipeline

    def close(self) -> None:
        with self._lock:
            pipelines, self._pipelines = self._pipelines, []
        for pipeline in pipelines:
            pipeline.__exit__()

    def discard(self) -> None:
        """Nothing to remove here: the disk belongs to the restore, which deletes it on failure."""
        self.close()

    def __enter__(self) -> DiskUpload:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
