"""The Application Insights path: azure-monitor-opentelemetry, pointed at a local ingestion endpoint.

A child process configures telemetry with a connection string whose IngestionEndpoint is this
test's HTTP server, opens a trigger span, emits an orchestration span with derived ids and records a
session metric; the envelopes that arrive carry the same operation (trace) id, the derived span id,
and the metric. Statsbeat (the SDK's own usage reports) is off: nothing leaves the machine.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import datetime as dt, json, os, sys
    from shared.telemetry.metrics import record_session
    from shared.telemetry.setup import configure_telemetry, shutdown_telemetry
    from shared.telemetry.spans import emit_span, span
    from shared.telemetry.trace_context import derive_child, parse_traceparent

    target = configure_telemetry(os.environ, service="bulwark-app")
    with span("POST /api/policies/{policy_id}/run", kind="server") as trigger:
        incoming = trigger.traceparent
    parent = parse_traceparent(incoming)
    own = derive_child(parent, "orchestration|p@run-1")
    now = dt.datetime.now(dt.UTC)
    emit_span("policy_session_orchestrator", own=own, parent=parent, start=now - dt.timedelta(seconds=3), end=now)
    record_session("Success", "p")
    import logging
    logging.getLogger("shared.worker.main").warning("a line from a Bulwark module")
    shutdown_telemetry()
    print(json.dumps({"kind": target.kind, "trace": parent.trace_id, "trigger": parent.span_id, "own": own.span_id}))
    """
)


@pytest.fixture
def ingestion() -> Iterator[tuple[str, list[dict[str, object]]]]:
    envelopes: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received = json.loads(body)
            envelopes.extend(received)
            answer = json.dumps({"itemsReceived": len(received), "itemsAccepted": len(received), "errors": []})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", envelopes
    finally:
        server.shutdown()
        server.server_close()


def test_spans_and_metrics_reach_application_insights_with_the_session_ids(
    ingestion: tuple[str, list[dict[str, object]]], tmp_path: Path
) -> None:
    endpoint, envelopes = ingestion
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_", "BULWARK_"))}
    env.update(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000001;"
            f"IngestionEndpoint={endpoint}",
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "TMPDIR": str(tmp_path),  # the exporter's retry storage
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    assert ids["kind"] == "azure-monitor"
    spans = {
        data["baseData"]["name"]: (envelope["tags"], data["baseData"])  # type: ignore[index]
        for envelope in envelopes
        if (data := envelope["data"]) and str(envelope["name"]).endswith(("Request", "RemoteDependency"))
    }
    trigger_tags, trigger = spans["POST /api/policies/{policy_id}/run"]
    orchestration_tags, orchestration = spans["policy_session_orchestrator"]
    assert trigger_tags["ai.operation.id"] == orchestration_tags["ai.operation.id"] == ids["trace"]
    assert trigger["id"] == ids["trigger"] and orchestration["id"] == ids["own"]
    assert orchestration_tags["ai.operation.parentId"] == ids["trigger"]
    assert trigger_tags["ai.cloud.role"].endswith("bulwark-app")
    metrics = [
        metric["name"]
        for envelope in envelopes
        if "Metric" in str(envelope["name"])
        for metric in envelope["data"]["baseData"]["metrics"]  # type: ignore[index]
    ]
    assert "bulwark.sessions" in metrics
    messages = [envelope["data"]["baseData"].get("message") for envelope in envelopes]  # type: ignore[index]
    assert "a line from a Bulwark module" in messages
