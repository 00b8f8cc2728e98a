"""W3C trace context values (``traceparent``), pure: safe to call from orchestrators.

A ``traceparent`` is ``00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>``. Orchestrators
cannot draw random span ids (a replay must pass its children the same parent), so their span ids
are derived by hashing the parent's ``traceparent`` with a key unique within the trace (the
instance id): the same inputs give the same ids in every replay.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["TraceParent", "derive_child", "parse_traceparent", "root_for"]

_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_SAMPLED = "01"


@dataclass(frozen=True)
class TraceParent:
    trace_id: str
    span_id: str
    flags: str = _SAMPLED

    def __str__(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @property
    def trace_id_int(self) -> int:
        return int(self.trace_id, 16)

    @property
    def span_id_int(self) -> int:
        return int(self.span_id, 16)


def parse_traceparent(text: str | None) -> TraceParent | None:
    """The parts of a valid ``traceparent``; None for an empty, malformed or all-zero one."""
    found = _FORMAT.match((text or "").strip().lower())
    if not found:
        return None
    trace_id, span_id, flags = found.groups()
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return TraceParent(trace_id, span_id, flags)


def derive_child(parent: TraceParent, key: str) -> TraceParent:
    """A span in ``parent``'s trace whose id depends only on ``parent`` and ``key``."""
    digest = hashlib.sha256(f"{parent}|{key}".encode()).hexdigest()
    span_id = digest[:16] if digest[:16] != "0" * 16 else digest[16:32]
    return TraceParent(parent.trace_id, span_id, parent.flags)


def root_for(key: str) -> TraceParent:
    """A trace for work that arrived without one (an orchestration started by an older app):
    derived from ``key`` (the instance id), so replays agree."""
    digest = hashlib.sha256(f"bulwark-trace|{key}".encode()).hexdigest()
    return TraceParent(digest[:32], digest[32:48])
