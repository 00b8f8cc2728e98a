"""The OpenAPI paths of the report routes (``functions/triggers/http_reports.py``), merged into the
document by ``functions/triggers/openapi.py``."""

from __future__ import annotations

from typing import Any

__all__ = ["report_paths"]


def _error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


_COST = {
    "type": "object",
    "description": "A monthly cost estimate: shared/report/cost.py says how each line is computed.",
    "properties": {
        "policy_id": {"type": "string"},
        "currency": {"type": "string", "example": "USD"},
        "region": {"type": "string", "description": "the region of the price table", "example": "eastus"},
        "prices": {
            "type": "object",
            "properties": {"as_of": {"type": "string"}, "source": {"type": "string"}},
            "required": ["as_of", "source"],
        },
        "tier": {"type": "string", "description": "the repository's access tier priced in the lines"},
        "monthly_total": {"type": "number", "minimum": 0},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "item": {
                        "type": "string",
                        "description": "snapshots, repository storage, write transactions, read transactions, "
                        "cross-region transfer",
                    },
                    "detail": {"type": "string"},
                    "quantity": {"type": "number"},
                    "unit": {"type": "string"},
                    "unit_price": {"type": "number"},
                    "monthly": {"type": "number"},
                },
                "required": ["item", "detail", "quantity", "unit", "unit_price", "monthly"],
            },
        },
        "repository_storage_by_tier": {"type": "object", "additionalProperties": {"type": "number"}},
        "assumptions": {"type": "array", "items": {"type": "string"}},
        "resources": {"type": "array", "items": {"type": "object"}, "description": "what was measured per resource"},
    },
    "required": ["policy_id", "currency", "region", "prices", "tier", "monthly_total", "lines", "assumptions"],
}


def report_paths() -> dict[str, Any]:
    common = {"401": _error("Unauthorized"), "503": _error("Unavailable")}
    policy_id = {"name": "policy_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/reports/sessions/{instance_id}": {
            "parameters": [{"name": "instance_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {
                "operationId": "getSessionReport",
                "summary": "A session's report: one self-contained HTML page (results, charts, RPO, cost)",
                "responses": {
                    "200": _html("the report"),
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    **common,
                },
            },
        },
        "/reports/policies/{policy_id}": {
            "parameters": [policy_id],
            "get": {
                "operationId": "getPolicyReport",
                "summary": "A policy's report: its last sessions, RPO compliance and estimated cost, as HTML",
                "responses": {
                    "200": _html("the report"),
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    **common,
                },
            },
        },
        "/policies/{policy_id}/cost": {
            "parameters": [policy_id],
            "get": {
                "operationId": "getPolicyCost",
                "summary": "The policy's estimated monthly cost, from measured change rates and list prices",
                "parameters": [
                    {
                        "name": "tier",
                        "in": "query",
                        "schema": {"type": "string", "default": "hot"},
                        "description": "the repository's access tier (hot, cool, cold)",
                    },
                    {
                        "name": "source_region",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "where the sources are (default: assumed another region, same continent)",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the estimate",
                        "content": {"application/json": {"schema": _COST}},
                    },
                    "400": _error("BadRequest"),
                    "404": _error("NotFound"),
                    **common,
                },
            },
        },
    }
