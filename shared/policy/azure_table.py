"""Azure Table storage plumbing for the policy store and the catalog.

* :func:`pack_document` / :func:`unpack_document`: a JSON document across entity properties. Table
  storage limits a string property to 64 KiB (32,000 UTF-16 characters here) and an entity to 1 MiB,
  so a document is ASCII JSON in ``Doc0``…``DocN`` (``DocFormat`` ``"json"``); a document too long
  for that is zlib-compressed into binary chunks (``"json+zlib"``). ``DocChunks`` counts them.
* :func:`translate_table_error`: SDK exceptions into :mod:`shared.core.errors`, once. Callers map
  the outcomes that mean something to them (404 on an entity, 409, 412) before calling it.
* :func:`ensure_table`: create a table if it is missing.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient

from shared.core.errors import (
    BulwarkError,
    ConfigError,
    IntegrityError,
    StorageAuthError,
    StorageError,
    TransientStorageError,
    UsageError,
    redact,
)

__all__ = [
    "MAX_DOCUMENT_CHUNKS",
    "ensure_table",
    "error_code",
    "etag_of",
    "is_missing_entity",
    "pack_document",
    "translate_table_error",
    "unpack_document",
]

_TEXT_CHUNK = 32_000
"""Characters per string property: 64,000 bytes in UTF-16, under the 64 KiB limit."""
_BINARY_CHUNK = 64_000
MAX_DOCUMENT_CHUNKS = 14
"""14 x 64,000 bytes leaves room under the 1 MiB entity limit for keys and the other properties."""
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_BODY_CODE = re.compile(r'"code"\s*:\s*"([A-Za-z]+)"')
_AUTH_HINT = "check that the app's identity has the 'Storage Table Data Contributor' role, or the connection string"


def pack_document(document: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """Entity properties holding ``document``; ``what`` names it in the error when it is too large."""
    text = json.dumps(document, ensure_ascii=True, separators=(",", ":"))
    if len(text) <= _TEXT_CHUNK * MAX_DOCUMENT_CHUNKS:
        chunks: list[str | bytes] = [text[i : i + _TEXT_CHUNK] for i in range(0, len(text), _TEXT_CHUNK)] or [""]
        doc_format = "json"
    else:
        packed = zlib.compress(text.encode("ascii"), 6)
        if len(packed) > _BINARY_CHUNK * MAX_DOCUMENT_CHUNKS:
            raise UsageError(
                f"{what} is too large to store: {len(text) // 1024} KiB of JSON, "
                f"{len(packed) // 1024} KiB compressed; Table storage holds about "
                f"{_BINARY_CHUNK * MAX_DOCUMENT_CHUNKS // 1024} KiB per entity.",
                hint="split it, e.g. a policy into several policies, or select resources by resource group or tag",
            )
        chunks = [packed[i : i + _BINARY_CHUNK] for i in range(0, len(packed), _BINARY_CHUNK)]
        doc_format = "json+zlib"
    properties: dict[str, Any] = {"DocFormat": doc_format, "DocChunks": len(chunks)}
    for index, chunk in enumerate(chunks):
        properties[f"Doc{index}"] = chunk
    return properties


def unpack_document(entity: Mapping[str, Any], *, what: str) -> Any:
    """The document :func:`pack_document` stored in ``entity``."""
    try:
        doc_format = entity["DocFormat"]
        chunks = [entity[f"Doc{index}"] for index in range(int(entity["DocChunks"]))]
        if doc_format == "json":
            text = "".join(chunks)
        elif doc_format == "json+zlib":
            text = zlib.decompress(b"".join(bytes(chunk) for chunk in chunks)).decode("ascii")
        else:
            raise ValueError(f"unknown DocFormat {doc_format!r}")
        return json.loads(text)
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise IntegrityError(
            f"The stored entity of {what} is damaged: {exc}.",
            hint="it was changed outside Bulwark; delete it or restore the table from a backup",
        ) from exc


def etag_of(metadata: Mapping[str, Any]) -> str:
    etag = metadata.get("etag")
    if not isinstance(etag, str) or not etag:
        raise StorageError("Table storage answered without an ETag.", hint="retry; if it persists, report it")
    return etag


def error_code(exc: AzureError) -> str:
    """The service's error code (e.g. ``ResourceNotFound``, ``TableNotFound``), or ``""``.

    Some SDK paths (create_entity) leave ``error_code`` unset; the code is then read from the body.
    """
    code = getattr(exc, "error_code", None)
    if code:
        return str(getattr(code, "value", code))
    found = _BODY_CODE.search(str(exc))
    return found.group(1) if found else ""


def is_missing_entity(exc: AzureError) -> bool:
    """A 404 about the entity itself (not about a missing table)."""
    return isinstance(exc, HttpResponseError) and exc.status_code == 404 and error_code(exc) != "TableNotFound"


def translate_table_error(exc: AzureError, what: str, table: str) -> BulwarkError:
    """The error-tree equivalent of an SDK exception raised while working on ``what`` in ``table``."""
    detail = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if error_code(exc) == "TableNotFound":
        return ConfigError(
            f"The table '{table}' does not exist (while working on {what}).",
            hint="create it (ensure_table) or check the storage account the app is configured with",
        )
    if isinstance(exc, ClientAuthenticationError) or (
        isinstance(exc, HttpResponseError) and exc.status_code in (401, 403)
    ):
        return StorageAuthError(f"Table storage refused access to {what} in '{table}': {detail}", hint=_AUTH_HINT)
    if isinstance(exc, ServiceRequestError | ServiceResponseError) or (
        isinstance(exc, HttpResponseError) and exc.status_code in _TRANSIENT_STATUS
    ):
        return TransientStorageError(f"Table storage failed on {what} in '{table}': {detail}", hint="retry")
    return StorageError(f"Table storage failed on {what} in '{table}': {detail}")


def ensure_table(table: TableClient) -> None:
    """Create the table if it does not exist."""
    try:
        table.create_table()
    except ResourceExistsError:
        return
    except AzureError as exc:
        raise translate_table_error(exc, "the table itself", table.table_name) from exc
