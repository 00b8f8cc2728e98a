"""Deterministic building blocks the orchestrators share: retry policies and fan-out helpers.

Everything here runs inside orchestrator replays: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase, TaskState

from functions import names
from shared.core.errors import redact
from shared.services.messages import JobHandle, JobState, PollJobsRequest, PollJobsResult

__all__ = ["BackoffRetry", "Outcome", "each_completed", "failure_reason", "wait_for_job"]

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


def wait_for_job(
    context: df.DurableOrchestrationContext, handle: JobHandle, retry: df.RetryOptions, *, max_poll_failures: int = 5
) -> Generator[Any, Any, JobState]:
    """Poll one worker job on a durable timer until it ends (one attempt; no restart), is lost, or
    its deadline passes (then it is stopped). Returns its final state."""
    deadline = context.current_utc_datetime + timedelta(seconds=handle.deadline_seconds)
    failures = 0
    while True:
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=handle.poll_seconds))
        try:
            polled = yield context.call_activity_with_retry(
                names.POLL_BACKUP_JOBS, retry, PollJobsRequest((handle,)).to_dict()
            )
        except Exception as error:
            failures += 1
            if failures < max_poll_failures:
                continue
            return JobState(handle.job_id, handle.attempt, "failed", reason=failure_reason(error))
        failures = 0
        [state] = PollJobsResult.from_dict(polled).jobs
        if state.state in ("succeeded", "failed"):
            return state
        if context.current_utc_datetime >= deadline:
            reason = f"the worker did not finish within {handle.deadline_seconds} s"
            try:
                yield context.call_activity_with_retry(
                    names.STOP_BACKUP_JOBS, retry, PollJobsRequest((handle,)).to_dict()
                )
            except Exception as error:
                reason += f" and could not be stopped: {failure_reason(error)}"
            return JobState(handle.job_id, handle.attempt, "failed", reason=reason)


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
