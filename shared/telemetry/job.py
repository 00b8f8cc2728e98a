"""A worker job's telemetry: configured from the worker's environment, one span under the
``traceparent`` its job spec carries, the job's metrics. The span is exported when the job ends;
the providers' exit hooks export what is logged after it (the worker's last lines)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from .metrics import record_job
from .setup import configure_telemetry, flush_telemetry
from .spans import span

__all__ = ["job_telemetry"]


class _Spec(Protocol):
    @property
    def job_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def traceparent(self) -> str: ...
    @property
    def tags(self) -> Mapping[str, str]: ...


@contextmanager
def job_telemetry(spec: _Spec, env: Mapping[str, str]) -> Iterator[Callable[[Mapping[str, Any]], None]]:
    """Run the job inside; call the yielded function with the job's result to record its metrics."""
    configure_telemetry(env, service="bulwark-worker")
    started = time.monotonic()
    attributes: dict[str, str | int] = {"bulwark.job": spec.job_id, "bulwark.job.kind": spec.kind}
    attributes["bulwark.job.attempt"] = spec.attempt
    for name in ("policy", "session", "vm", "disk", "database"):
        if spec.tags.get(name):
            attributes[f"bulwark.{name}"] = spec.tags[name]
    try:
        with span(f"worker {spec.kind}", parent=spec.traceparent, kind="consumer", attributes=attributes) as current:

            def observe(result: Mapping[str, Any]) -> None:
                read, stored = int(result.get("bytes_read", 0)), int(result.get("bytes_stored", 0))
                seconds = float(result.get("duration_s") or 0.0) or (time.monotonic() - started)
                current.set("bulwark.bytes_read", read)
                current.set("bulwark.bytes_stored", stored)
                current.set("bulwark.point", str(result.get("point_id", "")))
                record_job(spec.kind, read, stored, seconds)

            yield observe
    finally:
        flush_telemetry()
