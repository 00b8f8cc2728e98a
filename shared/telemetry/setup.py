"""Where telemetry goes: chosen at an edge (the app's services, the worker's main, the CLI).

| variable                                | telemetry goes to                                                 |
|-----------------------------------------|-------------------------------------------------------------------|
| APPLICATIONINSIGHTS_CONNECTION_STRING   | Application Insights, through azure-monitor-opentelemetry         |
| OTEL_EXPORTER_OTLP_ENDPOINT             | an OTLP/HTTP (protobuf) endpoint: ``/v1/traces``, ``/v1/metrics``, |
|                                         | ``/v1/logs`` under it (a collector, or a local one in the tests)  |
| BULWARK_TELEMETRY=console               | the console (stderr: a worker's stdout carries its result)        |
| (none of them)                          | nowhere: the API's no-op providers                                |

The first that is set wins; ``BULWARK_TELEMETRY=off`` turns everything off (``on``, what the Bicep
sets, is the same as unset). ``OTEL_SERVICE_NAME``
overrides the service name (``bulwark-app``, ``bulwark-worker``, ``bulwark-cli``). Workers get the
same variables (:func:`worker_environment`), so their spans join the session's trace.

OpenTelemetry's global providers can be set only once per process, so the OTLP and console targets
are installed behind switches: configuring again with another target (a test's local collector, a
host reload) swaps the exporters. Application Insights is configured once per process by the
distro. The SDK is imported only here, and only when telemetry is switched on.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.core.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

__all__ = [
    "TELEMETRY_ENV",
    "TelemetryTarget",
    "configure_telemetry",
    "fixed_ids",
    "flush_telemetry",
    "shutdown_telemetry",
    "worker_environment",
]

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
SWITCH = "BULWARK_TELEMETRY"
SERVICE_NAME = "OTEL_SERVICE_NAME"
SAMPLER = "OTEL_TRACES_SAMPLER"
TELEMETRY_ENV = (CONNECTION_STRING, OTLP_ENDPOINT, SWITCH, SERVICE_NAME, SAMPLER)
"""Every variable :meth:`TelemetryTarget.from_env` reads."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TelemetryTarget:
    kind: str
    """``azure-monitor``, ``otlp``, ``console`` or ``off``."""
    address: str = field(default="", repr=False)
    """The connection string or the OTLP endpoint (kept out of reprs and logs)."""
    service_name: str | None = None
    sampler_set: bool = False
    """OTEL_TRACES_SAMPLER is set: the operator's sampling, not Bulwark's (every span)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TelemetryTarget:
        switch = (env.get(SWITCH) or "").strip().lower()
        if switch not in ("", "on", "off", "console"):
            raise ConfigError(f"{SWITCH}={switch!r} is not a setting", hint="use on, console or off, or leave it unset")
        service = env.get(SERVICE_NAME) or None
        if switch == "off":
            return cls("off", service_name=service)
        if env.get(CONNECTION_STRING):
            return cls("azure-monitor", env[CONNECTION_STRING], service, bool(env.get(SAMPLER)))
        if env.get(OTLP_ENDPOINT):
            endpoint = env[OTLP_ENDPOINT].rstrip("/")
            if not endpoint.startswith(("http://", "https://")):
                raise ConfigError(
                    f"{OTLP_ENDPOINT} must be an http(s) URL", hint="e.g. http://127.0.0.1:4318 (OTLP over HTTP)"
                )
            return cls("otlp", endpoint, service)
        if switch == "console":
            return cls("console", service_name=service)
        return cls("off", service_name=service)


def worker_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The telemetry variables a worker needs to report into the same place as the app. (An
    Application Insights connection string only allows sending telemetry: not a secret to hide.)"""
    passed = {name: env[name] for name in (CONNECTION_STRING, OTLP_ENDPOINT, SWITCH) if env.get(name)}
    if passed:
        passed[SERVICE_NAME] = "bulwark-worker"
    return passed


# -- span ids an orchestrator chose ----------------------------------------------------------------

_fixed: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("bulwark_fixed_ids", default=None)


@contextlib.contextmanager
def fixed_ids(trace_id: int, span_id: int) -> Iterator[None]:
    """Spans started inside get these ids (an orchestration's span, whose id its children know)."""
    token = _fixed.set((trace_id, span_id))
    try:
        yield
    finally:
        _fixed.reset(token)


def _id_generator() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class DerivableIdGenerator(RandomIdGenerator):
        """Random ids, except where :func:`fixed_ids` names them."""

        def generate_span_id(self) -> int:
            fixed = _fixed.get()
            return fixed[1] if fixed else super().generate_span_id()

        def generate_trace_id(self) -> int:
            fixed = _fixed.get()
            return fixed[0] if fixed else super().generate_trace_id()

    return DerivableIdGenerator()


# -- installation ----------------------------------------------------------------------------------


@dataclass
class _Installed:
    target: TelemetryTarget
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    switches: _Switches | None = None


class _Switches:
    """The exporting parts behind the global SDK providers, swappable (see the module's notes)."""

    def __init__(self) -> None:
        from opentelemetry.sdk._logs import LogRecordProcessor
        from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
        from opentelemetry.sdk.trace import SpanProcessor

        switches = self

        class SpanSwitch(SpanProcessor):
            def on_end(self, span: Any) -> None:
                current = switches.spans
                if current is not None:
                    current.on_end(span)

            def force_flush(self, timeout_millis: int = 30_000) -> bool:
                current = switches.spans
                return current.force_flush(timeout_millis) if current is not None else True

            def shutdown(self) -> None:  # the provider's exit hook: export what is buffered
                self.force_flush(5_000)

        class LogSwitch(LogRecordProcessor):
            def on_emit(self, log_record: Any) -> None:
                current = switches.logs
                if current is not None:
                    current.on_emit(log_record)

            def shutdown(self) -> None:  # the provider's exit hook: export what is buffered
                self.force_flush(5_000)

            def force_flush(self, timeout_millis: int = 30_000) -> bool:
                current = switches.logs
                return current.force_flush(timeout_millis) if current is not None else True

        class MetricSwitch(MetricExporter):
            def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
                current = switches.metrics
                if current is None:
                    return MetricExportResult.SUCCESS
                return current.export(metrics_data, timeout_millis=timeout_millis)

            def force_flush(self, timeout_millis: float = 10_000) -> bool:
                return True

            def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
                pass

        self.spans: Any = None
        self.logs: Any = None
        self.metrics: Any = None
        self.span_switch = SpanSwitch()
        self.log_switch = LogSwitch()
        self.metric_switch = MetricSwitch()

    def swap(self, target: TelemetryTarget) -> None:
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogRecordExporter
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        self.close()
        if target.kind == "otlp":
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.spans = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{target.address}/v1/traces", timeout=5))
            self.logs = BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{target.address}/v1/logs", timeout=5))
            self.metrics = OTLPMetricExporter(endpoint=f"{target.address}/v1/metrics", timeout=5)
        elif target.kind == "console":
            self.spans = BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr))
            self.logs = BatchLogRecordProcessor(ConsoleLogRecordExporter(out=sys.stderr))
            self.metrics = ConsoleMetricExporter(out=sys.stderr)

    def flush(self, timeout_millis: int) -> None:
        for part in (self.spans, self.logs):
            if part is not None:
                part.force_flush(timeout_millis)

    def close(self) -> None:
        spans, logs, metrics = self.spans, self.logs, self.metrics
        self.spans = self.logs = self.metrics = None
        for part in (spans, logs, metrics):
            if part is not None:
                with contextlib.suppress(Exception):  # a dead endpoint must not stop the process
                    part.shutdown()


_lock = threading.Lock()
_installed: _Installed | None = None


def configure_telemetry(env: Mapping[str, str], *, service: str) -> TelemetryTarget:
    """Send this process's telemetry where ``env`` says (see the table above); idempotent."""
    global _installed
    target = TelemetryTarget.from_env(env)
    with _lock:
        if _installed is not None and _installed.target == target:
            return target
        if target.kind == "azure-monitor":
            if _installed is not None and _installed.switches is not None:
                raise ConfigError(
                    "telemetry already goes to another target in this process",
                    hint=f"set {CONNECTION_STRING} before the app starts",
                )
            if _installed is None:
                _installed = _azure_monitor(target, service)
            return target
        if _installed is not None and _installed.switches is None:
            return _installed.target  # Application Insights stays for the life of the process
        if _installed is None:
            if target.kind == "off":
                return target  # nothing installed: the API stays a no-op
            _installed = _sdk(target, service)
        assert _installed.switches is not None
        _installed.switches.swap(target)
        _installed.target = target
        log.info("telemetry goes to %s", target.kind)
        return target


def flush_telemetry(timeout_millis: int = 5_000) -> None:
    """Export what is buffered now (before a test reads a collector, or a worker's job ends)."""
    with _lock:
        if _installed is not None:
            _flush(_installed, timeout_millis)


def shutdown_telemetry() -> None:
    """Flush and stop exporting (the CLI's last step). The process's providers stay installed: a later
    :func:`configure_telemetry` swaps exporters in again (Application Insights stays off)."""
    with _lock:
        installed = _installed
        if installed is None or installed.target.kind == "off":
            return
        _flush(installed, 5_000)
        if installed.switches is not None:
            installed.switches.close()
        else:
            for provider in (installed.tracer_provider, installed.meter_provider):
                with contextlib.suppress(Exception):
                    provider.shutdown()  # type: ignore[union-attr]
        installed.target = TelemetryTarget("off", service_name=installed.target.service_name)


def _flush(installed: _Installed, timeout_millis: int) -> None:
    # metrics first: collecting them may log, and the log and span processors flush after
    for provider in (installed.meter_provider, installed.tracer_provider):
        if provider is not None:
            with contextlib.suppress(Exception):  # a dead endpoint must not stop the process
                provider.force_flush(timeout_millis)
    if installed.switches is not None:
        installed.switches.flush(timeout_millis)


def _resource(target: TelemetryTarget, service: str) -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": target.service_name or service, "service.namespace": "bulwark"})


def _sdk(target: TelemetryTarget, service: str) -> _Installed:
    from opentelemetry import metrics, trace
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    switches = _Switches()
    resource = _resource(target, service)
    tracer_provider = TracerProvider(resource=resource, id_generator=_id_generator())
    tracer_provider.add_span_processor(switches.span_switch)
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(switches.metric_switch, export_interval_millis=15_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    metrics.set_meter_provider(meter_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(switches.log_switch)
    set_logger_provider(logger_provider)
    _attach_log_handler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
    return _Installed(target, tracer_provider, meter_provider, switches)


def _azure_monitor(target: TelemetryTarget, service: str) -> _Installed:
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import metrics, trace

    options: dict[str, Any] = {}
    if not target.sampler_set:
        # Every span: a session's trace spans processes, and a rate limit per process would cut it apart.
        options["sampling_ratio"] = 1.0
    configure_azure_monitor(
        connection_string=target.address,
        resource=_resource(target, service),
        logger_name="bulwark",
        enable_live_metrics=False,
        **options,
    )
    tracer_provider: Any = trace.get_tracer_provider()
    if hasattr(tracer_provider, "id_generator"):
        tracer_provider.id_generator = _id_generator()  # orchestration spans name their own ids
    # The distro exports the "bulwark" logger's records; Bulwark's modules also log under their names.
    for handler in logging.getLogger("bulwark").handlers:
        if type(handler).__name__ == "LoggingHandler":
            _attach_log_handler(handler, ("shared", "functions"))
    log.info("telemetry goes to Application Insights")
    return _Installed(target, tracer_provider, metrics.get_meter_provider())  # type: ignore[arg-type]


def _attach_log_handler(handler: logging.Handler, names: Sequence[str] = ("bulwark", "shared", "functions")) -> None:
    """Export Bulwark's own log records (already redacted where they are made), not every library's."""
    for name in names:
        logging.getLogger(name).addHandler(handler)
