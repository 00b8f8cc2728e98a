"""Replay an orchestrator's actions against its history, as the Durable extension and DTFx do.

The Python SDK re-runs the orchestrator over the whole history and answers with the list of
actions it has yielded so far (``OrchestratorState.actions``). It does not number them, retry
them, or check them against the history: the host does. This module is that host side, a small
model of ``OutOfProcOrchestrationShim`` over DTFx's ``TaskOrchestrationContext``:

* the shim walks the actions in order (schema V2/V3: one flat list, each awaited in turn; V1: one
  list per yield, awaited with WhenAny) and every call takes the next sequence id;
* ``CallActivityWithRetry``/``CallSubOrchestratorWithRetry`` run DTFx's retry loop: attempt, then a
  durable timer after each failure (first interval x backoff^n, capped by the max interval, within
  the retry timeout), including the timer after the last failed attempt that the SDK waits for;
* ``WhenAll``/``WhenAny`` have .NET semantics: WhenAll completes when every child has, WhenAny with
  the first child and never faults; a failed await does not stop the shim (the SDK decides);
* timers created already cancelled are still scheduled; their firing is ignored;
* external events are buffered until waited for; waiters per name form a stack;
* every TaskScheduled / TimerCreated / SubOrchestrationInstanceCreated event in the history must
  match, by sequence id, kind and case-insensitive name, what the replay scheduled for that id,
  or the replay raises :class:`NonDeterminismError` (inputs are not compared, as in DTFx).

What the replay scheduled beyond the history is returned as :class:`Decision` objects.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from .errors import LocalRuntimeError, NonDeterminismError
from .history import EventType, HistoryEvent, format_timestamp, new_event, parse_timestamp

__all__ = ["ActionType", "Decision", "ReplayOutcome", "Replayer", "host_encoded"]

DecisionKind = Literal["activity", "timer", "suborchestration"]


class ActionType:
    """``actionType`` values of the SDK's action JSON."""

    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    SCHEDULED_SIGNAL_ENTITY = 10
    WHEN_ANY = 11
    WHEN_ALL = 12


_UNSUPPORTED = {
    ActionType.CALL_ENTITY: "call_entity",
    ActionType.CALL_HTTP: "call_http",
    ActionType.SIGNAL_ENTITY: "signal_entity",
    ActionType.SCHEDULED_SIGNAL_ENTITY: "signal_entity",
}

_KIND_OF_EVENT: dict[int, DecisionKind] = {
    EventType.TASK_SCHEDULED: "activity",
    EventType.TIMER_CREATED: "timer",
    EventType.SUB_ORCHESTRATION_INSTANCE_CREATED: "suborchestration",
}


@dataclass(frozen=True)
class Decision:
    """Something the replay scheduled that the history does not have yet."""

    kind: DecisionKind
    sequence_id: int
    name: str = ""
    input: str | None = None
    """The SDK's ``input`` field: JSON text it made with ``df_dumps``. The host holds it as a
    string, so the events it writes carry that string JSON-encoded once more."""
    fire_at: datetime | None = None
    instance_id: str | None = None

    def describe(self) -> str:
        if self.kind == "timer":
            return "a timer"
        return f"{'an activity' if self.kind == 'activity' else 'a sub-orchestration'} {self.name!r}"

    def to_event(self, when: datetime) -> HistoryEvent:
        """The scheduling history event for this decision."""
        if self.kind == "activity":
            return new_event(
                EventType.TASK_SCHEDULED,
                when,
                event_id=self.sequence_id,
                Name=self.name,
                Version="",
                Input=json.dumps([self.input]),  # DTFx serialises the parameter array
            )
        if self.kind == "timer":
            assert self.fire_at is not None
            return new_event(
                EventType.TIMER_CREATED,
                when,
                event_id=self.sequence_id,
                FireAt=format_timestamp(self.fire_at),
            )
        return new_event(
            EventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
            when,
            event_id=self.sequence_id,
            Name=self.name,
            Version="",
            InstanceId=self.instance_id,
            Input=host_encoded(self.input),
        )


def host_encoded(sdk_text: str | None) -> str | None:
    """What DTFx stores for an input the SDK handed over as JSON text: that text, JSON-encoded.

    The extension deserialises the action's ``input`` into a .NET string and DTFx serialises it
    again, so a sub-orchestration or continue-as-new input ``[1, 2]`` is stored as ``"[1, 2]"``;
    the context JSON then carries the string and the SDK's ``df_loads`` turns it back into a list.
    """
    return json.dumps(sdk_text) if sdk_text is not None else None


@dataclass(frozen=True)
class ReplayOutcome:
    decisions: tuple[Decision, ...]
    """New work, in sequence-id order."""
    finished: bool
    """The shim awaited every action: the host may now complete or fail the instance."""
    continue_as_new: bool
    continue_as_new_input: str | None
    """The SDK's JSON text for the next execution's input (see :func:`host_encoded`)."""


class _Future:
    """A one-shot result, the stand-in for a .NET Task."""

    __slots__ = ("_callbacks", "done", "ok", "value")

    def __init__(self) -> None:
        self.done = False
        self.ok = True
        self.value: Any = None
        self._callbacks: list[Callable[[_Future], None]] = []

    def then(self, callback: Callable[[_Future], None]) -> None:
        if self.done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def resolve(self, ok: bool, value: Any = None) -> None:
        if self.done:
            return
        self.done, self.ok, self.value = True, ok, value
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


_Fiber = Generator[_Future, _Future, tuple[bool, Any]]


def _spawn(fiber: _Fiber) -> _Future:
    """Run a generator that yields futures and is sent each one back once it is done."""
    result = _Future()

    def step(sent: _Future | None) -> None:
        while True:
            try:
                awaited = fiber.send(sent) if sent is not None else next(fiber)
            except StopIteration as stop:
                ok, value = stop.value
                result.resolve(ok, value)
                return
            if not awaited.done:
                awaited.then(step)
                return
            sent = awaited

    step(None)
    return result


def _when_all(children: list[_Future]) -> _Future:
    result = _Future()
    remaining = len(children)
    if not remaining:
        result.resolve(True, [])

    def child_done(_: _Future) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            failed = [child for child in children if not child.ok]
            result.resolve(not failed, failed[0].value if failed else [c.value for c in children])

    for child in children:
        child.then(child_done)
    return result


def _when_any(children: list[_Future]) -> _Future:
    result = _Future()
    for child in children:
        child.then(lambda child: result.resolve(True, child))
    return result


class Replayer:
    """Replays one orchestration episode; use a new instance for every episode."""

    def __init__(self, *, orchestrator: str, instance_id: str, execution_id: str) -> None:
        self._orchestrator = orchestrator
        self._instance_id = instance_id
        self._execution_id = execution_id
        self._next_id = 0
        self._scheduled: dict[int, Decision] = {}
        self._open: dict[int, _Future] = {}
        self._waiters: dict[str, list[_Future]] = {}
        self._buffered: dict[str, deque[Any]] = {}
        self._now: datetime | None = None
        self._shim: _Future | None = None
        self._continue_as_new: tuple[str | None] | None = None

    def replay(self, history: Sequence[HistoryEvent], actions: list[Any], schema_version: int) -> ReplayOutcome:
        """Walk ``history`` while running the shim over ``actions``; see the module docstring."""
        for step, event in enumerate(history):
            kind = event["EventType"]
            if kind == EventType.ORCHESTRATOR_STARTED:
                self._now = parse_timestamp(event["Timestamp"])
            elif kind == EventType.EXECUTION_STARTED:
                self._shim = _spawn(self._run_shim(actions, schema_version))
            elif kind in _KIND_OF_EVENT:
                self._match(step, event, _KIND_OF_EVENT[kind])
            elif kind in (EventType.TASK_COMPLETED, EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED):
                self._complete(event.get("TaskScheduledId"), True, event.get("Result"))
            elif kind in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_INSTANCE_FAILED):
                self._complete(event.get("TaskScheduledId"), False, event.get("Reason"))
            elif kind == EventType.TIMER_FIRED:
                self._complete(event.get("TimerId"), True, None)
            elif kind == EventType.EVENT_RAISED:
                self._deliver(str(event.get("Name")), event.get("Input"))
        decisions = tuple(self._scheduled[key] for key in sorted(self._scheduled))
        return ReplayOutcome(
            decisions=decisions,
            finished=self._shim is not None and self._shim.done,
            continue_as_new=self._continue_as_new is not None,
            continue_as_new_input=self._continue_as_new[0] if self._continue_as_new else None,
        )

    # -- history side ------------------------------------------------------------------------

    def _match(self, step: int, event: HistoryEvent, kind: DecisionKind) -> None:
        sequence_id = int(event["EventId"])
        recorded = Decision(kind=kind, sequence_id=sequence_id, name=str(event.get("Name") or ""))
        produced = self._scheduled.pop(sequence_id, None)
        if (
            produced is None
            or produced.kind != kind
            or (kind != "timer" and produced.name.lower() != recorded.name.lower())
        ):
            did = "scheduled nothing" if produced is None else f"scheduled {produced.describe()}"
            raise NonDeterminismError(
                f"Non-deterministic orchestrator {self._orchestrator!r} (instance "
                f"{self._instance_id!r}): at history event #{step} a previous execution scheduled "
                f"{recorded.describe()} with sequence id {sequence_id}, but this replay {did} for "
                "that id",
                orchestrator=self._orchestrator,
                instance_id=self._instance_id,
                step=step,
            )

    def _complete(self, task_id: Any, ok: bool, value: Any) -> None:
        future = self._open.pop(int(task_id), None) if task_id is not None else None
        if future is not None:  # unknown ids: a duplicate or a cancelled timer; DTFx ignores them
            future.resolve(ok, value)

    def _deliver(self, name: str, payload: Any) -> None:
        waiters = self._waiters.get(name)
        if waiters:
            waiters.pop().resolve(True, payload)
        else:
            self._buffered.setdefault(name, deque()).append(payload)

    # -- action side -------------------------------------------------------------------------

    def _run_shim(self, actions: list[Any], schema_version: int) -> _Fiber:
        if schema_version >= 1:
            if len(actions) != 1:
                raise LocalRuntimeError(
                    f"orchestrator {self._orchestrator!r} returned {len(actions)} action lists; "
                    f"schema {schema_version} sends exactly one"
                )
            for action in actions[0]:
                yield self._invoke(action)
        else:
            for action_set in actions:
                children = [self._invoke(action) for action in action_set]
                if children:
                    yield _when_any(children)
        return True, None

    def _invoke(self, action: dict[str, Any]) -> _Future:
        kind = int(action["actionType"])
        if kind == ActionType.CALL_ACTIVITY:
            return self._schedule_activity(action)
        if kind == ActionType.CALL_ACTIVITY_WITH_RETRY:
            return _spawn(self._retry(lambda: self._schedule_activity(action), action["retryOptions"]))
        if kind == ActionType.CALL_SUB_ORCHESTRATOR:
            return self._schedule_suborchestration(action)
        if kind == ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY:
            return _spawn(self._retry(lambda: self._schedule_suborchestration(action), action["retryOptions"]))
        if kind == ActionType.CREATE_TIMER:
            future = self._schedule_timer(parse_timestamp(str(action["fireAt"])))
            if action.get("isCanceled"):
                self._open.pop(self._next_id - 1, None)
                future.resolve(False, "canceled")
            return future
        if kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            return self._wait_for_event(str(action["externalEventName"]))
        if kind == ActionType.CONTINUE_AS_NEW:
            self._continue_as_new = (action.get("input"),)
            done = _Future()
            done.resolve(True)
            return done
        if kind in (ActionType.WHEN_ALL, ActionType.WHEN_ANY):
            children = [self._invoke(child) for child in action.get("compoundActions", [])]
            return _when_all(children) if kind == ActionType.WHEN_ALL else _when_any(children)
        feature = _UNSUPPORTED.get(kind, f"action type {kind}")
        raise LocalRuntimeError(
            f"orchestrator {self._orchestrator!r} uses {feature}, which the local runtime does not support",
            hint="durable entities and call_http need Azure or Core Tools",
        )

    def _new_id(self) -> int:
        sequence_id, self._next_id = self._next_id, self._next_id + 1
        return sequence_id

    def _track(self, decision: Decision) -> _Future:
        self._scheduled[decision.sequence_id] = decision
        future = _Future()
        self._open[decision.sequence_id] = future
        return future

    def _schedule_activity(self, action: dict[str, Any]) -> _Future:
        return self._track(
            Decision(
                kind="activity",
                sequence_id=self._new_id(),
                name=str(action["functionName"]),
                input=action.get("input"),
            )
        )

    def _schedule_suborchestration(self, action: dict[str, Any]) -> _Future:
        sequence_id = self._new_id()
        instance_id = action.get("instanceId") or f"{self._execution_id}:{sequence_id}"
        return self._track(
            Decision(
                kind="suborchestration",
                sequence_id=sequence_id,
                name=str(action["functionName"]),
                input=action.get("input"),
                instance_id=str(instance_id),
            )
        )

    def _schedule_timer(self, fire_at: datetime) -> _Future:
        return self._track(Decision(kind="timer", sequence_id=self._new_id(), fire_at=fire_at))

    def _wait_for_event(self, name: str) -> _Future:
        future = _Future()
        buffered = self._buffered.get(name)
        if buffered:
            future.resolve(True, buffered.popleft())
        else:
            self._waiters.setdefault(name, []).append(future)
        return future

    def _retry(self, attempt: Callable[[], _Future], options: dict[str, Any]) -> _Fiber:
        """DTFx ``RetryInterceptor``: a durable timer follows every failed attempt."""
        first_interval = float(options["firstRetryIntervalInMilliseconds"])
        max_attempts = int(options.get("maxNumberOfAttempts", 1))
        backoff = float(options.get("backoffCoefficient", 1.0))
        max_interval = options.get("maxRetryIntervalInMilliseconds")
        timeout = options.get("retryTimeoutInMilliseconds")
        started = self._clock_now()
        last_error: Any = None
        for attempt_number in range(max_attempts):
            result = yield attempt()
            if result.ok:
                return True, result.value
            last_error = result.value
            now = self._clock_now()
            if timeout is not None and now >= started + timedelta(milliseconds=float(timeout)):
                break
            delay = first_interval * backoff**attempt_number
            if max_interval is not None:
                delay = min(delay, float(max_interval))
            if delay <= 0:
                break
            yield self._schedule_timer(now + timedelta(milliseconds=delay))
        return False, last_error

    def _clock_now(self) -> datetime:
        if self._now is None:
            raise LocalRuntimeError("history does not start with OrchestratorStarted")
        return self._now
