"""An orchestration's span: ids derived from its input's ``traceparent`` and its instance id, so
every replay hands its activities and sub-orchestrations the same parent; emitted once, when the
orchestration ends in an episode that is not a replay, with the orchestration's own times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import azure.durable_functions as df

from shared.telemetry.spans import attributes_of, emit_span
from shared.telemetry.trace_context import TraceParent, derive_child, parse_traceparent, root_for

__all__ = ["OrchestrationTrace", "traced"]


@dataclass(frozen=True)
class OrchestrationTrace:
    parent: TraceParent | None
    own: TraceParent
    started: dt.datetime

    @classmethod
    def begin(cls, context: df.DurableOrchestrationContext, traceparent: str) -> OrchestrationTrace:
        parent = parse_traceparent(traceparent)
        base = parent or root_for(context.instance_id)
        return cls(parent, derive_child(base, f"orchestration|{context.instance_id}"), context.current_utc_datetime)

    @property
    def traceparent(self) -> str:
        """What this orchestration's activities and sub-orchestrations carry."""
        return str(self.own)

    def end(
        self,
        context: df.DurableOrchestrationContext,
        name: str,
        attributes: Mapping[str, object],
        *,
        failed: str | None = None,
    ) -> None:
        if context.is_replaying:
            return
        values = dict(attributes, **{"bulwark.instance": context.instance_id})
        emit_span(
            name,
            own=self.own,
            parent=self.parent,
            start=self.started,
            end=context.current_utc_datetime,
            attributes=attributes_of(values),
            failed=failed,
        )


def traced(message: dict[str, Any], traceparent: str) -> dict[str, Any]:
    """An activity input whose message type has no ``traceparent`` field, with the trace context
    beside its fields (``Message.from_dict`` reads only its own fields; the activity's span, the key)."""
    return {**message, "traceparent": traceparent}
