"""An orchestration's span: the same ids in every replay, emitted only outside replays."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest

from functions.orchestrators import tracing
from functions.orchestrators.tracing import OrchestrationTrace
from shared.telemetry.trace_context import parse_traceparent

INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
START = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


@dataclass
class Context:
    """What OrchestrationTrace reads of a DurableOrchestrationContext."""

    instance_id: str
    current_utc_datetime: dt.datetime
    is_replaying: bool


def test_replays_derive_the_same_span_and_only_the_live_episode_emits(monkeypatch: pytest.MonkeyPatch) -> None:
    emitted: list[dict[str, Any]] = []
    monkeypatch.setattr(tracing, "emit_span", lambda name, **kw: emitted.append({"name": name, **kw}))
    first = OrchestrationTrace.begin(Context("p@run-1", START, True), INCOMING)  # type: ignore[arg-type]
    again = OrchestrationTrace.begin(Context("p@run-1", START, False), INCOMING)  # type: ignore[arg-type]
    other = OrchestrationTrace.begin(Context("p@run-2", START, False), INCOMING)  # type: ignore[arg-type]
    assert first == again and first.traceparent != other.traceparent
    assert first.own.trace_id == parse_traceparent(INCOMING).trace_id  # type: ignore[union-attr]

    end = START + dt.timedelta(minutes=5)
    first.end(Context("p@run-1", end, True), "policy_session_orchestrator", {"x": 1})  # type: ignore[arg-type]
    assert emitted == []
    again.end(Context("p@run-1", end, False), "policy_session_orchestrator", {"x": 1, "skip": None})  # type: ignore[arg-type]
    [span] = emitted
    assert span["own"] == again.own and span["parent"] == parse_traceparent(INCOMING)
    assert span["start"] == START and span["end"] == end
    assert span["attributes"] == {"x": 1, "bulwark.instance": "p@run-1"}


def test_an_orchestration_without_a_trace_gets_one_from_its_instance_id() -> None:
    one = OrchestrationTrace.begin(Context("p@slot", START, False), "")  # type: ignore[arg-type]
    two = OrchestrationTrace.begin(Context("p@slot", START, True), "not a traceparent")  # type: ignore[arg-type]
    assert one.parent is None and one == two and parse_traceparent(one.traceparent) is not None
