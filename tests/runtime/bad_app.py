"""Orchestrators that break the determinism rules, for the runtime's checks to catch."""

from __future__ import annotations

import itertools
import os
import random as rnd
import uuid
from datetime import UTC, datetime
from time import time as wall_clock

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_replays = itertools.count()


@app.orchestration_trigger(context_name="context")
def alternating_orchestrator(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    # Branches on a process-wide counter: each replay takes the other path.
    step = "step_a" if next(_replays) % 2 == 0 else "step_b"
    first = yield context.call_activity(step, None)
    second = yield context.call_activity("step_a", None)
    return [first, second]


@app.orchestration_trigger(context_name="context")
def impure_orchestrator(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    started = datetime.now(UTC)
    token = uuid.uuid4().hex
    region = os.environ.get("REGION", "westeurope")
    jitter = rnd.random() + wall_clock()
    result = yield context.call_activity("step_a", {"token": token, "region": region, "j": jitter})
    return [str(started), result]


@app.orchestration_trigger(context_name="context")
def random_input_orchestrator(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    # Only the input changes between replays: Azure does not notice; paranoid mode does.
    first = yield context.call_activity("step_a", rnd.random())
    second = yield context.call_activity("step_b", None)
    return [first, second]


@app.activity_trigger(input_name="value")
def step_a(value: object) -> str:
    return "a"


@app.activity_trigger(input_name="value")
def step_b(value: object) -> str:
    return "b"
