"""A tiny OTLP/HTTP collector for tests: receives protobuf traces, metrics and logs on localhost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]
    error: bool


@dataclass
class Collector:
    endpoint: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    metric_names: set[str] = field(default_factory=set)
    log_lines: list[str] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, found: Callable[[Collector], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not found(self):
            assert time.monotonic() < deadline, f"the collector did not receive it: {[s.name for s in self.spans]}"
            time.sleep(0.2)

    def receive(self, path: str, body: bytes) -> None:
        with self.lock:
            self.raw.append(body)
            if path == "/v1/traces":
                traces = ExportTraceServiceRequest.FromString(body)
                for resource in traces.resource_spans:
                    service = _service(resource.resource.attributes)
                    for scope in resource.scope_spans:
                        for item in scope.spans:
                            self.spans.append(
                                ReceivedSpan(
                                    service=service,
                                    name=item.name,
                                    trace_id=item.trace_id.hex(),
                                    span_id=item.span_id.hex(),
                                    parent_span_id=item.parent_span_id.hex(),
                                    attributes={a.key: _value(a.value) for a in item.attributes},
                                    error=item.status.code == 2,
                                )
                            )
            elif path == "/v1/metrics":
                request = ExportMetricsServiceRequest.FromString(body)
                for resource in request.resource_metrics:
                    for scope in resource.scope_metrics:
                        self.metric_names.update(metric.name for metric in scope.metrics)
            elif path == "/v1/logs":
                logs = ExportLogsServiceRequest.FromString(body)
                for resource in logs.resource_logs:
                    for scope in resource.scope_logs:
                        self.log_lines.extend(str(_value(record.body)) for record in scope.log_records)


def _service(attributes: object) -> str:
    for attribute in attributes:  # type: ignore[attr-defined]
        if attribute.key == "service.name":
            return str(attribute.value.string_value)
    return ""


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None


@contextmanager
def running_collector() -> Iterator[Collector]:
    collector = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            collector.receive(self.path, body)
            answer = ExportTraceServiceResponse().SerializeToString()  # every Export*Response is empty
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-collector", daemon=True)
    thread.start()
    collector.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
