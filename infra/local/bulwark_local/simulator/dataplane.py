"""The blob data plane: managed-disk SAS URLs and the simulated VHD storage accounts (page blobs).

URLs are path-style, as ``BlobClient.from_blob_url`` reads loopback hosts:
``https://127.0.0.1:<port>/<account>/<container>/<blob>?...``.

- Managed disks and snapshots: account ``md-<hex>``, blob ``abcd``, reached only through a SAS that
  ``beginGetAccess`` issued: ``?sv=2018-03-28&sr=b&si=<grant>&sp=r|rw&se=<expiry>&sig=<hmac>``. The
  grant must exist (``endGetAccess`` deletes it), the signature must match and ``se`` must be in the
  future, else 403 AuthenticationFailed. The blob is ``diskSizeBytes + 512`` bytes; the last page is
  the fixed-VHD footer.
- VHD accounts (any other account name): page blobs of unmanaged VM disks, with containers, blob
  snapshots (``comp=snapshot``) and ``prevsnapshot`` diffs. Requests need a SharedKey
  ``Authorization`` header or a ``sig``; neither is verified (development accounts).

Operations: GET/HEAD with ``x-ms-range``/``Range``; Get Page Ranges (``comp=pagelist``) with
``x-ms-previous-snapshot-url`` or ``prevsnapshot``, ``marker``/``maxresults`` paging (``NextMarker``);
Put Page (``comp=page``, ``x-ms-page-write: update|clear``, 512-aligned, update at most 4 MiB).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import format_datetime
from urllib.parse import parse_qs, quote, urlsplit

from werkzeug.wrappers import Request, Response

from .pagestore import SECTOR, BlobMissingError, PageStore, PageStoreError
from .state import StateStore

STORAGE_VERSION = "2026-10-06"
SAS_VERSION = "2018-03-28"
MAX_PUT_PAGE = 4 * 1024 * 1024
MANAGED_PREFIX = "md-"


class StorageError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def response(self, request_id: str) -> Response:
        body = (
            '<?xml version="1.0" encoding="utf-8"?><Error>'
            f"<Code>{self.code}</Code><Message>{_xml_escape(self.message)}\nRequestId:{request_id}\n"
            f"Time:{dt.datetime.now(dt.UTC).isoformat()}</Message></Error>"
        )
        response = Response(body, status=self.status, content_type="application/xml")
        response.headers["x-ms-error-code"] = self.code
        return response


@dataclass(frozen=True)
class Grant:
    grant_id: str
    blob: str
    resource: str
    account: str
    container: str
    permissions: str
    expiry: str
    lineage: str
    epoch: int


class SasIssuer:
    """Issues, checks and revokes managed-disk SAS grants (persisted in the state)."""

    def __init__(self, state: StateStore, pages: PageStore, data_url: str) -> None:
        self._state = state
        self._pages = pages
        self.data_url = data_url.rstrip("/")
        secret = state.get("secrets", "sas")
        if secret is None:
            secret = {"key": secrets.token_hex(32)}
            state.put("secrets", "sas", secret)
        self._key = bytes.fromhex(secret["key"])

    def issue(self, *, blob: str, resource: str, account: str, write: bool, seconds: int) -> str:
        grant_id = str(uuid.uuid4())
        container = secrets.token_hex(6)
        expiry = (self._state.now() + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
        permissions = "rw" if write else "r"
        info = self._pages.info(blob)
        self._state.put(
            "grants",
            grant_id,
            {
                "grant_id": grant_id,
                "blob": blob,
                "resource": resource.lower(),
                "account": account,
                "container": container,
                "permissions": permissions,
                "expiry": expiry,
                "lineage": info.lineage,
                "epoch": info.epoch,
            },
        )
        signature = self._sign(grant_id, expiry, permissions, account, container)
        query = f"sv={SAS_VERSION}&sr=b&si={grant_id}&sp={permissions}&se={quote(expiry)}&sig={quote(signature)}"
        return f"{self.data_url}/{account}/{container}/abcd?{query}"

    def revoke(self, resource: str) -> int:
        """Delete every grant of a resource (``endGetAccess``); returns how many there were."""
        revoked = 0
        with self._state.lock:
            for key, grant in self._state.items("grants"):
                if grant["resource"] == resource.lower():
                    self._state.delete("grants", key)
                    revoked += 1
        return revoked

    def active(self, resource: str) -> int:
        """Unexpired grants of a resource."""
        now = self._state.now()
        return sum(
            1
            for _, g in self._state.items("grants")
            if g["resource"] == resource.lower() and _expiry(g["expiry"]) > now
        )

    def check(self, account: str, container: str, query: dict[str, str], *, write: bool) -> Grant:
        grant_id = query.get("si", "")
        record = self._state.get("grants", grant_id) if grant_id else None
        if record is None or record["account"] != account or record["container"] != container:
            raise StorageError(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. The signed identifier does not exist or "
                "access to the disk was ended (endGetAccess); request a new SAS with beginGetAccess.",
            )
        grant = Grant(**record)
        expected = self._sign(grant.grant_id, grant.expiry, grant.permissions, account, container)
        if not hmac.compare_digest(expected, query.get("sig", "")) or query.get("se") != grant.expiry:
            raise StorageError(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization "
                "header is formed correctly including the signature.",
            )
        if self._state.now() >= _expiry(grant.expiry):
            raise StorageError(
                403,
                "AuthenticationFailed",
                f"Signed expiry time [{grant.expiry}] must be after signed start time; the SAS expired. "
                "Request a new SAS with beginGetAccess.",
            )
        if write and "w" not in grant.permissions:
            raise StorageError(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            )
        return grant

    def _sign(self, grant_id: str, expiry: str, permissions: str, account: str, container: str) -> str:
        message = f"{grant_id}\n{expiry}\n{permissions}\n{account}/{container}".encode()
        return base64.b64encode(hmac.new(self._key, message, hashlib.sha256).digest()).decode()


def _expiry(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def vhd_blob_id(account: str, container: str, name: str, snapshot: str | None = None) -> str:
    base = f"vhd/{account}/{container}/{name}"
    return f"{base}?snapshot={snapshot}" if snapshot else base


class DataPlane:
    """WSGI-style handler for the data-plane port."""

    def __init__(self, state: StateStore, pages: PageStore, sas: SasIssuer) -> None:
        self._state = state
        self._pages = pages
        self._sas = sas

    def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            response = self._dispatch(request)
        except StorageError as error:
            response = error.response(request_id)
        except BlobMissingError:
            response = StorageError(404, "BlobNotFound", "The specified blob does not exist.").response(request_id)
        except PageStoreError as error:
            response = StorageError(400, "InvalidInput", str(error)).response(request_id)
        response.headers["x-ms-request-id"] = request_id
        response.headers["x-ms-version"] = request.headers.get("x-ms-version", STORAGE_VERSION)
        response.headers["Date"] = format_datetime(dt.datetime.now(dt.UTC), usegmt=True)
        return response

    # -- routing -------------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        parts = request.path.lstrip("/").split("/", 2)
        query = {k: v for k, v in request.args.items()}
        if len(parts) < 2 or not parts[0]:
            raise StorageError(400, "InvalidUri", "Expected /<account>/<container>[/<blob>].")
        account, container = parts[0], parts[1]
        name = parts[2] if len(parts) > 2 else ""
        method = request.method
        if account.startswith(MANAGED_PREFIX):
            grant = self._sas.check(account, container, query, write=method in ("PUT", "DELETE"))
            if name != "abcd":
                raise StorageError(404, "BlobNotFound", "The specified blob does not exist.")
            return self._blob_op(request, query, grant.blob, grant=grant, writable="w" in grant.permissions)
        if "sig" not in query and not request.headers.get("Authorization"):
            raise StorageError(
                403, "AuthenticationFailed", "Server failed to authenticate the request (no credential)."
            )
        if not name:
            return self._container_op(request, query, account, container)
        if not self._state.get("containers", f"{account}/{container}"):
            raise StorageError(404, "ContainerNotFound", "The specified container does not exist.")
        blob = vhd_blob_id(account, container, name, query.get("snapshot"))
        if method == "PUT" and "comp" not in query:
            return self._create_page_blob(request, blob)
        if method == "PUT" and query.get("comp") == "snapshot":
            return self._snapshot(blob)
        if method == "DELETE":
            return self._delete_vhd(request, account, container, name, query.get("snapshot"))
        return self._blob_op(request, query, blob, grant=None, writable="snapshot" not in query)

    def _blob_op(
        self, request: Request, query: dict[str, str], blob: str, *, grant: Grant | None, writable: bool
    ) -> Response:
        comp = query.get("comp")
        if request.method in ("GET", "HEAD") and comp is None:
            return self._read(request, blob)
        if request.method == "GET" and comp == "pagelist":
            return self._page_list(request, query, blob, grant)
        if request.method == "PUT" and comp == "page":
            if not writable:
                raise StorageError(
                    403, "AuthorizationPermissionMismatch", "This SAS or snapshot does not allow writes."
                )
            return self._put_page(request, blob)
        raise StorageError(400, "UnsupportedHttpVerb", f"{request.method} comp={comp} is not supported here.")

    # -- reads ---------------------------------------------------------------------------------

    def _read(self, request: Request, blob: str) -> Response:
        info = self._pages.info(blob)
        header = request.headers.get("x-ms-range") or request.headers.get("Range")
        status, start, end = 200, 0, info.size
        if header:
            start, end = _parse_range(header, info.size)
            status = 206
        headers = self._properties(blob)
        headers["Content-Length"] = str(end - start)
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
        body: Iterator[bytes] | bytes = b""
        if request.method == "GET" and end > start:
            body = self._pages.iter_read(blob, start, end - start)
        response = Response(body, status=status, direct_passthrough=True)
        response.headers.update(headers)  # after the body: HEAD keeps the blob's Content-Length
        response.content_type = "application/octet-stream"
        return response

    def _page_list(self, request: Request, query: dict[str, str], blob: str, grant: Grant | None) -> Response:
        info = self._pages.info(blob)
        offset, length = 0, info.size
        header = request.headers.get("x-ms-range") or request.headers.get("Range")
        if header:
            start, end = _parse_range(header, info.size, aligned=True)
            offset, length = start, end - start
        previous_url = request.headers.get("x-ms-previous-snapshot-url")
        items: list[tuple[int, int, bool]]
        if previous_url:
            if grant is None:
                raise StorageError(
                    400,
                    "UnsupportedHeaderForNonManagedDisksAccount",
                    "x-ms-previous-snapshot-url is only supported for managed disks; use prevsnapshot.",
                )
            previous = self._previous_grant(previous_url)
            if previous.lineage != grant.lineage:
                raise StorageError(
                    409,
                    "PreviousSnapshotNotFound",
                    "The previous snapshot is not of the same disk (incremental snapshot family).",
                )
            if previous.epoch > grant.epoch:
                raise StorageError(400, "PreviousSnapshotCannotBeNewer", "The previous snapshot is newer.")
            items = self._pages.diff(blob, previous.blob, offset, length)
        elif "prevsnapshot" in query:
            previous_blob = blob.split("?", 1)[0] + f"?snapshot={query['prevsnapshot']}"
            if not self._pages.exists(previous_blob):
                raise StorageError(409, "PreviousSnapshotNotFound", "The previous snapshot is not found.")
            if self._pages.info(previous_blob).epoch > info.epoch:
                raise StorageError(400, "PreviousSnapshotCannotBeNewer", "The previous snapshot is newer.")
            items = self._pages.diff(blob, previous_blob, offset, length)
        else:
            items = [(a, b, False) for a, b in self._pages.ranges(blob, offset, length)]
        limit = int(self._state.settings()["pagelist_page_limit"])
        if "maxresults" in query:
            limit = min(limit, max(1, int(query["maxresults"])))
        after = _decode_marker(query.get("marker"))
        remaining = [item for item in items if item[0] >= after]
        page, rest = remaining[:limit], remaining[limit:]
        xml = ['<?xml version="1.0" encoding="utf-8"?><PageList>']
        for start, end, cleared in page:
            tag = "ClearRange" if cleared else "PageRange"
            xml.append(f"<{tag}><Start>{start}</Start><End>{end - 1}</End></{tag}>")
        xml.append(f"<NextMarker>{_encode_marker(rest[0][0])}</NextMarker>" if rest else "<NextMarker />")
        xml.append("</PageList>")
        headers = self._properties(blob)
        headers["x-ms-blob-content-length"] = str(info.size)
        response = Response("".join(xml), headers=headers)
        response.content_type = "application/xml"
        return response

    def _previous_grant(self, url: str) -> Grant:
        parts = urlsplit(url)
        segments = parts.path.lstrip("/").split("/")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if len(segments) != 3 or not segments[0].startswith(MANAGED_PREFIX):
            raise StorageError(400, "InvalidHeaderValue", "x-ms-previous-snapshot-url is not a snapshot SAS URL.")
        return self._sas.check(segments[0], segments[1], query, write=False)

    # -- writes --------------------------------------------------------------------------------

    def _put_page(self, request: Request, blob: str) -> Response:
        info = self._pages.info(blob)
        header = request.headers.get("x-ms-range") or request.headers.get("Range")
        if not header:
            raise StorageError(400, "MissingRequiredHeader", "Put Page needs x-ms-range.")
        start, end = _parse_range(header, info.size, aligned=True)
        mode = request.headers.get("x-ms-page-write", "").lower()
        if mode == "update":
            if end - start > MAX_PUT_PAGE:
                raise StorageError(413, "RequestBodyTooLarge", "Put Page (update) writes at most 4 MiB per request.")
            data = request.get_data()
            if len(data) != end - start:
                raise StorageError(
                    400, "InvalidHeaderValue", f"The body is {len(data)} bytes; the range is {end - start}."
                )
            self._pages.write(blob, start, data)
        elif mode == "clear":
            self._pages.clear(blob, start, end - start)
        else:
            raise StorageError(400, "InvalidHeaderValue", "x-ms-page-write must be update or clear.")
        headers = self._properties(blob)
        headers["x-ms-request-server-encrypted"] = "true"
        if mode == "update":
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(request.get_data()).digest()).decode()
        return Response(b"", status=201, headers=headers)

    def _container_op(self, request: Request, query: dict[str, str], account: str, container: str) -> Response:
        key = f"{account}/{container}"
        if query.get("restype") != "container":
            raise StorageError(400, "InvalidUri", "Expected restype=container.")
        if request.method == "PUT":
            if self._state.get("containers", key):
                raise StorageError(409, "ContainerAlreadyExists", "The specified container already exists.")
            self._state.put("containers", key, {"name": container, "account": account})
            return Response(b"", status=201, headers={"ETag": '"0x1"'})
        if request.method in ("GET", "HEAD"):
            if not self._state.get("containers", key):
                raise StorageError(404, "ContainerNotFound", "The specified container does not exist.")
            return Response(b"", status=200, headers={"ETag": '"0x1"'})
        raise StorageError(400, "UnsupportedHttpVerb", f"{request.method} on a container is not supported.")

    def _create_page_blob(self, request: Request, blob: str) -> Response:
        if request.headers.get("x-ms-blob-type") != "PageBlob":
            raise StorageError(400, "InvalidHeaderValue", "Only page blobs (x-ms-blob-type: PageBlob).")
        size = int(request.headers.get("x-ms-blob-content-length", "-1"))
        if size < 0 or size % SECTOR:
            raise StorageError(400, "InvalidHeaderValue", "x-ms-blob-content-length must be a multiple of 512.")
        if self._pages.exists(blob):
            self._pages.delete(blob)
        self._pages.create(blob, size, lineage=str(uuid.uuid4()))
        return Response(b"", status=201, headers=self._properties(blob))

    def _snapshot(self, blob: str) -> Response:
        if "?snapshot=" in blob:
            raise StorageError(400, "InvalidQueryParameterValue", "Cannot snapshot a snapshot.")
        self._pages.info(blob)
        stamp = self._state.now()
        snapshot = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}0Z"
        while self._pages.exists(f"{blob}?snapshot={snapshot}"):
            stamp += dt.timedelta(microseconds=1)
            snapshot = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}0Z"
        self._pages.clone(blob, f"{blob}?snapshot={snapshot}")
        headers = self._properties(blob)
        headers["x-ms-snapshot"] = snapshot
        return Response(b"", status=201, headers=headers)

    def _delete_vhd(self, request: Request, account: str, container: str, name: str, snapshot: str | None) -> Response:
        base = vhd_blob_id(account, container, name)
        if snapshot:
            target = vhd_blob_id(account, container, name, snapshot)
            self._pages.info(target)
            self._pages.delete(target)
            return Response(b"", status=202)
        self._pages.info(base)
        snapshots = [b for b in self._all_vhd_snapshots(base)]
        option = request.headers.get("x-ms-delete-snapshots")
        if snapshots and option not in ("include", "only"):
            raise StorageError(
                409, "SnapshotsPresent", "This operation is not permitted because the blob has snapshots."
            )
        for item in snapshots:
            self._pages.delete(item)
        if option != "only":
            self._pages.delete(base)
        return Response(b"", status=202)

    def _all_vhd_snapshots(self, base: str) -> list[str]:
        return [b for b in self._pages.blob_ids() if b.startswith(base + "?snapshot=")]

    def _properties(self, blob: str) -> dict[str, str]:
        info = self._pages.info(blob)
        return {
            "ETag": self._pages.etag(blob),
            "Last-Modified": format_datetime(dt.datetime.now(dt.UTC), usegmt=True),
            "x-ms-blob-type": "PageBlob",
            "x-ms-blob-sequence-number": "0",
            "x-ms-lease-state": "available",
            "x-ms-lease-status": "unlocked",
            "x-ms-server-encrypted": "true",
            "Accept-Ranges": "bytes",
            "x-ms-blob-content-length": str(info.size),
        }


def _parse_range(header: str, size: int, *, aligned: bool = False) -> tuple[int, int]:
    """``bytes=a-b`` (inclusive) or ``bytes=a-`` -> ``(start, end_exclusive)`` clipped to the blob."""
    found = re.fullmatch(r"\s*bytes=(\d+)-(\d*)\s*", header)
    if not found:
        raise StorageError(400, "InvalidRange", f"The range header {header!r} is not bytes=start-end.")
    start = int(found.group(1))
    end = int(found.group(2)) + 1 if found.group(2) else size
    if aligned and (start % SECTOR or end % SECTOR):
        raise StorageError(
            416, "InvalidPageRange", "The page range specified is invalid: start and end+1 must be 512-aligned."
        )
    if start >= size or end <= start:
        raise StorageError(416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
    return start, min(end, size)


def _encode_marker(offset: int) -> str:
    return base64.urlsafe_b64encode(f"2!{offset}".encode()).decode().rstrip("=")


def _decode_marker(marker: str | None) -> int:
    if not marker:
        return 0
    try:
        text = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode()
        return int(text.split("!", 1)[1])
    except (ValueError, IndexError) as exc:
        raise StorageError(400, "InvalidQueryParameterValue", "The marker is not valid.") from exc


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
