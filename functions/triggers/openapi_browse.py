"""OpenAPI paths and schemas of browsing and SQL restore (``functions/triggers/http_browse.py``),
merged into the document by ``functions/triggers/openapi.py``."""

from __future__ import annotations

from typing import Any

__all__ = ["browse_paths", "browse_schemas"]

_REF = "#/components/schemas/"


def _error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF + name}}}


def browse_schemas() -> dict[str, Any]:
    secret = {
        "type": "object",
        "description": 'a reference to a secret, never the secret: {"key_vault_secret": "name"} (a secret of '
        'the app\'s Key Vault), or on the local stack only {"file": "/path"}',
    }
    return {
        "SqlRestoreRequest": {
            "type": "object",
            "required": ["point", "server", "name"],
            "additionalProperties": False,
            "properties": {
                "point": {"type": "string", "description": "a catalog BACPAC point id; with repository, its point id"},
                "server": {"type": "string", "description": "the target SQL server's resource id"},
                "name": {"type": "string", "maxLength": 128, "description": "the new database's name"},
                "swap_with_original": {
                    "type": "boolean",
                    "default": False,
                    "description": "after the import, the original is renamed <name>-old-<time> and the restored "
                    "database takes its name (needs confirm)",
                },
                "confirm": {
                    "type": "boolean",
                    "default": False,
                    "description": "agree to replace a name: the swap, or a name that exists (imported beside it, "
                    "then swapped in; the existing one is kept as <name>-old-<time>)",
                },
                "repository": {
                    "type": "object",
                    "required": ["location", "passphrase"],
                    "properties": {"location": {"type": "string"}, "passphrase": secret},
                    "description": "for a point the catalog does not know",
                },
                "login": {**secret, "description": "the server admin password (default: the point's policy's)"},
                "original": {"type": "string", "description": "the database to swap with, for a repository point"},
            },
        },
        "RestoreStarted": {
            "type": "object",
            "required": ["id", "status"],
            "properties": {
                "id": {"type": "string", "description": "the restore's orchestration instance id"},
                "status": {"type": "string", "description": "GET it to follow the restore"},
                "statusQueryGetUri": {"type": "string", "description": "the Durable status of the orchestration"},
            },
        },
        "PointContents": {
            "type": "object",
            "required": ["point"],
            "properties": {
                "point": {"$ref": _REF + "RestorePoint"},
                "tables": {
                    "type": "array",
                    "description": "BACPAC points: rows is null when the data could not be walked",
                    "items": {
                        "type": "object",
                        "properties": {
                            "schema": {"type": "string"},
                            "name": {"type": "string"},
                            "rows": {"type": ["integer", "null"]},
                            "data_bytes": {"type": "integer"},
                            "data_members": {"type": "integer"},
                        },
                    },
                },
                "total_rows": {"type": ["integer", "null"], "description": "Origin.xml's row total"},
                "disks": {
                    "type": "array",
                    "description": "image points: each disk's partitions and file systems",
                    "items": {"type": "object"},
                },
            },
        },
        "FolderListing": {
            "type": "object",
            "properties": {
                "disk": {"type": "string"},
                "partition": {"type": "integer"},
                "filesystem": {"type": "string"},
                "path": {"type": "string"},
                "type": {"type": "string"},
                "entries": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


def browse_paths() -> dict[str, Any]:
    common = {"401": _error("Unauthorized"), "503": _error("Unavailable")}
    point = {"name": "point_id", "in": "path", "required": True, "schema": {"type": "string"}}
    path = {"name": "path", "in": "query", "required": True, "schema": {"type": "string"}, "example": "p1:/etc"}
    disk = {"name": "disk", "in": "query", "schema": {"type": "string"}, "description": '"os" (default) or a LUN'}
    return {
        "/points/{point_id}/contents": {
            "parameters": [point],
            "get": {
                "operationId": "getPointContents",
                "summary": "What a restore point holds: a BACPAC's tables with row counts, a disk's partitions",
                "responses": {
                    "200": {"description": "the contents", "content": _json("PointContents")},
                    "404": _error("NotFound"),
                    **common,
                },
            },
        },
        "/points/{point_id}/files": {
            "parameters": [point, path, disk],
            "get": {
                "operationId": "listPointFiles",
                "summary": "A folder's entries (or the file itself) in an image point, read from the repository",
                "responses": {
                    "200": {"description": "the entries", "content": _json("FolderListing")},
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    **common,
                },
            },
        },
        "/points/{point_id}/files/download": {
            "parameters": [
                point,
                path,
                disk,
                {
                    "name": "Range",
                    "in": "header",
                    "schema": {"type": "string"},
                    "description": "one byte range, e.g. bytes=0-67108863; needed for files over 64 MiB",
                },
            ],
            "get": {
                "operationId": "downloadPointFile",
                "summary": "A file of an image point: whole up to 64 MiB, else one Range part of at most 64 MiB",
                "responses": {
                    "200": {"description": "the file", "content": {"application/octet-stream": {}}},
                    "206": {
                        "description": "the asked part (Content-Range)",
                        "content": {"application/octet-stream": {}},
                    },
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    "416": {"description": "the range starts past the end (Content-Range: bytes */size)"},
                    **common,
                },
            },
        },
        "/restores/sql": {
            "post": {
                "operationId": "startSqlRestore",
                "summary": "Restore a BACPAC point into a new database (validated before it starts)",
                "requestBody": {"required": True, "content": _json("SqlRestoreRequest")},
                "responses": {
                    "202": {"description": "started", "content": _json("RestoreStarted")},
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    **common,
                },
            },
        },
    }
