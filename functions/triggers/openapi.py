"""The OpenAPI 3.1 description of the HTTP API (``functions/triggers/http_api.py`` serves it at
``GET /api/openapi.json``).

It is generated, not kept by hand: the Policy, Session and RestorePoint schemas come from the
models themselves (``openapi_components``, ``catalog_components``), so the description cannot drift
from what the API reads and writes. ``python -m functions.triggers.openapi`` prints it.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from functions.triggers.openapi_browse import browse_paths, browse_schemas
from functions.triggers.openapi_reports import report_paths
from functions.triggers.openapi_restore import restore_paths, restore_schemas
from shared.catalog.model import PointKind, catalog_components
from shared.policy.document import openapi_components
from shared.services.api import DEFAULT_LIMIT, MAX_LIMIT

__all__ = ["openapi_document"]

VERSION = "1.0.0"
_REF = "#/components/schemas/"


@functools.cache
def _document() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        **openapi_components(),
        **catalog_components(_REF),
        **_api_schemas(),
        **browse_schemas(),
        **restore_schemas(),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bulwark",
            "version": VERSION,
            "summary": "Backup policies, on-demand runs, and the catalog of sessions and restore points.",
            "description": "Every request needs the function key (header x-functions-key, or ?code=). "
            "Errors answer an Error document whose problems name each bad field and its fix.",
        },
        "servers": [{"url": "/api"}],
        "security": [{"functionKey": []}, {"functionKeyQuery": []}],
        "paths": {**_paths(), **report_paths(), **browse_paths(), **restore_paths()},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
            "parameters": _parameters(),
            "responses": _responses(),
            "headers": {
                "ETag": {"description": "the policy's version; send it back as If-Match", "schema": {"type": "string"}}
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh copy)."""
    return copy.deepcopy(_document())


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _api_schemas() -> dict[str, Any]:
    return {
        "Problem": {
            "type": "object",
            "description": "One thing wrong with one field of the request.",
            "properties": {
                "path": {
                    "type": "string",
                    "description": "the field: a policy path like schedule.daily.times[0], a query parameter, "
                    "a header, or '' for the body as a whole",
                },
                "message": {"type": "string", "description": "what is wrong"},
                "fix": {"type": "string", "description": "how to fix it"},
            },
            "required": ["path", "message", "fix"],
        },
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "description": "stable, for programs (e.g. policy_invalid)"},
                        "message": {"type": "string"},
                        "hint": {"type": "string", "description": "what to do next"},
                        "problems": {"type": "array", "items": _ref("Problem")},
                    },
                    "required": ["code", "message", "hint", "problems"],
                },
                "code": {"type": "string", "deprecated": True, "description": "same as error.code"},
                "message": {"type": "string", "deprecated": True, "description": "same as error.message"},
                "hint": {"type": "string", "deprecated": True, "description": "same as error.hint"},
            },
            "required": ["error"],
        },
        "PolicyList": {
            "type": "object",
            "properties": {
                "policies": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"etag": {"type": "string"}, "policy": _ref("Policy")},
                        "required": ["etag", "policy"],
                    },
                },
                "count": {"type": "integer", "minimum": 0},
            },
            "required": ["policies", "count"],
        },
        "RunRequest": {
            "type": "object",
            "properties": {
                "image_level": {
                    "type": "boolean",
                    "description": "make an image-level backup (default: the policy's setting)",
                }
            },
            "additionalProperties": False,
        },
        "CheckStatus": {
            "type": "object",
            "description": "The Durable Functions check-status links of the started session.",
            "properties": {
                "id": {"type": "string", "description": "the session's id"},
                "statusQueryGetUri": {"type": "string"},
                "sendEventPostUri": {"type": "string"},
                "terminatePostUri": {"type": "string"},
                "purgeHistoryDeleteUri": {"type": "string"},
            },
            "required": ["id"],
        },
        "SessionList": {
            "type": "object",
            "properties": {
                "sessions": {"type": "array", "items": _ref("Session")},
                "count": {"type": "integer", "minimum": 0},
            },
            "required": ["sessions", "count"],
        },
        "SessionDetail": {
            "type": "object",
            "description": "A session: the orchestration's live status and the catalog's record.",
            "properties": {
                "id": {"type": "string"},
                "name": {"type": ["string", "null"], "description": "the orchestrator"},
                "runtime_status": {
                    "type": ["string", "null"],
                    "description": "Pending, Running, Completed, Failed, Terminated ...; null once purged",
                },
                "created": {"type": ["string", "null"], "format": "date-time"},
                "last_updated": {"type": ["string", "null"], "format": "date-time"},
                "custom_status": {"description": "progress: phase, resources done, bytes moved"},
                "output": {"description": "the session's record when it has completed"},
                "catalog": {"anyOf": [_ref("Session"), {"type": "null"}], "description": "null while it runs"},
            },
            "required": ["id", "runtime_status", "catalog"],
        },
        "PointList": {
            "type": "object",
            "properties": {
                "points": {"type": "array", "items": _ref("RestorePoint")},
                "count": {"type": "integer", "minimum": 0},
            },
            "required": ["points", "count"],
        },
    }


def _parameters() -> dict[str, Any]:
    return {
        "PolicyId": {
            "name": "policy_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"},
        },
        "Limit": {
            "name": "limit",
            "in": "query",
            "description": f"at most this many (default {DEFAULT_LIMIT})",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        },
    }


def _responses() -> dict[str, Any]:
    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": _json(_ref("Error"))}

    return {
        "BadRequest": error("bad input: the problems name each field and its fix; nothing was stored"),
        "NotFound": error("no such policy or session"),
        "Conflict": error("a policy with this id exists already"),
        "PreconditionFailed": error("the policy changed since the If-Match ETag was read"),
        "UnsupportedMediaType": error("the body is not JSON (Content-Type)"),
        "PreconditionRequired": error("an update without If-Match"),
        "Unavailable": error("storage or Azure is unavailable; retry"),
        "Unauthorized": {"description": "no or a wrong function key"},
    }


def _paths() -> dict[str, Any]:
    policy_body = {"required": True, "content": _json(_ref("Policy"))}
    etag = {"ETag": {"$ref": "#/components/headers/ETag"}}
    if_match = {
        "name": "If-Match",
        "in": "header",
        "schema": {"type": "string"},
    }
    common = {"401": _error("Unauthorized"), "503": _error("Unavailable")}
    policy_id = {"$ref": "#/components/parameters/PolicyId"}
    return {
        "/policies": {
            "get": {
                "operationId": "listPolicies",
                "summary": "Every policy with its ETag, by id",
                "responses": {"200": {"description": "the policies", "content": _json(_ref("PolicyList"))}, **common},
            },
            "post": {
                "operationId": "createPolicy",
                "summary": "Create a policy",
                "requestBody": policy_body,
                "responses": {
                    "201": {
                        "description": "created",
                        "headers": {
                            **etag,
                            "Location": {"description": "the policy's URL", "schema": {"type": "string"}},
                        },
                        "content": _json(_ref("Policy")),
                    },
                    "400": _error("BadRequest"),
                    "409": _error("Conflict"),
                    "415": _error("UnsupportedMediaType"),
                    **common,
                },
            },
        },
        "/policies/{policy_id}": {
            "parameters": [policy_id],
            "get": {
                "operationId": "getPolicy",
                "summary": "A policy, its ETag in the ETag header",
                "responses": {
                    "200": {"description": "the policy", "headers": etag, "content": _json(_ref("Policy"))},
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    **common,
                },
            },
            "put": {
                "operationId": "updatePolicy",
                "summary": "Replace a policy (If-Match: its ETag, or * to overwrite)",
                "parameters": [{**if_match, "required": True, "description": "the ETag read with the policy, or *"}],
                "requestBody": policy_body,
                "responses": {
                    "200": {"description": "updated", "headers": etag, "content": _json(_ref("Policy"))},
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    "412": _error("PreconditionFailed"),
                    "415": _error("UnsupportedMediaType"),
                    "428": _error("PreconditionRequired"),
                    **common,
                },
            },
            "delete": {
                "operationId": "deletePolicy",
                "summary": "Delete a policy (its sessions and restore points stay in the catalog)",
                "parameters": [{**if_match, "required": False, "description": "delete only this version"}],
                "responses": {
                    "204": {"description": "deleted"},
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    "412": _error("PreconditionFailed"),
                    **common,
                },
            },
        },
        "/policies/{policy_id}/run": {
            "parameters": [policy_id],
            "post": {
                "operationId": "runPolicy",
                "summary": "Start a session of the policy now",
                "requestBody": {"required": False, "content": _json(_ref("RunRequest"))},
                "responses": {
                    "202": {
                        "description": "started; poll the statusQueryGetUri or GET /sessions/{id}",
                        "content": _json(_ref("CheckStatus")),
                    },
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    "415": _error("UnsupportedMediaType"),
                    **common,
                },
            },
        },
        "/sessions": {
            "get": {
                "operationId": "listSessions",
                "summary": "The catalog's sessions, newest first (of one policy, or of every stored policy)",
                "parameters": [
                    {"name": "policy", "in": "query", "schema": {"type": "string"}, "description": "a policy id"},
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "sessions started at or after this time (with a time zone)",
                    },
                    {
                        "name": "until",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "sessions started before this time",
                    },
                    {"$ref": "#/components/parameters/Limit"},
                ],
                "responses": {
                    "200": {"description": "the sessions", "content": _json(_ref("SessionList"))},
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    **common,
                },
            },
        },
        "/sessions/{session_id}": {
            "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {
                "operationId": "getSession",
                "summary": "A session: live orchestration status and the catalog's record",
                "responses": {
                    "200": {"description": "the session", "content": _json(_ref("SessionDetail"))},
                    "404": _error("NotFound"),
                    **common,
                },
            },
        },
        "/points": {
            "get": {
                "operationId": "listPoints",
                "summary": "The catalog's restore points of a VM or database, newest first",
                "parameters": [
                    {
                        "name": "resource",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "the ARM id of the VM or SQL database",
                    },
                    {
                        "name": "kind",
                        "in": "query",
                        "schema": {"type": "string", "enum": [k.value for k in PointKind]},
                    },
                    {"$ref": "#/components/parameters/Limit"},
                ],
                "responses": {
                    "200": {"description": "the points", "content": _json(_ref("PointList"))},
                    "400": _error("BadRequest"),
                    **common,
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This description",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}},
            }
        },
    }


if __name__ == "__main__":
    print(json.dumps(openapi_document(), indent=2))
