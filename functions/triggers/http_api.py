"""The HTTP API (function key required): start a policy's session now, read a session's status.

    POST /api/policies/{policy_id}/run      body (optional): {"image_level": true|false}
         202 + the Durable check-status links; 404 unknown policy; 400 bad body
    GET  /api/sessions/{instance_id}        200 {id, runtime_status, custom_status, output, ...}; 404

An on-demand session's instance id is ``<policy id>@run-<UTC time>-<random>``. Policy CRUD and the
rest of the API come with the API work.
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
from shared.core.clock import SystemClock
from shared.core.errors import BulwarkError, PolicyNotFoundError, UsageError
from shared.services.messages import ON_DEMAND, SessionRequest
from shared.wiring import services

bp = df.Blueprint()


@bp.route(route="policies/{policy_id}/run", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def run_policy(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    policy_id = req.route_params.get("policy_id", "")
    try:
        body = _body(req)
        image_level = body.get("image_level")
        if image_level is not None and not isinstance(image_level, bool):
            raise UsageError("'image_level' must be true or false", hint='send {"image_level": true} or no body')
        plan = await asyncio.to_thread(services().policies.get_plan, policy_id)
    except PolicyNotFoundError as exc:
        return _error(404, exc)
    except UsageError as exc:
        return _error(400, exc)
    except BulwarkError as exc:
        return _error(503, exc)
    if image_level and not plan.image_level:
        return _error(
            400,
            UsageError(
                f"policy '{policy_id}' does not enable image-level backup",
                hint="enable image_backup in the policy, or run without image_level",
            ),
        )
    request = SessionRequest(policy_id, ON_DEMAND, plan.image_level if image_level is None else image_level)
    instance_id = await client.start_new(names.POLICY_SESSION, on_demand_id(policy_id), request.to_dict())
    response: func.HttpResponse = client.create_check_status_response(req, instance_id)
    return response


@bp.route(route="sessions/{instance_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_session(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params.get("instance_id", "")
    status = await client.get_status(instance_id)
    if not status:
        return _error(404, UsageError(f"no session has the id '{instance_id}'", hint="use the id that run returned"))
    document = {
        "id": status.instance_id,
        "name": status.name,
        "runtime_status": status.runtime_status.value if status.runtime_status else None,
        "created": status.created_time.isoformat() if status.created_time else None,
        "last_updated": status.last_updated_time.isoformat() if status.last_updated_time else None,
        "custom_status": status.custom_status,
        "output": status.output,
    }
    return func.HttpResponse(json.dumps(document), status_code=200, mimetype="application/json")


def on_demand_id(policy_id: str) -> str:
    stamp = SystemClock().now().strftime("%Y%m%dT%H%M%SZ")
    return f"{policy_id}@run-{stamp}-{secrets.token_hex(3)}"


def _body(req: func.HttpRequest) -> dict[str, Any]:
    raw = req.get_body()
    if not raw or not raw.strip():
        return {}
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


def _error(status: int, error: BulwarkError) -> func.HttpResponse:
    document = {"code": error.code, "message": error.message, "hint": error.hint}
    return func.HttpResponse(json.dumps(document), status_code=status, mimetype="application/json")
