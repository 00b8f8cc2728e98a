"""Deterministic building blocks the orchestrators share: retry policies, fan-out and the worker job loop.

Everything here runs inside orchestrator replays: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase, TaskState

from functions import names
from shared.core.errors import redact
from shared.services.messages import JobHandle, JobState, PollJobsRequest, PollJobsResult

from .tracing import traced

__all__ = [
    "BackoffRetry",
    "JobStart",
    "JobsProgress",
    "Outcome",
    "each_completed",
    "failure_reason",
    "run_job",
    "run_jobs",
]

Outcome = tuple[bool, Any]
"""``(True, result)`` or ``(False, exception)`` of one task."""


class BackoffRetry(df.RetryOptions):  # type: ignore[misc]  # the SDK is untyped
    """RetryOptions with an exponential backoff: the extension reads ``backoffCoefficient`` and
    ``maxRetryIntervalInMilliseconds`` from the same JSON (the JavaScript SDK sends them too); the
    Python SDK's own class only carries the first interval and the attempt count."""

    def __init__(
        self, first_seconds: float, attempts: int, *, coefficient: float = 2.0, max_seconds: float = 300
    ) -> None:
        super().__init__(int(first_seconds * 1000), attempts)
        self.coefficient = coefficient
        self.max_interval_ms = int(max_seconds * 1000)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = dict(super().to_json())
        document["backoffCoefficient"] = self.coefficient
        document["maxRetryIntervalInMilliseconds"] = self.max_interval_ms
        return document


def each_completed(
    context: df.DurableOrchestrationContext, tasks: Sequence[TaskBase]
) -> Generator[Any, Any, list[Outcome]]:
    """Wait for every task (all run at once) and return each one's outcome, in the tasks' order.

    Unlike ``task_all``, a failure does not end the wait: the caller learns what each task did.
    """
    pending = list(enumerate(tasks))
    outcomes: dict[int, Outcome] = {}
    while pending:
        winner = yield context.task_any([task for _, task in pending])
        index = next(i for i, task in pending if task is winner)
        pending = [(i, task) for i, task in pending if task is not winner]
        outcomes[index] = (winner.state is TaskState.SUCCEEDED, winner.result)
    return [outcomes[i] for i in range(len(tasks))]


JobStart = Callable[[str, int], TaskBase]
"""Schedules attempt ``n`` (from 1) of the job for a key: the start activity's task, whose result
is a :class:`JobHandle`. The caller builds the request (its ids, its traceparent)."""


@dataclass(frozen=True)
class JobsProgress:
    """What one poll found, for the caller's custom status."""

    running: int
    """Attempts running now (after this round's starts)."""
    progress_bytes: int
    """What the running attempts reported at this poll."""
    ended: Mapping[str, JobState]
    """Final states so far, by key."""


def _no_report(_: JobsProgress) -> None:
    return None


def run_jobs(
    context: df.DurableOrchestrationContext,
    keys: Sequence[str],
    start: JobStart,
    retry: df.RetryOptions,
    *,
    slots: int = 0,
    all_or_nothing: bool = False,
    on_poll: Callable[[JobsProgress], None] = _no_report,
    max_poll_failures: int = 5,
    traceparent: str = "",
) -> Generator[Any, Any, dict[str, JobState]]:
    """Run one worker job per key to its end; returns the final state by key.

        At most ``slots`` attempts run at once (0: all); a waiting job starts when one ends. Each round
        is one durable timer (the shortest poll interval) and one ``poll_backup_jobs`` for every running
        attempt. An attempt that failed retryably (a lost worker, a transient error) is followed by the
        next one, up to its handle's ``max_attempts``; a job still running past its deadline (counted
        from its first attempt) is stopped. After ``max_poll_failures`` polls in a row fail, every job
        not ended fails. ``retry`` is for the poll and stop activities, which run under ``traceparent``
    (the caller's span), so they join its trace.

        ``all_or_nothing`` (a restore, where one failed job fails the whole): the first failure ends the
        run; the attempts still running are stopped, no other starts, and the jobs not ended are left
        out of the result (a running one that could not be stopped is in it, failed, saying so).
    """
    ended: dict[str, JobState] = {}
    running: dict[str, JobHandle] = {}
    deadlines: dict[str, datetime] = {}
    waiting = list(keys)
    retries: list[tuple[str, int]] = []  # (key, next attempt): started before any waiting job
    slots = slots or len(keys)
    whose = "workers'" if len(keys) > 1 else "worker's"

    def cut_short() -> bool:
        return all_or_nothing and any(state.state != "succeeded" for state in ended.values())

    def start_next() -> Generator[Any, Any, None]:
        while not cut_short():
            fresh = waiting[: max(0, slots - len(running) - len(retries))]
            del waiting[: len(fresh)]
            batch = [*retries, *((key, 1) for key in fresh)]
            retries.clear()
            if not batch:
                return
            started = yield from each_completed(context, [start(key, attempt) for key, attempt in batch])
            for (key, _), (ok, value) in zip(batch, started, strict=True):
                if ok:
                    handle = running[key] = JobHandle.from_dict(value)
                    deadline = context.current_utc_datetime + timedelta(seconds=handle.deadline_seconds)
                    deadlines.setdefault(key, deadline)
                else:
                    ended[key] = _not_started(f"the worker did not start: {failure_reason(value)}")
            if running:  # else every start failed: the next waiting jobs may still start
                return

    def stop(handles: Sequence[JobHandle]) -> Generator[Any, Any, str]:
        """Stops the attempts; "" or why they may still run."""
        try:
            yield context.call_activity_with_retry(
                names.STOP_BACKUP_JOBS, retry, traced(PollJobsRequest(tuple(handles)).to_dict(), traceparent)
            )
        except Exception as error:
            return f" and could not be stopped: {failure_reason(error)}"
        return ""

    yield from start_next()
    poll_failures = 0
    while running:
        if cut_short():
            problem = yield from stop(list(running.values()))
            if problem:
                for key, handle in running.items():
                    ended[key] = JobState(
                        handle.job_id, handle.attempt, "failed", reason=f"another worker failed{problem}"
                    )
            break
        interval = min(handle.poll_seconds for handle in running.values())
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=interval))
        try:
            polled = yield context.call_activity_with_retry(
                names.POLL_BACKUP_JOBS, retry, traced(PollJobsRequest(tuple(running.values())).to_dict(), traceparent)
            )
        except Exception as error:
            poll_failures += 1
            if poll_failures < max_poll_failures:
                continue
            reason = f"could not learn the {whose} state: {failure_reason(error)}"
            for key, handle in running.items():
                ended[key] = JobState(handle.job_id, handle.attempt, "failed", reason=reason)
            for key in waiting:
                ended[key] = _not_started(f"not started: {reason}")
            break
        poll_failures = 0
        progress = 0
        overdue: list[str] = []
        key_of_job = {handle.job_id: key for key, handle in running.items()}
        for state in PollJobsResult.from_dict(polled).jobs:
            key = key_of_job[state.job_id]
            handle = running[key]
            if state.state == "succeeded":
                ended[key] = state
                del running[key]
            elif state.state == "failed":
                del running[key]
                if state.retryable and handle.attempt < handle.max_attempts:
                    retries.append((key, handle.attempt + 1))
                else:
                    tries = f" (attempt {handle.attempt} of {handle.max_attempts})" if handle.attempt > 1 else ""
                    ended[key] = replace(state, reason=f"{state.reason}{tries}")
            elif context.current_utc_datetime >= deadlines[key]:
                overdue.append(key)
            else:
                progress += state.progress_bytes
        if overdue:
            problem = yield from stop([running[key] for key in overdue])
            for key in overdue:
                handle = running.pop(key)
                reason = f"the worker did not finish within {handle.deadline_seconds} s{problem}"
                ended[key] = JobState(handle.job_id, handle.attempt, "failed", reason=reason)
        yield from start_next()
        on_poll(JobsProgress(len(running), progress, dict(ended)))
    return ended


def run_job(
    context: df.DurableOrchestrationContext,
    start: Callable[[int], TaskBase],
    retry: df.RetryOptions,
    *,
    on_poll: Callable[[JobsProgress], None] = _no_report,
    max_poll_failures: int = 5,
    traceparent: str = "",
) -> Generator[Any, Any, JobState]:
    """:func:`run_jobs` for one job; ``start`` takes the attempt number."""
    states = yield from run_jobs(
        context,
        ("job",),
        lambda _, attempt: start(attempt),
        retry,
        on_poll=on_poll,
        max_poll_failures=max_poll_failures,
        traceparent=traceparent,
    )
    return states["job"]


def _not_started(reason: str) -> JobState:
    return JobState(job_id="", attempt=0, state="failed", reason=reason)


def failure_reason(error: Any) -> str:
    """One line for people from a failed task's exception (the host's text: 'Activity function
    'x' failed: Type: message' followed by a traceback)."""
    text = str(error).strip()
    for line in text.splitlines():
        line = line.strip()
        if line:
            text = line
            break
    marker = "failed: "
    if text.startswith(("Activity function", "Orchestrator function")) and marker in text:
        text = text.split(marker, 1)[1]
    return redact(text)[:500]
