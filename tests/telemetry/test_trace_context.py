"""Trace context values and telemetry targets: pure logic, no exporter."""

from __future__ import annotations

import pytest

from shared.core.errors import ConfigError
from shared.telemetry.setup import TelemetryTarget, worker_environment
from shared.telemetry.trace_context import TraceParent, derive_child, parse_traceparent, root_for

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_traceparent_round_trips_and_refuses_malformed_values() -> None:
    parsed = parse_traceparent(VALID)
    assert parsed == TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
    assert str(parsed) == VALID
    for bad in ("", None, "00-xyz", VALID.replace("00-", "01-", 1), f"00-{'0' * 32}-00f067aa0ba902b7-01"):
        assert parse_traceparent(bad) is None


def test_derived_spans_are_deterministic_and_stay_in_the_trace() -> None:
    parent = parse_traceparent(VALID)
    assert parent is not None
    first, again = derive_child(parent, "orchestration|a"), derive_child(parent, "orchestration|a")
    other = derive_child(parent, "orchestration|b")
    assert first == again and first != other
    assert first.trace_id == parent.trace_id and len(first.span_id) == 16 and first.span_id != parent.span_id
    assert root_for("x") == root_for("x") and root_for("x").trace_id != root_for("y").trace_id


def test_target_follows_the_environment() -> None:
    assert TelemetryTarget.from_env({}).kind == "off"
    assert TelemetryTarget.from_env({"BULWARK_TELEMETRY": "console"}).kind == "console"
    otlp = TelemetryTarget.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/"})
    assert otlp.kind == "otlp" and otlp.address == "http://127.0.0.1:4318"
    both = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
    assert TelemetryTarget.from_env(both).kind == "azure-monitor"
    assert "InstrumentationKey" not in repr(TelemetryTarget.from_env(both))
    assert TelemetryTarget.from_env({**both, "BULWARK_TELEMETRY": "off"}).kind == "off"
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        TelemetryTarget.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"})
    with pytest.raises(ConfigError, match="BULWARK_TELEMETRY"):
        TelemetryTarget.from_env({"BULWARK_TELEMETRY": "loud"})


def test_workers_get_the_telemetry_variables_only() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "AzureWebJobsStorage": "AccountKey=secret"}
    assert worker_environment(env) == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_SERVICE_NAME": "bulwark-worker",
    }
    assert worker_environment({}) == {}
