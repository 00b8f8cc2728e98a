"""The orchestration engine: episodes, activities, timers and the client operations.

One dispatcher thread runs orchestration episodes one at a time (orchestrator code is pure and
quick) and hands activity work items to a bounded thread pool. An episode:

1. takes every visible message of one instance (new results, fired timers, raised events, the
   ExecutionStarted of a new execution, a termination request);
2. builds the extension's context JSON (past events with ``IsPlayed``, a new OrchestratorStarted
   stamped with the runtime clock, the new events) and runs the orchestrator through the SDK;
3. replays the returned actions against the history (:mod:`.replay`): sequence ids, retries,
   WhenAll/WhenAny, non-determinism checks;
4. commits the outcome atomically (:mod:`.store`): history, status, custom status, output, and
   the work it produced (activities, timers, sub-orchestrations, the parent's notification).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import Clock
from .errors import (
    InstanceGoneError,
    InstanceNotFoundError,
    LocalRuntimeError,
    NonDeterminismError,
    UnknownFunctionError,
)
from .function_index import FunctionIndex
from .history import EventType, HistoryEvent, OrchestrationStatus, new_event
from .invoker import FunctionInvoker
from .replay import Decision, Replayer, ReplayOutcome, host_encoded
from .store import (
    TERMINAL_STATUSES,
    ActivityWork,
    ChildStart,
    EpisodeCommit,
    InstanceQuery,
    InstanceRecord,
    Message,
    NewActivity,
    OutgoingMessage,
    ParentRef,
    RuntimeStatus,
    StateStore,
    execution_started,
)

__all__ = ["DurableEngine", "EngineOptions"]

_LOG = logging.getLogger("bulwark_local.runtime.engine")
_MAX_SLEEP_SECONDS = 1.0


@dataclass(frozen=True)
class EngineOptions:
    max_concurrent_activities: int = 10
    paranoid: bool = False
    """Run every episode twice and fail the instance if the two action lists differ, inputs
    included (stricter than Azure, which compares only kinds and names)."""
    overridable_statuses: frozenset[RuntimeStatus] = field(default_factory=lambda: TERMINAL_STATUSES)
    """Statuses an existing instance may have for ``start_new`` to replace it (Azure's
    ``overridableExistingInstanceStates``; the default is ``NonRunningStates``)."""


@dataclass(frozen=True)
class _EpisodeWork:
    """What an episode hands on: activity work items, timer messages, sub-orchestrations."""

    activities: list[NewActivity]
    messages: list[OutgoingMessage]
    children: list[ChildStart]


class DurableEngine:
    """Runs the Durable side of one function app against one :class:`StateStore`."""

    def __init__(
        self,
        *,
        functions: FunctionIndex,
        invoker: FunctionInvoker,
        store: StateStore,
        clock: Clock,
        options: EngineOptions | None = None,
    ) -> None:
        self._functions = functions
        self._invoker = invoker
        self._store = store
        self._clock = clock
        self._options = options or EngineOptions()
        self._wake = threading.Condition()
        self._kicked = False
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._busy = False
        self._in_flight: set[int] = set()
        self._pool = ThreadPoolExecutor(
            max_workers=self._options.max_concurrent_activities, thread_name_prefix="activity"
        )
        self._thread = threading.Thread(target=self._dispatch_loop, name="orchestrations", daemon=True)
        clock.subscribe(self.kick)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.kick()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def kick(self) -> None:
        """Wake the dispatcher: something may be ready."""
        with self._wake:
            self._kicked = True
            self._wake.notify_all()

    # -- client operations ---------------------------------------------------------------------

    def start_new(self, name: str, *, input_json: str | None = None, instance_id: str | None = None) -> str:
        """Start orchestrator ``name``; ``input_json`` is the JSON text of its input."""
        if self._functions.orchestrator(name) is None:
            raise UnknownFunctionError(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function.",
                hint="orchestrators: " + ", ".join(sorted(self._functions.orchestrators)),
            )
        instance_id = instance_id or uuid.uuid4().hex
        if input_json is not None:
            json.loads(input_json)  # must be JSON text; raises ValueError otherwise
        self._store.create_instance(
            instance_id=instance_id,
            name=name,
            input=input_json,
            execution_id=uuid.uuid4().hex,
            now=self._clock.now(),
            overridable=self._options.overridable_statuses,
        )
        _LOG.info("instance %s: %s scheduled", instance_id, name)
        self.kick()
        return instance_id

    def raise_event(self, instance_id: str, event_name: str, data_json: str | None = None) -> None:
        """Queue an EventRaised for the instance; ``data_json`` is the event's JSON text."""
        self._require_live(instance_id)
        self._store.enqueue(
            instance_id,
            new_event(EventType.EVENT_RAISED, self._clock.now(), Name=event_name, Input=data_json),
            visible_at=self._clock.now(),
        )
        self.kick()

    def terminate(self, instance_id: str, reason: str | None) -> None:
        self._require_live(instance_id)
        self._store.enqueue(
            instance_id,
            new_event(EventType.EXECUTION_TERMINATED, self._clock.now(), Input=reason),
            visible_at=self._clock.now(),
        )
        self.kick()

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        return self._store.get_instance(instance_id)

    def list_instances(self, query: InstanceQuery | None = None) -> list[InstanceRecord]:
        return self._store.list_instances(query)

    def history(self, instance_id: str) -> list[HistoryEvent]:
        """The instance's current execution history, DTFx-shaped, as the SDK receives it."""
        return self._store.history(instance_id)

    def purge(self, instance_id: str) -> bool:
        return self._store.purge(instance_id)

    def wait_for_status(
        self,
        instance_id: str,
        statuses: Iterable[RuntimeStatus] = TERMINAL_STATUSES,
        *,
        timeout: float = 30.0,
    ) -> InstanceRecord:
        """Block until the instance has one of ``statuses``; ``TimeoutError`` otherwise."""
        wanted = frozenset(statuses)
        deadline = time.monotonic() + timeout
        while True:
            record = self._store.get_instance(instance_id)
            if record is not None and record.status in wanted:
                return record
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state = record.status.value if record else "missing"
                raise TimeoutError(f"instance {instance_id!r} is {state} after {timeout} s")
            with self._changed:
                self._changed.wait(min(remaining, 0.2))

    def wait_until_idle(self, *, timeout: float = 30.0) -> None:
        """Block until nothing is due now: no visible message, activity or running episode."""
        deadline = time.monotonic() + timeout
        while not self.is_idle():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the runtime did not go idle in {timeout} s")
            with self._changed:
                self._changed.wait(0.05)

    def is_idle(self) -> bool:
        with self._wake:
            if self._busy or self._in_flight or self._kicked:
                return False
        return self._store.count_activities() == 0 and self._store.next_ready_instance(self._clock.now()) is None

    def _require_live(self, instance_id: str) -> InstanceRecord:
        record = self._store.get_instance(instance_id)
        if record is None:
            raise InstanceNotFoundError(f"No instance with ID '{instance_id}' found.")
        if record.status in TERMINAL_STATUSES:
            raise InstanceGoneError(f"Instance with ID {instance_id} is gone: it is {record.status.value}")
        return record

    # -- dispatcher ----------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                self._kicked = False
                self._busy = True
            try:
                self._dispatch_activities()
                instance_id = self._store.next_ready_instance(self._clock.now())
                if instance_id is not None:
                    self._run_episode(instance_id)
                    self._notify_changed()
                    continue
            except Exception:
                _LOG.exception("the orchestration dispatcher failed; retrying")
                self._stopping.wait(0.5)
                continue
            finally:
                with self._wake:
                    self._busy = False
            self._notify_changed()
            due = self._store.next_visibility()
            sleep = self._clock.seconds_until(due) if due is not None else None
            with self._wake:
                if not self._kicked and not self._stopping.is_set():
                    self._wake.wait(min(sleep, _MAX_SLEEP_SECONDS) if sleep is not None else _MAX_SLEEP_SECONDS)

    def _notify_changed(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _dispatch_activities(self) -> None:
        with self._wake:
            in_flight = set(self._in_flight)
        capacity = self._options.max_concurrent_activities - len(in_flight)
        for work in self._store.pending_activities(exclude=in_flight, limit=capacity):
            with self._wake:
                self._in_flight.add(work.id)
            self._pool.submit(self._run_activity, work)

    def _run_activity(self, work: ActivityWork) -> None:
        try:
            spec = self._functions.activity(work.name)
            started = time.monotonic()
            if spec is None:
                event = new_event(
                    EventType.TASK_FAILED,
                    self._clock.now(),
                    TaskScheduledId=work.task_id,
                    Reason=f"The activity function '{work.name}' doesn't exist.",
                    Details=None,
                )
            else:
                result = self._invoker.run_activity(spec, work.name, work.input)
                if result.ok:
                    event = new_event(
                        EventType.TASK_COMPLETED,
                        self._clock.now(),
                        TaskScheduledId=work.task_id,
                        Result=result.result,
                    )
                else:
                    event = new_event(
                        EventType.TASK_FAILED,
                        self._clock.now(),
                        TaskScheduledId=work.task_id,
                        Reason=result.reason,
                        Details=result.details,
                    )
            _LOG.info(
                "instance %s: activity %s #%d %s in %.0f ms",
                work.instance_id,
                work.name,
                work.task_id,
                "completed" if event["EventType"] == EventType.TASK_COMPLETED else "failed",
                (time.monotonic() - started) * 1000,
            )
            self._store.complete_activity(work, event, now=self._clock.now())
        except Exception:
            _LOG.exception("instance %s: activity %s #%d could not run", *_work_ids(work))
        finally:
            with self._wake:
                self._in_flight.discard(work.id)
            self.kick()

    # -- one episode ---------------------------------------------------------------------------

    def _run_episode(self, instance_id: str) -> None:
        now = self._clock.now()
        record = self._store.get_instance(instance_id)
        messages = self._store.visible_messages(instance_id, now)
        if record is None or record.status in TERMINAL_STATUSES:
            self._store.discard_messages([m.id for m in messages])
            return
        live = [m for m in messages if m.execution_id in (None, record.execution_id)]
        live_ids = {m.id for m in live}
        stale = [m.id for m in messages if m.id not in live_ids]
        history = self._store.history(instance_id)
        starts = [m for m in live if m.event["EventType"] == EventType.EXECUTION_STARTED]
        others = [m for m in live if m.event["EventType"] != EventType.EXECUTION_STARTED]
        if history:
            stale.extend(m.id for m in starts)  # a duplicate start of a running execution
            starts = []
        elif not starts:
            self._store.discard_messages(stale)
            return
        consumed = stale + [m.id for m in starts + others]
        terminations = [m for m in others if m.event["EventType"] == EventType.EXECUTION_TERMINATED]
        if terminations:
            self._terminate_now(record, consumed, terminations[0], now)
            return
        new_events = [new_event(EventType.ORCHESTRATOR_STARTED, now)]
        new_events += [m.event for m in starts + others]
        commit = self._episode_commit(record, history, new_events, consumed, now)
        self._store.commit_episode(commit, now=now)
        if commit.status != record.status:
            _LOG.info("instance %s: %s is %s", instance_id, record.name, commit.status.value)

    def _episode_commit(
        self,
        record: InstanceRecord,
        history: list[HistoryEvent],
        new_events: list[HistoryEvent],
        consumed: list[int],
        now: datetime,
    ) -> EpisodeCommit:
        full_history = [dict(event, IsPlayed=True) for event in history]
        full_history += [dict(event, IsPlayed=False) for event in new_events]
        spec = self._functions.orchestrator(record.name)
        if spec is None:
            return self._failure(record, new_events, consumed, now, f"The function '{record.name}' doesn't exist.")
        context_json = json.dumps(
            {
                "history": full_history,
                "input": json.loads(record.input) if record.input is not None else None,
                "instanceId": record.instance_id,
                "isReplaying": bool(history),
                "parentInstanceId": record.parent.instance_id if record.parent else None,
                "upperSchemaVersion": 1,
                "upperSchemaVersionNew": 3,
                "longRunningTimerIntervalDuration": "3.00:00:00",
                "maximumShortTimerDuration": "6.00:00:00",
                "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
            }
        )
        state = self._invoker.run_orchestrator(spec, context_json)
        custom_status = json.dumps(state["customStatus"]) if state.get("customStatus") is not None else None
        replayer = Replayer(
            orchestrator=record.name,
            instance_id=record.instance_id,
            execution_id=record.execution_id,
        )
        try:
            if self._options.paranoid:
                self._compare_runs(record, spec, context_json, state)
            outcome = replayer.replay(full_history, state.get("actions") or [], int(state.get("schemaVersion") or 0))
        except LocalRuntimeError as exc:  # non-determinism or an unsupported action
            return self._failure(record, new_events, consumed, now, str(exc), custom_status)

        scheduled = [decision.to_event(now) for decision in outcome.decisions]
        work = self._work_for(record, outcome.decisions, now)
        error = state.get("error")
        if error and outcome.finished:
            message = f"Orchestrator function '{record.name}' failed: {error}"
            return self._failure(record, new_events + scheduled, consumed, now, message, custom_status, work)
        if state.get("isDone") and outcome.finished and outcome.continue_as_new:
            return self._continue_as_new(record, consumed, outcome, custom_status, now)
        if state.get("isDone") and outcome.finished:
            output = json.dumps(state.get("output"))
            completed = new_event(
                EventType.EXECUTION_COMPLETED,
                now,
                OrchestrationStatus=int(OrchestrationStatus.COMPLETED),
                Result=output,
            )
            events = [*new_events, *scheduled, completed]
            return self._finished(
                record,
                events,
                consumed,
                now,
                status=RuntimeStatus.COMPLETED,
                output=output,
                custom_status=custom_status,
                notify=self._parent_message(record, True, output, None, now),
                work=work,
            )
        return EpisodeCommit(
            instance_id=record.instance_id,
            execution_id=record.execution_id,
            consumed=consumed,
            status=RuntimeStatus.RUNNING,
            history_append=[*new_events, *scheduled, _orchestrator_completed(now)],
            custom_status=custom_status,
            activities=work.activities,
            messages=work.messages,
            children=work.children,
        )

    def _compare_runs(self, record: InstanceRecord, spec: Any, context_json: str, first: dict[str, Any]) -> None:
        second = self._invoker.run_orchestrator(spec, context_json)
        ours, theirs = _flat_actions(first), _flat_actions(second)
        if ours == theirs:
            return
        index = next(
            (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
            min(len(ours), len(theirs)),
        )
        raise NonDeterminismError(
            f"Non-deterministic orchestrator {record.name!r} (instance {record.instance_id!r}): "
            f"two runs over the same history differ at action #{index}: "
            f"{_describe_action(ours, index)} vs {_describe_action(theirs, index)} (paranoid mode "
            "compares inputs too)",
            orchestrator=record.name,
            instance_id=record.instance_id,
        )

    def _work_for(self, record: InstanceRecord, decisions: Iterable[Decision], now: datetime) -> _EpisodeWork:
        work = _EpisodeWork(activities=[], messages=[], children=[])
        for decision in decisions:
            if decision.kind == "activity":
                work.activities.append(NewActivity(decision.sequence_id, decision.name, decision.input))
            elif decision.kind == "timer":
                assert decision.fire_at is not None
                fired = new_event(
                    EventType.TIMER_FIRED,
                    decision.fire_at,
                    TimerId=decision.sequence_id,
                    FireAt=decision.to_event(now)["FireAt"],
                )
                work.messages.append(
                    OutgoingMessage(
                        instance_id=record.instance_id,
                        event=fired,
                        visible_at=decision.fire_at,
                        execution_id=record.execution_id,
                    )
                )
            else:
                assert decision.instance_id is not None
                work.children.append(
                    ChildStart(
                        instance_id=decision.instance_id,
                        name=decision.name,
                        input=host_encoded(decision.input),
                        execution_id=uuid.uuid4().hex,
                        parent=ParentRef(record.instance_id, record.execution_id, decision.sequence_id),
                    )
                )
        return work

    def _failure(
        self,
        record: InstanceRecord,
        events: list[HistoryEvent],
        consumed: list[int],
        now: datetime,
        message: str,
        custom_status: str | None = None,
        work: _EpisodeWork | None = None,
    ) -> EpisodeCommit:
        _LOG.warning("instance %s: %s failed: %s", record.instance_id, record.name, _first_line(message))
        failed = new_event(
            EventType.EXECUTION_COMPLETED,
            now,
            OrchestrationStatus=int(OrchestrationStatus.FAILED),
            Result=message,
            FailureDetails={"ErrorType": "OrchestrationFailure", "ErrorMessage": message},
        )
        return self._finished(
            record,
            [*events, failed],
            consumed,
            now,
            status=RuntimeStatus.FAILED,
            output=json.dumps(message),
            custom_status=custom_status,
            notify=self._parent_message(record, False, None, message, now),
            work=work,
        )

    def _terminate_now(self, record: InstanceRecord, consumed: list[int], request: Message, now: datetime) -> None:
        reason = request.event.get("Input")
        events = [
            new_event(EventType.ORCHESTRATOR_STARTED, now),
            request.event,
            new_event(
                EventType.EXECUTION_COMPLETED,
                now,
                OrchestrationStatus=int(OrchestrationStatus.TERMINATED),
                Result=reason,
            ),
        ]
        commit = self._finished(
            record,
            events,
            consumed,
            now,
            status=RuntimeStatus.TERMINATED,
            output=json.dumps(reason),
            custom_status=None,
            notify=self._parent_message(record, False, None, str(reason), now),
        )
        self._store.commit_episode(commit, now=now)
        _LOG.info("instance %s: %s terminated", record.instance_id, record.name)

    def _finished(
        self,
        record: InstanceRecord,
        events: list[HistoryEvent],
        consumed: list[int],
        now: datetime,
        *,
        status: RuntimeStatus,
        output: str | None,
        custom_status: str | None,
        notify: OutgoingMessage | None,
        work: _EpisodeWork | None = None,
    ) -> EpisodeCommit:
        messages = list(work.messages) if work else []
        if notify is not None:
            messages.append(notify)
        return EpisodeCommit(
            instance_id=record.instance_id,
            execution_id=record.execution_id,
            consumed=consumed,
            status=status,
            history_append=[*events, _orchestrator_completed(now)],
            output=output,
            custom_status=custom_status,
            activities=work.activities if work else (),
            messages=messages,
            children=work.children if work else (),
        )

    def _continue_as_new(
        self,
        record: InstanceRecord,
        consumed: list[int],
        outcome: ReplayOutcome,
        custom_status: str | None,
        now: datetime,
    ) -> EpisodeCommit:
        execution_id = uuid.uuid4().hex
        new_input = host_encoded(outcome.continue_as_new_input)
        started = execution_started(record.instance_id, execution_id, record.name, new_input, record.parent, now)
        _LOG.info("instance %s: %s continues as new", record.instance_id, record.name)
        return EpisodeCommit(
            instance_id=record.instance_id,
            execution_id=record.execution_id,
            consumed=consumed,
            status=RuntimeStatus.CONTINUED_AS_NEW,
            custom_status=custom_status,
            new_execution_id=execution_id,
            new_input=new_input,
            messages=[OutgoingMessage(record.instance_id, started, now, execution_id)],
        )

    @staticmethod
    def _parent_message(
        record: InstanceRecord, ok: bool, output: str | None, reason: str | None, now: datetime
    ) -> OutgoingMessage | None:
        parent = record.parent
        if parent is None:
            return None
        if ok:
            event = new_event(
                EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
                now,
                TaskScheduledId=parent.task_id,
                Result=output,
            )
        else:
            event = new_event(
                EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
                now,
                TaskScheduledId=parent.task_id,
                Reason=reason,
                Details=None,
            )
        return OutgoingMessage(parent.instance_id, event, now, parent.execution_id)


def _orchestrator_completed(now: datetime) -> HistoryEvent:
    return new_event(EventType.ORCHESTRATOR_COMPLETED, now)


def _flat_actions(state: dict[str, Any]) -> list[Any]:
    return [action for action_set in state.get("actions") or [] for action in action_set]


def _describe_action(actions: list[Any], index: int) -> str:
    return json.dumps(actions[index]) if index < len(actions) else "nothing"


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else text


def _work_ids(work: ActivityWork) -> tuple[str, str, int]:
    return work.instance_id, work.name, work.task_id
