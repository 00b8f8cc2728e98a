"""The schedule timer: every 5 minutes, start the policy sessions whose slots are due.

The window is ``(last occurrence, this occurrence]`` from the timer's schedule status (at most a
day back after a long outage). Each slot's instance id comes from the policy (``slot_id``), and a
slot runs once: an id that exists (running or finished) is left alone. That check matters: the
Durable host *replaces* a finished instance when the same id is started again.
"""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import azure.durable_functions as df
import azure.functions as func

from functions import names
from shared.core.clock import SystemClock, parse_time
from shared.services.messages import SessionRequest
from shared.telemetry.spans import span
from shared.wiring import services

bp = df.Blueprint()
log = logging.getLogger("bulwark.schedules")

SCHEDULE = "0 */5 * * * *"
MAX_LOOKBACK = dt.timedelta(days=1)


@bp.timer_trigger(schedule=SCHEDULE, arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def start_due_sessions(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    after, until = window(getattr(timer, "schedule_status", None) or {})
    due = await asyncio.to_thread(services().policies.due_sessions, after, until)
    for session in due:
        if await client.get_status(session.instance_id):
            continue  # this slot ran or runs already: never twice
        attributes = {"bulwark.policy": session.policy_id, "bulwark.instance": session.instance_id}
        with span("scheduled session", kind="server", attributes=attributes) as trigger:
            request = SessionRequest(session.policy_id, session.slot, session.image_level, trigger.traceparent)
            try:
                await client.start_new(names.POLICY_SESSION, session.instance_id, request.to_dict())
            except Exception as exc:  # a concurrent tick started it first (409); the next tick looks again
                trigger.fail("not started")
                log.warning("session %s not started: %s", session.instance_id, exc)
                continue
        log.info("started session %s", session.instance_id)


def window(schedule_status: dict[str, object]) -> tuple[dt.datetime, dt.datetime]:
    """``(after, until]``: the slots this tick is responsible for."""
    until = _time(schedule_status.get("Next")) or SystemClock().now()
    after = _time(schedule_status.get("Last")) or until - dt.timedelta(minutes=5)
    return max(after, until - MAX_LOOKBACK), until


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = parse_time(value if value[-1] in "Zz" or "+" in value[10:] else value + "Z")
    except ValueError:
        return None
    return moment
