"""A small client of the simulator's admin API (guest I/O, settings, clock, SQL, ACI, faults).

Used by bulwark-sim and tests; ``db`` and ``group`` arguments are ARM resource ids.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from .state import JsonDict

GUEST_PIECE = 4 * 1024 * 1024


class AdminApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"simulator admin API answered {status}: {message}")
        self.status = status


class AdminClient:
    def __init__(self, arm_url: str, ca_bundle: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(arm_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 443
        self._context = ssl.create_default_context(cafile=ca_bundle)
        self._timeout = timeout

    # -- settings and clock --------------------------------------------------------------------

    def health(self) -> JsonDict:
        return self._json("GET", "/health")

    def settings(self, **changes: Any) -> JsonDict:
        if changes:
            return self._json("PATCH", "/settings", changes)
        return self._json("GET", "/settings")

    def advance_clock(self, seconds: float) -> JsonDict:
        return self._json("POST", "/clock/advance", {"seconds": seconds})

    def stats(self) -> JsonDict:
        return self._json("GET", "/stats")

    # -- guest ---------------------------------------------------------------------------------

    def guest_info(self, disk: str) -> JsonDict:
        return self._json("GET", f"/guest/info?disk={quote(disk, safe='')}")

    def guest_write(self, disk: str, offset: int, data: bytes) -> None:
        for start in range(0, len(data), GUEST_PIECE):
            piece = data[start : start + GUEST_PIECE]
            self._request("PUT", f"/guest/data?disk={quote(disk, safe='')}&offset={offset + start}", piece)

    def guest_trim(self, disk: str, offset: int, length: int) -> None:
        self._json("POST", f"/guest/trim?disk={quote(disk, safe='')}&offset={offset}&length={length}")

    def guest_read(self, disk: str, offset: int, length: int) -> bytes:
        return b"".join(self.iter_guest_read(disk, offset, length))

    def iter_guest_read(self, disk: str, offset: int, length: int) -> Iterator[bytes]:
        end = offset + length
        for start in range(offset, end, GUEST_PIECE):
            size = min(GUEST_PIECE, end - start)
            yield self._request("GET", f"/guest/data?disk={quote(disk, safe='')}&offset={start}&length={size}")

    def create_vhd(self, url: str, size_bytes: int) -> JsonDict:
        return self._json("POST", "/vhds", {"url": url, "sizeBytes": size_bytes})

    # -- SQL (sql.py) ----------------------------------------------------------------------------

    def sql_catalog(self, db: str) -> JsonDict:
        """What a pre-flight asks the database: external references, unsupported principals, size, tables."""
        return self._json("GET", f"/sql/catalog?db={quote(db, safe='')}")

    def sql_set_catalog(self, db: str, **features: Any) -> JsonDict:
        """Set ``externalReferences``, ``unsupportedPrincipals`` and/or ``reportedSizeBytes``."""
        return self._json("PATCH", f"/sql/catalog?db={quote(db, safe='')}", features)

    def sql_fail(self, db: str, mode: str) -> JsonDict:
        """Export failure: external-references, unsupported-logins, firewall, gateway-timeout, timeout or none."""
        return self._json("POST", f"/sql/fail?db={quote(db, safe='')}", {"mode": mode})

    def sql_change(self, db: str, *, table: str | None = None, rows: int = 10) -> JsonDict:
        body: JsonDict = {"rows": rows}
        if table:
            body["table"] = table
        return self._json("POST", f"/sql/change?db={quote(db, safe='')}", body)

    def sql_populate(
        self, db: str, *, preset: str | None = None, tables: list[JsonDict] | None = None, replace: bool = False
    ) -> JsonDict:
        body: JsonDict = {"replace": replace}
        if preset:
            body["preset"] = preset
        if tables is not None:
            body["tables"] = tables
        return self._json("POST", f"/sql/tables?db={quote(db, safe='')}", body)

    # -- Container Instances (aci.py) ------------------------------------------------------------

    def aci_images(self, images: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
        """The image -> argv map (``{python}``, ``{repo}`` expand); with ``images``, replace it."""
        if images is None:
            result = self._json("GET", "/aci/images")
        else:
            result = self._json("PUT", "/aci/images", {"images": images})
        found: dict[str, list[str]] = result["images"]
        return found

    def aci_reset_images(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = self._json("DELETE", "/aci/images")["images"]
        return found

    def aci_kill(self, group: str, *, container: str | None = None, signal: str = "KILL") -> JsonDict:
        query = f"group={quote(group, safe='')}&signal={signal}"
        if container:
            query += f"&container={quote(container, safe='')}"
        return self._json("POST", f"/aci/kill?{query}")

    def aci_processes(self) -> list[JsonDict]:
        processes: list[JsonDict] = self._json("GET", "/aci/processes")["processes"]
        return processes

    # -- faults (faults.py) ----------------------------------------------------------------------

    def faults(self, **changes: Any) -> JsonDict:
        """With no arguments the status (config, injected counters, write windows); else merge ``changes``."""
        if changes:
            return self._json("PATCH", "/faults", changes)
        return self._json("GET", "/faults")

    def clear_faults(self) -> JsonDict:
        return self._json("DELETE", "/faults")

    # -- transport -----------------------------------------------------------------------------

    def _json(self, method: str, path: str, body: JsonDict | None = None) -> JsonDict:
        raw = self._request(method, path, None if body is None else json.dumps(body).encode())
        result: JsonDict = json.loads(raw) if raw else {}
        return result

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        connection = http.client.HTTPSConnection(self._host, self._port, context=self._context, timeout=self._timeout)
        try:
            headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
            connection.request(method, "/_bulwark" + path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status >= 400:
            try:
                message = json.loads(data)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = data[:300].decode(errors="replace")
            raise AdminApiError(response.status, message)
        return data
