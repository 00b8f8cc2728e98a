"""The worker job loop (functions/orchestrators/flow.py run_jobs/run_job), driven without a host.

A small fake orchestration context hands the generator's tasks to scripted workers (pure logic:
the real loop runs through the local runtime in tests/app). Every task the loop schedules is
recorded as an action, so a replay can feed the same outcomes back and compare what it schedules.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskState

from functions import names
from functions.orchestrators.flow import JobsProgress, run_job, run_jobs
from shared.services.messages import JobHandle, JobState, PollJobsRequest

T0 = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
RETRY = df.RetryOptions(1000, 2)
START = "start_test_job"

Action = tuple[str, str, Any]
"""(kind, activity name, input or fire time) of one scheduled task."""
Outcome = tuple[bool, Any]


class FakeTask:
    """A scheduled activity or timer; the driver settles it when the loop first waits for it."""

    def __init__(self, kind: str, name: str, payload: Any) -> None:
        self.kind, self.name, self.payload = kind, name, payload
        self.state = TaskState.RUNNING
        self.result: Any = None


@dataclass
class FakeAny:
    children: list[FakeTask]


class FakeContext:
    """The part of DurableOrchestrationContext the loop uses; time moves only with timers."""

    def __init__(self) -> None:
        self.current_utc_datetime = T0

    def call_activity_with_retry(self, name: str, retry: df.RetryOptions, payload: Any) -> FakeTask:
        assert retry is RETRY or name == START
        return FakeTask("activity", name, payload)

    def create_timer(self, fire_at: datetime) -> FakeTask:
        return FakeTask("timer", "", fire_at)

    def task_any(self, tasks: Sequence[FakeTask]) -> FakeAny:
        return FakeAny(list(tasks))


def drive(
    loop: Callable[[FakeContext], Generator[Any, Any, Any]], answer: Callable[[str, Any], Outcome]
) -> tuple[Any, list[Action], list[Outcome]]:
    """Runs the loop to its end: returns its result, the actions it scheduled and the activities'
    outcomes (the history: timers fire when they are due)."""
    context = FakeContext()
    actions: list[Action] = []
    outcomes: list[Outcome] = []

    def settle(task: FakeTask) -> None:
        if task.state is not TaskState.RUNNING:
            return
        actions.append((task.kind, task.name, task.payload))
        ok, value = True, None
        if task.kind == "timer":
            context.current_utc_datetime = task.payload
        else:
            ok, value = answer(task.name, task.payload)
            outcomes.append((ok, value))
        task.state, task.result = (TaskState.SUCCEEDED if ok else TaskState.FAILED), value

    generator = loop(context)
    sent: tuple[bool, Any] = (True, None)
    while True:
        try:
            yielded = generator.send(sent[1]) if sent[0] else generator.throw(sent[1])
        except StopIteration as done:
            return done.value, actions, outcomes
        if isinstance(yielded, FakeAny):
            for child in yielded.children:  # all of them are scheduled at once
                settle(child)
            sent = (True, yielded.children[0])
        else:
            settle(yielded)
            sent = (yielded.state is TaskState.SUCCEEDED, yielded.result)


def failure(name: str, text: str) -> Exception:
    """What the host throws for a failed activity: its message, then a traceback."""
    return Exception(f"Activity function '{name}' failed: {text}\n  File \"x.py\", line 1")


@dataclass
class Workers:
    """Scripted workers. Each key has one script per attempt: the states its polls answer (the
    last one repeats): ``running``, ``succeeded``, ``failed`` (final) or ``lost`` (retryable)."""

    scripts: dict[str, list[list[str]]]
    deadline_seconds: int = 3600
    max_attempts: int = 3
    not_starting: set[tuple[str, int]] = field(default_factory=set)
    poll_failures: int = 0
    stop_fails: bool = False
    stopped: list[str] = field(default_factory=list)

    def answer(self, name: str, payload: Any) -> Outcome:
        if name == START:
            key, attempt = payload["key"], payload["attempt"]
            if (key, attempt) in self.not_starting:
                return False, failure(name, "ContainerGroupQuotaReached: no capacity in northeurope")
            handle = JobHandle(
                f"job-{key}",
                attempt,
                f"worker-{key}-{attempt}",
                key,
                "",
                poll_seconds=30,
                deadline_seconds=self.deadline_seconds,
                max_attempts=self.max_attempts,
            )
            return True, handle.to_dict()
        handles = PollJobsRequest.from_dict(payload).jobs
        if name == names.STOP_BACKUP_JOBS:
            self.stopped += [handle.disk_id for handle in handles]
            return (False, failure(name, "HttpResponseError: 503")) if self.stop_fails else (True, {"jobs": []})
        assert name == names.POLL_BACKUP_JOBS
        if self.poll_failures:
            self.poll_failures -= 1
            return False, failure(name, "TimeoutError: the status table did not answer")
        return True, {"jobs": [self._poll(handle).to_dict() for handle in handles]}

    def _poll(self, handle: JobHandle) -> JobState:
        script = self.scripts[handle.disk_id][handle.attempt - 1]
        state = script.pop(0) if len(script) > 1 else script[0]
        if state == "running":
            return JobState(handle.job_id, handle.attempt, "running", progress_bytes=100)
        if state == "succeeded":
            return JobState(handle.job_id, handle.attempt, "succeeded", result={"point_id": f"p-{handle.disk_id}"})
        lost = state == "lost"
        reason = "the worker ended without a result" if lost else "the repository is locked"
        return JobState(handle.job_id, handle.attempt, "failed", retryable=lost, reason=reason)


def start(context: FakeContext, key: str, attempt: int) -> FakeTask:
    return context.call_activity_with_retry(START, RETRY, {"key": key, "attempt": attempt})


def jobs(
    keys: Sequence[str], reports: list[JobsProgress] | None = None, **options: Any
) -> Callable[[FakeContext], Generator[Any, Any, dict[str, JobState]]]:
    def loop(context: FakeContext) -> Generator[Any, Any, dict[str, JobState]]:
        report = reports.append if reports is not None else (lambda _: None)
        states = yield from run_jobs(
            context,  # the fake stands in for the SDK's context
            keys,
            lambda key, attempt: start(context, key, attempt),
            RETRY,
            on_poll=report,
            **options,
        )
        return states

    return loop


def starts(actions: list[Action]) -> list[tuple[str, int]]:
    return [(a[2]["key"], a[2]["attempt"]) for a in actions if a[1] == START]


def kinds(actions: list[Action]) -> list[str]:
    return [a[1] or "timer" for a in actions]


def test_jobs_that_succeed_end_with_their_results_and_report_progress() -> None:
    workers = Workers({"a": [["running", "succeeded"]], "b": [["succeeded"]]})
    reports: list[JobsProgress] = []
    states, actions, _ = drive(jobs(["a", "b"], reports), workers.answer)
    assert {key: (s.state, s.result["point_id"]) for key, s in states.items()} == {
        "a": ("succeeded", "p-a"),
        "b": ("succeeded", "p-b"),
    }
    poll = names.POLL_BACKUP_JOBS
    assert kinds(actions) == [START, START, "timer", poll, "timer", poll]
    assert [a[2] for a in actions if a[0] == "timer"] == [T0 + timedelta(seconds=30), T0 + timedelta(seconds=60)]
    assert [(r.running, r.progress_bytes, sorted(r.ended)) for r in reports] == [(1, 100, ["b"]), (0, 0, ["a", "b"])]
    assert not workers.stopped


def test_a_lost_attempt_is_followed_by_the_next_one() -> None:
    workers = Workers({"a": [["running", "lost"], ["succeeded"]]})
    states, actions, _ = drive(jobs(["a"]), workers.answer)
    assert states["a"].state == "succeeded" and states["a"].attempt == 2
    assert starts(actions) == [("a", 1), ("a", 2)]


def test_attempts_run_out_and_a_final_failure_is_not_retried() -> None:
    workers = Workers({"a": [["lost"]] * 3, "b": [["failed"]]})
    states, actions, _ = drive(jobs(["a", "b"]), workers.answer)
    assert states["a"].state == "failed"
    assert states["a"].reason == "the worker ended without a result (attempt 3 of 3)"
    assert states["b"].reason == "the repository is locked"  # attempt 1: no count
    assert starts(actions) == [("a", 1), ("b", 1), ("a", 2), ("a", 3)]


def test_a_job_past_its_deadline_is_stopped_counting_from_its_first_attempt() -> None:
    workers = Workers({"a": [["lost"], ["running"]], "b": [["succeeded"]]}, deadline_seconds=90)
    states, actions, _ = drive(jobs(["a", "b"]), workers.answer)
    assert states["a"] == JobState("job-a", 2, "failed", reason="the worker did not finish within 90 s")
    assert states["b"].state == "succeeded"
    assert workers.stopped == ["a"]
    stop_at = [a for a in actions if a[0] == "timer"][-1][2]
    assert stop_at == T0 + timedelta(seconds=90)  # not 90 s after attempt 2 began (at 30 s)


def test_a_stop_that_fails_is_in_the_reason() -> None:
    workers = Workers({"a": [["running"]]}, deadline_seconds=30, stop_fails=True)
    state, _, _ = drive(lambda c: run_job(c, lambda n: start(c, "a", n), RETRY), workers.answer)
    assert state.state == "failed"
    assert state.reason == "the worker did not finish within 30 s and could not be stopped: HttpResponseError: 503"


def test_poll_failures_in_a_row_fail_the_jobs_not_ended() -> None:
    recovers = Workers({"a": [["succeeded"]]}, poll_failures=4)
    states, _, _ = drive(jobs(["a"]), recovers.answer)
    assert states["a"].state == "succeeded"

    gives_up = Workers({"a": [["running"]], "b": [["succeeded"]]}, poll_failures=5)
    states, actions, _ = drive(jobs(["a", "b"], slots=1), gives_up.answer)
    reason = "could not learn the workers' state: TimeoutError: the status table did not answer"
    assert states["a"] == JobState("job-a", 1, "failed", reason=reason)
    assert states["b"] == JobState("", 0, "failed", reason=f"not started: {reason}")
    assert kinds(actions).count(names.POLL_BACKUP_JOBS) == 5 and starts(actions) == [("a", 1)]


def test_a_worker_that_does_not_start_fails_its_job_only() -> None:
    workers = Workers({"a": [["succeeded"]], "b": [["succeeded"]]}, not_starting={("a", 1)})
    states, _, _ = drive(jobs(["a", "b"]), workers.answer)
    assert states["a"] == JobState(
        "", 0, "failed", reason="the worker did not start: ContainerGroupQuotaReached: no capacity in northeurope"
    )
    assert states["b"].state == "succeeded"


def test_slots_bound_the_workers_in_flight() -> None:
    workers = Workers({"a": [["running", "succeeded"]], "b": [["succeeded"]], "c": [["succeeded"]]})
    states, actions, _ = drive(jobs(["a", "b", "c"], slots=2), workers.answer)
    assert all(s.state == "succeeded" for s in states.values()) and len(states) == 3
    poll = names.POLL_BACKUP_JOBS
    assert kinds(actions) == [START, START, "timer", poll, START, "timer", poll]
    assert [len(a[2]["jobs"]) for a in actions if a[1] == poll] == [2, 2]


def test_all_or_nothing_stops_the_others_at_the_first_failure() -> None:
    workers = Workers({"a": [["failed"]], "b": [["running"]], "c": [["succeeded"]]})
    states, actions, _ = drive(jobs(["a", "b", "c"], slots=2, all_or_nothing=True), workers.answer)
    assert list(states) == ["a"] and states["a"].reason == "the repository is locked"
    assert workers.stopped == ["b"] and starts(actions) == [("a", 1), ("b", 1)]

    stuck = Workers({"a": [["failed"]], "b": [["running"]]}, stop_fails=True)
    states, _, _ = drive(jobs(["a", "b"], all_or_nothing=True), stuck.answer)
    assert states["b"].reason == "another worker failed and could not be stopped: HttpResponseError: 503"


def test_replaying_the_same_history_schedules_the_same_actions() -> None:
    def world() -> Workers:
        return Workers(
            {"a": [["running", "lost"], ["running", "succeeded"]], "b": [["running"]], "c": [["failed"]]},
            deadline_seconds=180,
            poll_failures=2,
        )

    loop = jobs(["a", "b", "c"], slots=2)
    states, actions, outcomes = drive(loop, world().answer)
    assert [(key, s.state, s.attempt) for key, s in states.items()] == [
        ("a", "succeeded", 2),
        ("b", "failed", 1),  # its deadline
        ("c", "failed", 1),
    ]

    history = iter(outcomes)
    replayed_states, replayed_actions, _ = drive(loop, lambda name, payload: next(history))
    assert replayed_actions == actions and replayed_states == states
    assert next(history, None) is None
    # A fresh run against the same world does the same too: nothing depends on anything but the history.
    assert drive(loop, world().answer)[1] == actions
