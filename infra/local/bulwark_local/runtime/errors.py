"""Errors raised by the local Functions runtime.

Every error is a :class:`~shared.core.errors.BulwarkError`, so it carries a stable ``code``, an
``exit_code`` for the command line and a ``hint`` that says what to do next.

    LocalRuntimeError                 the local runtime cannot do what was asked (exit 10)
    ├── AppLoadError                  the function app cannot be imported or indexed
    ├── ScheduleError                 a timer trigger's schedule is not a valid NCRONTAB expression
    ├── UnknownFunctionError          no orchestrator function of that name is registered
    ├── InstanceNotFoundError         no orchestration instance has that id
    ├── InstanceExistsError           an instance with that id is still pending or running
    ├── InstanceGoneError             the instance already reached a terminal state
    └── NonDeterminismError           a replay did not schedule what the recorded history says
"""

from __future__ import annotations

from shared.core.errors import BulwarkError

__all__ = [
    "AppLoadError",
    "InstanceExistsError",
    "InstanceGoneError",
    "InstanceNotFoundError",
    "LocalRuntimeError",
    "NonDeterminismError",
    "ScheduleError",
    "UnknownFunctionError",
]


class LocalRuntimeError(BulwarkError):
    code = "local_runtime"
    exit_code = 10


class AppLoadError(LocalRuntimeError):
    code = "app_load"


class ScheduleError(LocalRuntimeError):
    code = "bad_schedule"


class UnknownFunctionError(LocalRuntimeError):
    code = "unknown_function"


class InstanceNotFoundError(LocalRuntimeError):
    code = "instance_not_found"


class InstanceExistsError(LocalRuntimeError):
    """Starting an instance id that is Pending or Running (Azure answers 409 Conflict)."""

    code = "instance_exists"


class InstanceGoneError(LocalRuntimeError):
    """Raising an event to, or terminating, an instance that already finished (Azure: 410 Gone)."""

    code = "instance_gone"


class NonDeterminismError(LocalRuntimeError):
    """A replay of an orchestrator did not produce what its history recorded.

    ``orchestrator``, ``instance_id`` and ``step`` (the position in the history, 0-based) say
    where; the message says what the history had and what the replay did instead.
    """

    code = "non_deterministic"

    def __init__(self, message: str, *, orchestrator: str, instance_id: str, step: int | None = None) -> None:
        super().__init__(
            message,
            hint=(
                "orchestrator code must be deterministic: take time from "
                "context.current_utc_datetime, ids from context.new_uuid(), and do I/O, randomness "
                "and environment reads in activities"
            ),
        )
        self.orchestrator = orchestrator
        self.instance_id = instance_id
        self.step = step
