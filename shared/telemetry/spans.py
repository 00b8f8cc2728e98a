"""Spans whose parent arrives as a ``traceparent`` string (orchestration inputs, job specs).

Through the OpenTelemetry API only: without :func:`shared.telemetry.setup.configure_telemetry` the
API's no-op tracer makes these calls free, and ``traceparent`` values still pass along unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from shared.core.errors import redact

from .setup import fixed_ids
from .trace_context import TraceParent, parse_traceparent

__all__ = ["SpanHandle", "current_traceparent", "emit_span", "span"]

TRACER = "bulwark"
Attributes = Mapping[str, str | int | float | bool]

_KINDS = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "consumer": SpanKind.CONSUMER}


class SpanHandle:
    """The open span: its ``traceparent`` for children, attributes, and a failure mark."""

    def __init__(self, span: trace.Span, fallback: str) -> None:
        self._span = span
        self._fallback = fallback

    @property
    def traceparent(self) -> str:
        """This span as its children's parent; the incoming one when nothing records spans."""
        return _format(self._span.get_span_context()) or self._fallback

    def set(self, name: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(name, value)

    def fail(self, reason: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, redact(reason)[:500]))


@contextmanager
def span(
    name: str, *, parent: str | None = None, kind: str = "internal", attributes: Attributes | None = None
) -> Iterator[SpanHandle]:
    """A span under ``parent`` (a ``traceparent``; else under the current span, or a new trace).

    An exception marks the span failed with its type and redacted text, and propagates."""
    context = _context(parse_traceparent(parent)) if parent else None
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(
        name,
        context=context,
        kind=_KINDS[kind],
        attributes=dict(attributes or {}),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        handle = SpanHandle(current, parent or "")
        try:
            yield handle
        except BaseException as exc:
            handle.fail(f"{type(exc).__name__}: {exc}")
            raise


def emit_span(
    name: str,
    *,
    own: TraceParent,
    parent: TraceParent | None,
    start: dt.datetime,
    end: dt.datetime,
    attributes: Attributes | None = None,
    failed: str | None = None,
) -> None:
    """Record a finished span with the ids ``own`` names (an orchestration's, derived so that its
    children could name it as their parent before it ended) and times taken from the orchestration."""
    tracer = trace.get_tracer(TRACER)
    with fixed_ids(own.trace_id_int, own.span_id_int):
        started = tracer.start_span(
            name,
            context=_context(parent) if parent is not None else Context(),
            kind=SpanKind.INTERNAL,
            attributes=dict(attributes or {}),
            start_time=_nanos(start),
        )
    if failed:
        started.set_status(Status(StatusCode.ERROR, redact(failed)[:500]))
    started.end(end_time=_nanos(end))


def current_traceparent(default: str = "") -> str:
    """The current span as a ``traceparent`` (what a job spec carries into its worker)."""
    return _format(trace.get_current_span().get_span_context()) or default


def _context(parent: TraceParent | None) -> Context | None:
    if parent is None:
        return None
    remote = SpanContext(
        trace_id=parent.trace_id_int,
        span_id=parent.span_id_int,
        is_remote=True,
        trace_flags=TraceFlags(int(parent.flags, 16)),
    )
    return trace.set_span_in_context(NonRecordingSpan(remote))


def _format(context: SpanContext) -> str:
    if not context.is_valid:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _nanos(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1_000_000_000)


def attributes_of(values: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """Only the values spans can carry (no None, no nested data)."""
    return {k: v for k, v in values.items() if isinstance(v, str | int | float | bool)}
