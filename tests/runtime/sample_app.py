"""A small backup-flavoured function app the runtime tests drive (ordinary DFApp code).

Nothing here knows about the local runtime. Activities append one line per execution to the file
named by ``SAMPLE_APP_ACTIVITY_LOG`` (read when they run, not at import), so a test can count
executions across processes; ``SAMPLE_APP_ACTIVITY_DELAY`` slows ``snapshot_resource`` down.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
bp = df.Blueprint()

_attempts: dict[str, int] = {}
_attempts_lock = threading.Lock()


def _record(line: str) -> int:
    """Log one activity execution; return how often this exact line was logged (this one too)."""
    log = os.environ.get("SAMPLE_APP_ACTIVITY_LOG")
    if not log:
        with _attempts_lock:
            _attempts[line] = _attempts.get(line, 0) + 1
            return _attempts[line]
    with Path(log).open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return Path(log).read_text(encoding="utf-8").splitlines().count(line)


# -- HTTP and timer starters -------------------------------------------------------------------


@bp.route(route="backups/{policy}", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_backup(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    job: dict[str, Any] = req.get_json() if req.get_body() else {}
    job["policy"] = req.route_params["policy"]
    instance_id = await client.start_new("backup_orchestrator", req.params.get("instance"), job)
    return client.create_check_status_response(req, instance_id)


@bp.route(route="backups/{instance_id}/status", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def backup_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    status = await client.get_status(req.route_params["instance_id"], show_history=True)
    if not status:
        return func.HttpResponse("no such backup", status_code=404)
    body = status.to_json()
    body["historyEvents"] = getattr(status, "historyEvents", None)
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@bp.route(route="backups/{instance_id}/approve", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def approve_backup(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.raise_event(req.route_params["instance_id"], "approve", req.get_json())
    return func.HttpResponse(status_code=202)


@bp.route(route="backups", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def list_backups(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    wanted = [df.OrchestrationRuntimeStatus(s) for s in req.params.get("status", "").split(",") if s]
    statuses = await client.get_status_by(runtime_status=wanted or None)
    rows = [{"id": s.instance_id, "status": s.runtime_status.value} for s in statuses]
    return func.HttpResponse(json.dumps(rows), mimetype="application/json")


@bp.route(route="ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"pong {req.params.get('who', '')}".strip())


@bp.route(route="files/{*path}", methods=["GET"])
def read_path(req: func.HttpRequest) -> str:
    return req.route_params["path"]


@bp.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def scheduled_backup(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    slot = str(timer.schedule_status.get("Next", "unscheduled"))
    instance_id = f"scheduled-{slot}"
    if await client.get_status(instance_id):
        return  # this slot already ran (or runs): never twice
    job = {"policy": "nightly", "resources": ["vm-a"], "cooldown_seconds": 1}
    await client.start_new("backup_orchestrator", instance_id, job)


# -- orchestrators -----------------------------------------------------------------------------


@bp.orchestration_trigger(context_name="context")
def backup_orchestrator(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    job = context.get_input() or {}
    queue = list(job.get("resources", []))
    limit = int(job.get("limit", 2))
    total = len(queue)
    snapshots: list[str] = []
    in_flight: list[Any] = []
    context.set_custom_status({"phase": "snapshots", "done": 0, "total": total})
    while queue or in_flight:
        while queue and len(in_flight) < limit:
            in_flight.append(context.call_activity("snapshot_resource", queue.pop(0)))
        finished = yield context.task_any(in_flight)
        in_flight.remove(finished)
        snapshots.append(finished.result)
        context.set_custom_status({"phase": "snapshots", "done": len(snapshots), "total": total})
    snapshots.sort()
    verified = yield context.call_sub_orchestrator("verify_orchestrator", snapshots)
    retry = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
    receipt = yield context.call_activity_with_retry(
        "upload_manifest", retry, {"key": context.instance_id, "items": snapshots}
    )
    context.set_custom_status({"phase": "cooldown"})
    cooldown = timedelta(seconds=float(job.get("cooldown_seconds", 60)))
    yield context.create_timer(context.current_utc_datetime + cooldown)
    approval = None
    if job.get("wait_for_approval"):
        context.set_custom_status({"phase": "awaiting-approval"})
        approval = yield context.wait_for_external_event("approve")
    context.set_custom_status({"phase": "done"})
    return {"snapshots": snapshots, "verified": verified, "receipt": receipt, "approval": approval}


@bp.orchestration_trigger(context_name="context")
def verify_orchestrator(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    snapshots = context.get_input()
    checks = yield context.task_all([context.call_activity("verify_snapshot", s) for s in snapshots])
    return all(checks)


@bp.orchestration_trigger(context_name="context")
def countdown_orchestrator(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    remaining = int(context.get_input())
    if remaining > 0:
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
        context.continue_as_new(remaining - 1)
        return None
    return "liftoff"


# -- activities --------------------------------------------------------------------------------


@bp.activity_trigger(input_name="resource")
def snapshot_resource(resource: str) -> str:
    _record(f"snapshot_resource {resource} start")
    delay = float(os.environ.get("SAMPLE_APP_ACTIVITY_DELAY", "0"))
    if delay:
        time.sleep(delay)
    _record(f"snapshot_resource {resource}")
    return f"snap-{resource}"


@bp.activity_trigger(input_name="snapshot")
def verify_snapshot(snapshot: str) -> bool:
    _record(f"verify_snapshot {snapshot}")
    return snapshot.startswith("snap-")


@bp.activity_trigger(input_name="manifest")
def upload_manifest(manifest: dict[str, Any]) -> str:
    attempt = _record(f"upload_manifest {manifest['key']}")
    if attempt <= 2:
        raise ConnectionError(f"transient storage error (attempt {attempt})")
    return f"manifest-{len(manifest['items'])}-items-attempt-{attempt}"


app.register_functions(bp)
