"""The HTTP API (function key required; JSON in and out). Described by ``GET /api/openapi.json``.

    POST   /api/policies                    create: 201 + ETag, Location; 400 with field-level problems
    GET    /api/policies                    200 {"policies": [{"etag", "policy"}], "count"}
    GET    /api/policies/{policy_id}        200 the policy + ETag; 404
    PUT    /api/policies/{policy_id}        update, If-Match required: 200 + ETag; 400, 404, 412, 428
    DELETE /api/policies/{policy_id}        204 (If-Match optional); 404, 412
    POST   /api/policies/{policy_id}/run    body (optional): {"image_level": true|false}
                                            202 + the Durable check-status links; 404 unknown policy; 400 bad body
    GET    /api/sessions?policy=&since=&until=&limit=   the catalog's sessions, newest first
    GET    /api/sessions/{instance_id}      200 live status (runtime_status, custom_status, output) + the
                                            catalog's record ("catalog", null while running); 404
    GET    /api/points?resource=&kind=&limit=           the catalog's restore points of a resource
    GET    /api/openapi.json                the OpenAPI 3.1 description (functions/triggers/openapi.py)

Requests and answers are mapped in :mod:`shared.services.api` (errors: ``{"error": {code, message,
hint, problems}}``); these functions only move them in and out. An on-demand session's instance id
is ``<policy id>@run-<UTC time>-<random>``.
"""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from functions import names
from functions.triggers.answers import respond, serve
from functions.triggers.openapi import openapi_document
from shared.core.clock import SystemClock
from shared.core.errors import BulwarkError, ConfigError, UsageError
from shared.services.api import PolicyApi, SessionApi, UnsupportedMediaTypeError, error_answer
from shared.services.messages import ON_DEMAND, SessionRequest
from shared.telemetry.spans import span
from shared.wiring import services

bp = df.Blueprint()


# -- policies --------------------------------------------------------------------------------------


@bp.route(route="policies", methods=["POST"])
async def create_policy(req: func.HttpRequest) -> func.HttpResponse:
    return await serve(lambda: _policies().create(req.get_body(), req.headers.get("Content-Type")))


@bp.route(route="policies", methods=["GET"])
async def list_policies(req: func.HttpRequest) -> func.HttpResponse:
    return await serve(lambda: _policies().list_policies(dict(req.params)))


@bp.route(route="policies/{policy_id}", methods=["GET"])
async def get_policy(req: func.HttpRequest) -> func.HttpResponse:
    return await serve(lambda: _policies().get(req.route_params.get("policy_id", "")))


@bp.route(route="policies/{policy_id}", methods=["PUT"])
async def update_policy(req: func.HttpRequest) -> func.HttpResponse:
    policy_id = req.route_params.get("policy_id", "")
    return await serve(
        lambda: _policies().update(
            policy_id, req.get_body(), req.headers.get("Content-Type"), req.headers.get("If-Match")
        )
    )


@bp.route(route="policies/{policy_id}", methods=["DELETE"])
async def delete_policy(req: func.HttpRequest) -> func.HttpResponse:
    policy_id = req.route_params.get("policy_id", "")
    return await serve(lambda: _policies().delete(policy_id, req.headers.get("If-Match")))


# -- sessions --------------------------------------------------------------------------------------


@bp.route(route="policies/{policy_id}/run", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def run_policy(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    policy_id = req.route_params.get("policy_id", "")
    try:
        body = _body(req)
        image_level = body.get("image_level")
        if image_level is not None and not isinstance(image_level, bool):
            raise UsageError("'image_level' must be true or false", hint='send {"image_level": true} or no body')
        plan = await asyncio.to_thread(lambda: services().policies.get_plan(policy_id))
    except BulwarkError as exc:
        return respond(error_answer(exc))
    if image_level and not plan.image_level:
        return respond(
            error_answer(
                UsageError(
                    f"policy '{policy_id}' does not enable image-level backup",
                    hint="enable image_backup in the policy, or run without image_level",
                )
            )
        )
    instance_id = on_demand_id(policy_id)
    attributes = {"bulwark.policy": policy_id, "bulwark.instance": instance_id, "http.route": "policies/{id}/run"}
    with span("POST /api/policies/{policy_id}/run", kind="server", attributes=attributes) as trigger:
        level = plan.image_level if image_level is None else image_level
        request = SessionRequest(policy_id, ON_DEMAND, level, trigger.traceparent)
        instance_id = await client.start_new(names.POLICY_SESSION, instance_id, request.to_dict())
    response: func.HttpResponse = client.create_check_status_response(req, instance_id)
    return response


@bp.route(route="sessions", methods=["GET"])
async def list_sessions(req: func.HttpRequest) -> func.HttpResponse:
    return await serve(lambda: _sessions().list_sessions(dict(req.params)))


@bp.route(route="sessions/{instance_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_session(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params.get("instance_id", "")
    status = await client.get_status(instance_id)
    live: dict[str, Any] | None = None
    if status:
        live = {
            "id": status.instance_id,
            "name": status.name,
            "runtime_status": status.runtime_status.value if status.runtime_status else None,
            "created": status.created_time.isoformat() if status.created_time else None,
            "last_updated": status.last_updated_time.isoformat() if status.last_updated_time else None,
            "custom_status": status.custom_status,
            "output": status.output,
        }
    return await serve(lambda: _sessions().detail(instance_id, live))


@bp.route(route="points", methods=["GET"])
async def list_points(req: func.HttpRequest) -> func.HttpResponse:
    return await serve(lambda: _sessions().points(dict(req.params)))


@bp.route(route="openapi.json", methods=["GET"])
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(openapi_document()), status_code=200, mimetype="application/json")


def on_demand_id(policy_id: str) -> str:
    stamp = SystemClock().now().strftime("%Y%m%dT%H%M%SZ")
    return f"{policy_id}@run-{stamp}-{secrets.token_hex(3)}"


# -- plumbing --------------------------------------------------------------------------------------


def _policies() -> PolicyApi:
    store = services().policy_store
    if store is None:
        raise ConfigError("this app has no policy store", hint="it is built without one only in tests")
    return PolicyApi(store)


def _sessions() -> SessionApi:
    built = services()
    return SessionApi(built.catalog, _policies().ids)


def _body(req: func.HttpRequest) -> dict[str, Any]:
    raw = req.get_body()
    if not raw or not raw.strip():
        return {}
    media = (req.headers.get("Content-Type") or "application/json").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"the body is '{media}', not JSON", hint='send Content-Type: application/json and {"image_level": true}'
        )
    try:
        body = json.loads(raw)
    except ValueError:
        raise UsageError("the body is not JSON", hint='send {"image_level": true}, or no body') from None
    if not isinstance(body, dict):
        raise UsageError("the body must be a JSON object", hint='send {"image_level": true}, or no body')
    unknown = sorted(set(body) - {"image_level"})
    if unknown:
        raise UsageError(f"unknown field(s) {', '.join(unknown)}", hint="the only field is 'image_level'")
    return body
