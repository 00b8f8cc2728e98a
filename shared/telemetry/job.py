"""A worker job's telemetry: configured from the worker's environment, one span under the
``traceparent`` its job spec carries, the job's metrics. The span is exported when the job ends;
the providers' exit hooks export what is logged after it (the worker's last lines).

Jobs that move data report bytes read and stored; ``repository-maintenance`` reports what it
forgot and what its prune freed (it reads no snapshot, so it has no throughput)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from .metrics import record_job, record_maintenance
from .setup import configure_telemetry, flush_telemetry
from .spans import SpanHandle, span

__all__ = ["job_telemetry"]

_MAINTENANCE = "repository-maintenance"  # shared.services.repo_maintenance's kind (services sit above telemetry)


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
                if spec.kind == _MAINTENANCE:
                    _observe_maintenance(current, spec.tags.get("policy", ""), result)
                    return
                read, stored = int(result.get("bytes_read", 0)), int(result.get("bytes_stored", 0))
                seconds = float(result.get("duration_s") or 0.0) or (time.monotonic() - started)
                current.set("bulwark.bytes_read", read)
                current.set("bulwark.bytes_stored", stored)
                current.set("bulwark.point", str(result.get("point_id", "")))
                record_job(spec.kind, read, stored, seconds)

            yield observe
    finally:
        flush_telemetry()


def _observe_maintenance(current: SpanHandle, policy_id: str, result: Mapping[str, Any]) -> None:
    forgotten = len(result.get("forgotten") or ())
    freed = int(result.get("bytes_freed") or 0)
    current.set("bulwark.points_forgotten", forgotten)
    current.set("bulwark.points_refused", len(result.get("refused") or ()))
    current.set("bulwark.packs_deleted", int(result.get("packs_deleted") or 0))
    current.set("bulwark.bytes_freed", freed)
    if result.get("prune_deferred"):
        current.set("bulwark.prune_deferred", str(result["prune_deferred"]))
    record_maintenance(policy_id, forgotten, freed)
