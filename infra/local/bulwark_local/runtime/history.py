"""Orchestration history events in the shape the Durable extension sends to the Python SDK.

The extension serialises DurableTask.Core ``HistoryEvent`` objects with Newtonsoft.Json:
PascalCase keys, ``EventType`` as an integer, ``EventId`` (the sequence id of what the event
schedules, else -1), ``IsPlayed`` and an ISO-8601 ``Timestamp``. The SDK requires those four keys
on every event and reads a few more per type (see ``reference/durable-local-host.md`` §1.3).
Events are kept as plain JSON objects: they are stored, replayed and served exactly as built here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

__all__ = [
    "COMPLETION_EVENTS",
    "SCHEDULING_EVENTS",
    "EventType",
    "HistoryEvent",
    "OrchestrationStatus",
    "format_status_time",
    "format_timestamp",
    "new_event",
    "parse_timestamp",
]

HistoryEvent = dict[str, Any]
"""One history event: a JSON object with at least EventType, EventId, IsPlayed and Timestamp."""


class EventType(IntEnum):
    """DurableTask.Core ``EventType`` numbering (the SDK's ``HistoryEventType`` uses the same)."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_INSTANCE_CREATED = 7
    SUB_ORCHESTRATION_INSTANCE_COMPLETED = 8
    SUB_ORCHESTRATION_INSTANCE_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC_EVENT = 17
    HISTORY_STATE = 18
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


class OrchestrationStatus(IntEnum):
    """DurableTask.Core ``OrchestrationStatus`` (the value in ExecutionCompleted events)."""

    RUNNING = 0
    COMPLETED = 1
    CONTINUED_AS_NEW = 2
    FAILED = 3
    CANCELED = 4
    TERMINATED = 5
    PENDING = 6
    SUSPENDED = 7


SCHEDULING_EVENTS = frozenset(
    {EventType.TASK_SCHEDULED, EventType.TIMER_CREATED, EventType.SUB_ORCHESTRATION_INSTANCE_CREATED}
)
"""Events an orchestration writes for what it schedules; their EventId is the sequence id."""

COMPLETION_EVENTS = frozenset(
    {
        EventType.TASK_COMPLETED,
        EventType.TASK_FAILED,
        EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
        EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
        EventType.TIMER_FIRED,
    }
)
"""Events that complete something scheduled (TaskScheduledId or TimerId names it)."""


def format_timestamp(when: datetime) -> str:
    """Newtonsoft's UTC round-trip form: fractional seconds without trailing zeros, then ``Z``."""
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_status_time(when: datetime) -> str:
    """The status API's time form (``DateTime.ToString("s") + "Z"``): whole seconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 timestamp; a missing zone means UTC."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def new_event(event_type: EventType, when: datetime, *, event_id: int = -1, **fields: Any) -> HistoryEvent:
    """Build a history event with the four keys every event carries, then ``fields``."""
    return {
        "EventType": int(event_type),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": format_timestamp(when),
        **fields,
    }
