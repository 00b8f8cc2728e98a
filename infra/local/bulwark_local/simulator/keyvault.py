"""Key Vault secrets: the data plane the real ``SecretClient`` (azure-keyvault-secrets) speaks.

Served on the ARM port under ``/keyvault/{vault}``, so a vault's URL is
``https://127.0.0.1:<arm port>/keyvault/<vault>`` (Azure: ``https://<vault>.vault.azure.net``; the
simulator has one host name, so the vault is the first path segment). Vaults exist on first write.

| method and path                                          | what                                            |
|----------------------------------------------------------|-------------------------------------------------|
| PUT /keyvault/{vault}/secrets/{name}?api-version=V        | a new version: ``{"value", "contentType", ...}``|
| GET /keyvault/{vault}/secrets/{name}[/{version}]?api-...  | the latest (or that) version's secret bundle    |

As Key Vault does: a request without a bearer token gets 401 with the ``WWW-Authenticate``
challenge the SDK's challenge policy answers (then any bearer token is accepted); a missing
``api-version`` is 400 ``BadParameter``; an unknown secret or version 404 ``SecretNotFound``; a
disabled version 403 ``Forbidden`` (inner ``SecretDisabled``). Known deviation: a bundle's ``id`` is
``https://<host>/secrets/<name>/<version>`` without the ``/keyvault/<vault>`` prefix, because the SDK
parses ids as exactly ``/secrets/<name>[/<version>]``.

Secrets are kept in ``<state>/keyvault.json`` (mode 0600, rewritten atomically) and never logged.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from .arm import json_response
from .state import JsonDict

__all__ = ["PREFIX", "KeyVaultSecrets"]

PREFIX = "/keyvault"
TENANT_ID = "00000000-0000-0000-0000-0000000b0b0a"
_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_VAULT = re.compile(r"^[a-zA-Z][0-9a-zA-Z-]{1,22}[0-9a-zA-Z]$")
_CHALLENGE = f'Bearer authorization="https://login.microsoftonline.com/{TENANT_ID}", resource="https://vault.azure.net"'


class _VaultError(Exception):
    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner

    def response(self) -> Response:
        error: JsonDict = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return json_response({"error": error}, self.status)


class KeyVaultSecrets:
    """Every simulated vault's secrets: ``{vault: {name: [version, ...]}}``, newest version last."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / "keyvault.json"
        self._lock = threading.Lock()
        self._vaults: dict[str, dict[str, list[JsonDict]]] = {}
        if self._path.exists():
            self._vaults = json.loads(self._path.read_text(encoding="utf-8"))

    def handles(self, path: str) -> bool:
        return path.startswith(PREFIX + "/")

    def handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except _VaultError as error:
            return error.response()

    def _route(self, request: Request) -> Response:
        parts = request.path[len(PREFIX) + 1 :].split("/")
        authorization = request.headers.get("Authorization", "")
        if not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
            response = json_response(
                {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                401,
            )
            response.headers["WWW-Authenticate"] = _CHALLENGE
            return response
        if not request.args.get("api-version"):
            raise _VaultError(400, "BadParameter", "The request URI contains an invalid api-version parameter.")
        if len(parts) < 3 or parts[1] != "secrets" or not _VAULT.match(parts[0]):
            raise _VaultError(404, "NotFound", f"The requested path {request.path} is not served by this vault.")
        vault, name, version = parts[0].lower(), parts[2], "/".join(parts[3:])
        if not _NAME.match(name):
            raise _VaultError(400, "BadParameter", f"The request URI contains an invalid name: {name}")
        if request.method == "PUT" and not version:
            return self._set(request, vault, name)
        if request.method == "GET" and "/" not in version:
            return json_response(self._bundle(request, name, self._find(vault, name, version)))
        raise _VaultError(405, "MethodNotAllowed", f"{request.method} is not supported on {request.path}.")

    def _set(self, request: Request, vault: str, name: str) -> Response:
        try:
            body: Any = json.loads(request.get_data() or b"{}")
        except ValueError:
            raise _VaultError(400, "BadParameter", "The request body is not valid JSON.") from None
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, str):
            raise _VaultError(400, "BadParameter", "Property 'value' is required and must be a string.")
        now = int(time.time())
        attributes = dict(body.get("attributes") or {})
        record: JsonDict = {
            "version": uuid.uuid4().hex,
            "value": value,
            "contentType": body.get("contentType"),
            "tags": body.get("tags"),
            "attributes": {
                "enabled": attributes.get("enabled", True) is not False,
                "nbf": attributes.get("nbf"),
                "exp": attributes.get("exp"),
                "created": now,
                "updated": now,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
        }
        with self._lock:
            self._vaults.setdefault(vault, {}).setdefault(name.lower(), []).append(record)
            self._save()
        return json_response(self._bundle(request, name, record))

    def _find(self, vault: str, name: str, version: str) -> JsonDict:
        with self._lock:
            versions = list(self._vaults.get(vault, {}).get(name.lower(), []))
        found = next((v for v in versions if v["version"] == version), None) if version else None
        if not version and versions:
            found = versions[-1]
        if found is None:
            what = f"(name/id) {name}" + (f" with version {version}" if version else "")
            raise _VaultError(
                404,
                "SecretNotFound",
                f"A secret with {what} was not found in this key vault. If you recently deleted this secret you "
                "may be able to recover it using the correct recovery command.",
            )
        if not found["attributes"]["enabled"]:
            raise _VaultError(403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled")
        return found

    def _bundle(self, request: Request, name: str, record: JsonDict) -> JsonDict:
        attributes = {k: v for k, v in record["attributes"].items() if v is not None}
        bundle: JsonDict = {
            "value": record["value"],
            "id": f"{request.host_url.rstrip('/')}/secrets/{name}/{record['version']}",
            "attributes": attributes,
        }
        if record.get("contentType"):
            bundle["contentType"] = record["contentType"]
        if record.get("tags"):
            bundle["tags"] = record["tags"]
        return bundle

    def _save(self) -> None:
        temporary = self._path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(self._vaults, handle)
        os.replace(temporary, self._path)
