"""The simulator's own admin API (not ARM): guest I/O, behaviour settings, the clock, VHD blobs.

Served on the ARM port under ``/_bulwark/``; JSON in and out except the raw disk bytes. No auth: the
simulator listens on loopback only. ``bulwark-sim`` is its client.

| method and path                                   | what                                                |
|---------------------------------------------------|-----------------------------------------------------|
| GET  /_bulwark/health                             | ``{"ok": true, "arm": ..., "data": ...}``           |
| GET  /_bulwark/settings, PATCH /_bulwark/settings | behaviour knobs (state.DEFAULT_SETTINGS)            |
| POST /_bulwark/clock/advance ``{"seconds": n}``   | move the simulated clock (SAS expiry)              |
| GET  /_bulwark/guest/info?disk=ID                 | ``{"size", "ranges": [[start, end), ...]}``         |
| GET  /_bulwark/guest/data?disk=ID&offset&length   | the bytes the guest sees                            |
| PUT  /_bulwark/guest/data?disk=ID&offset          | write the body (any alignment) as the guest        |
| POST /_bulwark/guest/trim?disk=ID&offset&length   | discard (TRIM): whole pages cleared, edges zeroed  |
| POST /_bulwark/vhds ``{"url", "sizeBytes"}``      | create a VHD page blob (+ footer, + container)     |
| GET  /_bulwark/stats                              | ``{"storedBytes", "blobs"}``: copy-on-write costs  |
| ...  /_bulwark/sql/..., /aci/..., /faults         | registered by sql.py, aci.py, faults.py (README)   |

``ID`` is a managed disk resource id, a snapshot resource id (read only) or a VHD blob URL. The guest
sees ``diskSizeBytes`` (managed) or the blob size less the 512-byte footer (VHD).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from .arm import json_response
from .dataplane import vhd_blob_id
from .pagestore import SECTOR, PageStore
from .state import JsonDict, StateStore
from .vhd import FOOTER_SIZE, vhd_footer

PREFIX = "/_bulwark"


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class GuestDisk:
    blob: str
    size: int
    writable: bool


AdminRoutes = dict[tuple[str, str], Callable[[Request], Response]]


class AdminApi:
    def __init__(
        self,
        state: StateStore,
        pages: PageStore,
        endpoints: Callable[[], JsonDict],
        extra: AdminRoutes | None = None,
    ) -> None:
        self._state = state
        self._pages = pages
        self._endpoints = endpoints
        self._extra = dict(extra or {})

    def handle(self, request: Request) -> Response:
        path = request.path[len(PREFIX) :].rstrip("/")
        routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/health"): lambda r: json_response({"ok": True, **self._endpoints()}),
            ("GET", "/settings"): lambda r: json_response(self._state.settings()),
            ("PATCH", "/settings"): self._patch_settings,
            ("POST", "/clock/advance"): self._advance_clock,
            ("GET", "/guest/info"): self._guest_info,
            ("GET", "/guest/data"): self._guest_read,
            ("PUT", "/guest/data"): self._guest_write,
            ("POST", "/guest/trim"): self._guest_trim,
            ("POST", "/vhds"): self._create_vhd,
            ("GET", "/stats"): lambda r: json_response(
                {"storedBytes": self._pages.stored_bytes(), "blobs": len(self._pages.blob_ids())}
            ),
            **self._extra,
        }
        handler = routes.get((request.method, path))
        try:
            if handler is None:
                raise AdminError(404, f"no admin route {request.method} {PREFIX}{path}")
            return handler(request)
        except AdminError as error:
            return json_response({"error": {"code": "AdminError", "message": error.message}}, error.status)
        except ValueError as error:
            return json_response({"error": {"code": "BadRequest", "message": str(error)}}, 400)

    # -- settings and clock --------------------------------------------------------------------

    def _patch_settings(self, request: Request) -> Response:
        try:
            return json_response(self._state.update_settings(_body(request)))
        except KeyError as error:
            raise AdminError(400, f"unknown settings: {error.args[0]}") from error

    def _advance_clock(self, request: Request) -> Response:
        seconds = float(_body(request).get("seconds", 0))
        with self._state.lock:
            offset = float(self._state.settings()["clock_offset_seconds"]) + seconds
            self._state.update_settings({"clock_offset_seconds": offset})
        return json_response({"clockOffsetSeconds": offset, "now": self._state.now().isoformat()})

    # -- guest I/O -----------------------------------------------------------------------------

    def resolve(self, target: str) -> GuestDisk:
        if target.startswith(("https://", "http://")):
            rest = target.split("://", 1)[1].split("/", 1)[1] if "/" in target.split("://", 1)[1] else ""
            parts = rest.split("?", 1)[0].split("/", 2)
            if len(parts) != 3:
                raise AdminError(400, f"{target} is not a VHD blob URL (https://host/account/container/blob)")
            blob = vhd_blob_id(*parts)
            if not self._pages.exists(blob):
                raise AdminError(404, f"no VHD blob at {target}")
            return GuestDisk(blob, self._pages.info(blob).size - FOOTER_SIZE, True)
        record = self._state.get("resources", target)
        kind = target.lower().split("/providers/microsoft.compute/")[-1].split("/")[0]
        if record is None or kind not in ("disks", "snapshots"):
            raise AdminError(404, f"no managed disk or snapshot {target}")
        props = record["doc"]["properties"]
        size = props["diskSizeBytes"]
        if props.get("diskState") in ("ReadyToUpload", "ActiveUpload"):
            size = self._pages.info(record["private"]["blob"]).size - FOOTER_SIZE
        return GuestDisk(record["private"]["blob"], size, kind == "disks")

    def _guest_info(self, request: Request) -> Response:
        disk = self.resolve(_arg(request, "disk"))
        ranges = [[a, b] for a, b in self._pages.ranges(disk.blob, 0, disk.size)]
        return json_response({"size": disk.size, "ranges": ranges, "writable": disk.writable})

    def _guest_read(self, request: Request) -> Response:
        disk = self.resolve(_arg(request, "disk"))
        offset = int(_arg(request, "offset"))
        length = int(_arg(request, "length"))
        _check_window(offset, length, disk.size)
        body = self._pages.iter_read(disk.blob, offset, length)
        response = Response(body, headers={"Content-Length": str(length)}, direct_passthrough=True)
        response.content_type = "application/octet-stream"
        return response

    def _guest_write(self, request: Request) -> Response:
        disk = self._writable(_arg(request, "disk"))
        offset = int(_arg(request, "offset"))
        data = request.get_data()
        _check_window(offset, len(data), disk.size)
        start = offset - offset % SECTOR
        end = -(-(offset + len(data)) // SECTOR) * SECTOR
        if (start, end) != (offset, offset + len(data)):
            buffer = bytearray(self._pages.read(disk.blob, start, end - start))
            buffer[offset - start : offset - start + len(data)] = data
            data = bytes(buffer)
        self._pages.write(disk.blob, start, data)
        return json_response({"written": end - start, "offset": start})

    def _guest_trim(self, request: Request) -> Response:
        disk = self._writable(_arg(request, "disk"))
        offset = int(_arg(request, "offset"))
        length = int(_arg(request, "length"))
        _check_window(offset, length, disk.size)
        first = -(-offset // SECTOR) * SECTOR
        last = (offset + length) // SECTOR * SECTOR
        if first < last:
            self._pages.clear(disk.blob, first, last - first)
            for edge_start, edge_end in ((offset, first), (last, offset + length)):
                if edge_start < edge_end:
                    self._zero(disk, edge_start, edge_end)
        else:
            self._zero(disk, offset, offset + length)
        return json_response({"cleared": max(0, last - first)})

    def _zero(self, disk: GuestDisk, start: int, end: int) -> None:
        page = start - start % SECTOR
        buffer = bytearray(self._pages.read(disk.blob, page, SECTOR))
        buffer[start - page : end - page] = bytes(end - start)
        self._pages.write(disk.blob, page, bytes(buffer))

    def _writable(self, target: str) -> GuestDisk:
        disk = self.resolve(target)
        if not disk.writable:
            raise AdminError(409, f"{target} is a snapshot: snapshots are read-only")
        return disk

    # -- VHD blobs -----------------------------------------------------------------------------

    def _create_vhd(self, request: Request) -> Response:
        body = _body(request)
        url = str(body.get("url", ""))
        size = int(body.get("sizeBytes", 0))
        if size <= 0 or size % SECTOR:
            raise AdminError(400, "sizeBytes must be a positive multiple of 512")
        rest = url.split("://", 1)[-1].split("/", 1)
        parts = rest[1].split("/", 2) if len(rest) == 2 else []
        if len(parts) != 3:
            raise AdminError(400, f"{url} is not https://host/account/container/blob")
        account, container, name = parts
        if not self._state.get("containers", f"{account}/{container}"):
            self._state.put("containers", f"{account}/{container}", {"name": container, "account": account})
        blob = vhd_blob_id(account, container, name)
        if self._pages.exists(blob):
            raise AdminError(409, f"{url} exists")
        self._pages.create(blob, size + FOOTER_SIZE, lineage=str(uuid.uuid4()))
        self._pages.write(blob, size, vhd_footer(size))
        return json_response({"url": url, "sizeBytes": size}, 201)


def admin_body(request: Request) -> JsonDict:
    """The JSON object body of an admin request ({} when empty)."""
    return _body(request)


def _body(request: Request) -> JsonDict:
    raw = request.get_data()
    if not raw:
        return {}
    body: Any = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _arg(request: Request, name: str) -> str:
    value = request.args.get(name)
    if value is None:
        raise AdminError(400, f"missing query parameter {name!r}")
    return value


def _check_window(offset: int, length: int, size: int) -> None:
    if offset < 0 or length < 0 or offset + length > size:
        raise AdminError(416, f"range {offset}+{length} is outside the disk (size {size})")
