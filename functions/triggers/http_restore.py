"""The restore API (function key required; JSON in and out).

    POST /api/restores/vm      {"vm_id", "point_id", "source"?, "target": {"name", "resource_group"?,
                               "region"?, "vm_size"?, "nic_ids"?}, "replace_original"?, "confirm"?}
    POST /api/restores/disk    {"vm_id", "point_id", "lun": "os" | "0"..., "source"?, "target": {...}}
                               202 + Location: /api/restores/{id} and the Durable status links;
                               400 field problems, 404 unknown point or resource group, 409 a VM of
                               that name exists (nothing is created before these checks pass)
    GET  /api/restores/{id}    200 {"id", "runtime_status", "custom_status" (phase, bytes written),
                               "output" (status, reason, vm_id, disks)}; 404 unknown id

Any restore orchestration (VM, disk, SQL) can be followed with ``GET /api/restores/{id}``.
"""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import replace
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from functions import names
from shared.core.clock import SystemClock
from shared.core.errors import BulwarkError, FieldProblem, InvalidDocumentError
from shared.services.api import error_answer, read_json
from shared.services.vm_restore import RestoreRequest, RestoreTarget
from shared.telemetry.spans import span
from shared.wiring import vm_restore_services

__all__ = ["bp", "parse_restore_request", "restore_instance_id"]

bp = df.Blueprint()

_FIELDS = {"vm_id", "point_id", "lun", "source", "target", "replace_original", "confirm"}
_TARGET_FIELDS = {"name", "resource_group", "region", "vm_size", "nic_ids"}
_EXAMPLE = '{"vm_id": "/subscriptions/.../virtualMachines/web", "point_id": "img-...", "target": {"name": "web-2"}}'


@bp.route(route="restores/vm", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def restore_vm(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await _start(req, client, "vm")


@bp.route(route="restores/disk", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def restore_disk(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await _start(req, client, "disk")


@bp.route(route="restores/{instance_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_restore(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params.get("instance_id", "")
    status = await client.get_status(instance_id) if instance_id else None
    if not status or not status.instance_id or "restore" not in str(status.name or ""):
        return _json(
            404,
            {"error": {"code": "not_found", "message": f"no restore {instance_id!r}", "hint": "", "problems": []}},
        )
    return _json(
        200,
        {
            "id": status.instance_id,
            "name": status.name,
            "runtime_status": status.runtime_status.value if status.runtime_status else None,
            "created": status.created_time.isoformat() if status.created_time else None,
            "last_updated": status.last_updated_time.isoformat() if status.last_updated_time else None,
            "custom_status": status.custom_status,
            "output": status.output,
        },
    )


async def _start(req: func.HttpRequest, client: df.DurableOrchestrationClient, what: str) -> func.HttpResponse:
    restore_id = restore_instance_id(what)
    try:
        request = parse_restore_request(
            read_json(req.get_body(), req.headers.get("Content-Type"), what="the restore request", example=_EXAMPLE),
            restore_id=restore_id,
            what=what,
        )
        plan = await asyncio.to_thread(lambda: vm_restore_services().plan(request))
    except BulwarkError as exc:
        answer = error_answer(exc)
        return func.HttpResponse(answer.text(), status_code=answer.status, mimetype="application/json")
    attributes = {"bulwark.restore": restore_id, "bulwark.vm": plan.vm_id, "http.route": f"restores/{what}"}
    with span(f"POST /api/restores/{what}", kind="server", attributes=attributes) as trigger:
        plan = replace(plan, traceparent=trigger.traceparent)
        await client.start_new(names.RESTORE_VM, restore_id, plan.to_dict())
    response: func.HttpResponse = client.create_check_status_response(req, restore_id)
    body = json.loads(response.get_body() or b"{}")
    body["restore"] = f"/api/restores/{restore_id}"
    body["plan"] = {"source": plan.source, "disks": [d.name for d in plan.disks], "vm_name": plan.vm_name}
    return _json(202, body, location=f"/api/restores/{restore_id}")


def restore_instance_id(what: str) -> str:
    stamp = SystemClock().now().strftime("%Y%m%dT%H%M%SZ")
    return f"restore-{what}-{stamp}-{secrets.token_hex(3)}"


def parse_restore_request(document: object, *, restore_id: str, what: str) -> RestoreRequest:
    """The request, with every field checked for type; InvalidDocumentError lists what is wrong."""
    problems: list[FieldProblem] = []
    if not isinstance(document, dict):
        raise InvalidDocumentError("the restore request", [FieldProblem("", "is not an object", f"send {_EXAMPLE}")])
    for name in sorted(set(document) - _FIELDS):
        problems.append(FieldProblem(name, "is not a field of a restore request", f"use {', '.join(sorted(_FIELDS))}"))
    target = document.get("target", {})
    if not isinstance(target, dict):
        problems.append(FieldProblem("target", "is not an object", 'send {"name": "web-restored"}'))
        target = {}
    for name in sorted(set(target) - _TARGET_FIELDS):
        problems.append(
            FieldProblem(f"target.{name}", "is not a target field", f"use {', '.join(sorted(_TARGET_FIELDS))}")
        )

    def text(doc: dict[str, Any], name: str, path: str) -> str:
        value = doc.get(name, "")
        if isinstance(value, int) and not isinstance(value, bool) and name == "lun":
            return str(value)
        if not isinstance(value, str):
            problems.append(FieldProblem(path, "is not a string", f"give {path} as text"))
            return ""
        return value.strip()

    def flag(name: str) -> bool:
        value = document.get(name, False)
        if not isinstance(value, bool):
            problems.append(FieldProblem(name, "is not true or false", f"send {name}: true or false"))
            return False
        return value

    nic_ids = target.get("nic_ids", [])
    if not isinstance(nic_ids, list) or not all(isinstance(n, str) for n in nic_ids):
        fix = 'send ["/subscriptions/.../networkInterfaces/nic"]'
        problems.append(FieldProblem("target.nic_ids", "is not a list of NIC ids", fix))
        nic_ids = []
    request = RestoreRequest(
        restore_id=restore_id,
        vm_id=text(document, "vm_id", "vm_id"),
        point_id=text(document, "point_id", "point_id"),
        what=what,
        lun=text(document, "lun", "lun"),
        source=text(document, "source", "source") or "auto",
        target=RestoreTarget(
            resource_group=text(target, "resource_group", "target.resource_group"),
            name=text(target, "name", "target.name"),
            region=text(target, "region", "target.region"),
            vm_size=text(target, "vm_size", "target.vm_size"),
            nic_ids=tuple(nic_ids),
        ),
        replace_original=flag("replace_original"),
        confirm=flag("confirm"),
    )
    if problems:
        raise InvalidDocumentError("the restore request", problems)
    return request


def _json(status: int, body: dict[str, Any], *, location: str | None = None) -> func.HttpResponse:
    headers = {"Location": location} if location else None
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json", headers=headers)
