"""The session metrics, through the OpenTelemetry API (no-ops until telemetry is configured).

bulwark.backup.bytes_read       counter, By     what workers read from snapshots and staged BACPACs
bulwark.backup.bytes_stored     counter, By     what they added to repositories (after dedup, zstd)
bulwark.backup.throughput       histogram, By/s bytes read per second of worker time, per job
bulwark.snapshots.created       counter         snapshots taken (managed incremental or blob)
bulwark.snapshots.deleted       counter         snapshots removed by retention
bulwark.sessions                counter         finished sessions, by ``result`` and ``policy``
bulwark.repository.points_forgotten  counter    repository points image retention's maintenance forgot
bulwark.repository.bytes_freed  counter, By     pack bytes its prune deleted (0 while a backup defers it)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics

__all__ = [
    "record_job",
    "record_maintenance",
    "record_session",
    "record_snapshots_created",
    "record_snapshots_deleted",
]

METER = "bulwark"


@dataclass(frozen=True)
class _Instruments:
    bytes_read: Any
    bytes_stored: Any
    throughput: Any
    snapshots_created: Any
    snapshots_deleted: Any
    sessions: Any
    points_forgotten: Any
    bytes_freed: Any


_lock = threading.Lock()
_instruments: _Instruments | None = None


def _get() -> _Instruments:
    """Made once: the API's proxies forward to whatever provider is configured later."""
    global _instruments
    with _lock:
        if _instruments is None:
            meter = metrics.get_meter(METER)
            _instruments = _Instruments(
                bytes_read=meter.create_counter("bulwark.backup.bytes_read", unit="By", description="bytes read"),
                bytes_stored=meter.create_counter(
                    "bulwark.backup.bytes_stored", unit="By", description="bytes added to repositories"
                ),
                throughput=meter.create_histogram(
                    "bulwark.backup.throughput", unit="By/s", description="bytes read per second of worker time"
                ),
                snapshots_created=meter.create_counter("bulwark.snapshots.created", description="snapshots taken"),
                snapshots_deleted=meter.create_counter(
                    "bulwark.snapshots.deleted", description="snapshots removed by retention"
                ),
                sessions=meter.create_counter("bulwark.sessions", description="finished backup sessions"),
                points_forgotten=meter.create_counter(
                    "bulwark.repository.points_forgotten", description="repository points forgotten by retention"
                ),
                bytes_freed=meter.create_counter(
                    "bulwark.repository.bytes_freed", unit="By", description="pack bytes deleted by prune"
                ),
            )
        return _instruments


def record_job(kind: str, bytes_read: int, bytes_stored: int, seconds: float) -> None:
    """One finished worker job (``image-backup`` or ``bacpac-backup``)."""
    instruments = _get()
    labels = {"job.kind": kind}
    instruments.bytes_read.add(max(0, bytes_read), labels)
    instruments.bytes_stored.add(max(0, bytes_stored), labels)
    if seconds > 0:
        instruments.throughput.record(bytes_read / seconds, labels)


def record_maintenance(policy_id: str, points_forgotten: int, bytes_freed: int) -> None:
    """One finished ``repository-maintenance`` job."""
    instruments = _get()
    labels = {"policy": policy_id}
    instruments.points_forgotten.add(max(0, points_forgotten), labels)
    instruments.bytes_freed.add(max(0, bytes_freed), labels)


def record_snapshots_created(count: int, *, managed: bool) -> None:
    _get().snapshots_created.add(count, {"snapshot.kind": "managed" if managed else "blob"})


def record_snapshots_deleted(count: int) -> None:
    if count:
        _get().snapshots_deleted.add(count)


def record_session(result: str, policy_id: str) -> None:
    _get().sessions.add(1, {"result": result, "policy": policy_id})
