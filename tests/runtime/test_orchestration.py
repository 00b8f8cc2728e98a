"""Orchestrations through the runtime: outputs, history shape, retries, timers, events, failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bulwark_local.runtime import (
    InstanceExistsError,
    InstanceGoneError,
    LocalFunctionsHost,
    ManualClock,
    RuntimeStatus,
    UnknownFunctionError,
)
from bulwark_local.runtime.history import EventType, parse_timestamp

from .conftest import executions

MakeHost = Callable[..., LocalFunctionsHost]


def _drive(host: LocalFunctionsHost, clock: ManualClock, instance_id: str) -> None:
    """Move the clock to each next due timer until the instance finishes."""
    for _ in range(100):
        host.engine.wait_until_idle(timeout=10)
        record = host.engine.get_instance(instance_id)
        assert record is not None
        if record.status not in (RuntimeStatus.PENDING, RuntimeStatus.RUNNING, RuntimeStatus.CONTINUED_AS_NEW):
            return
        due = host.store.next_visibility()
        assert due is not None, f"instance {instance_id} waits for nothing: {record}"
        clock.set(max(due, clock.now()))
    raise AssertionError("the orchestration did not finish")


def _kinds(history: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(EventType(e["EventType"]).name, e["EventId"]) for e in history]


def test_backup_orchestration_runs_to_completion(make_host: MakeHost, clock: ManualClock, activity_log: Path) -> None:
    host = make_host()
    job = {"resources": ["vm1", "vm2", "vm3", "vm4", "vm5"], "limit": 2, "cooldown_seconds": 60}
    instance_id = host.start_new("backup_orchestrator", job, instance_id="backup-1")
    _drive(host, clock, instance_id)
    record = host.wait_for_completion(instance_id)
    assert record.status is RuntimeStatus.COMPLETED
    output = json.loads(record.output or "null")
    assert output == {
        "snapshots": ["snap-vm1", "snap-vm2", "snap-vm3", "snap-vm4", "snap-vm5"],
        "verified": True,
        "receipt": "manifest-5-items-attempt-3",
        "approval": None,
    }
    assert json.loads(record.custom_status or "null") == {"phase": "done"}

    runs = executions(activity_log)
    for vm in job["resources"]:
        assert runs.count(f"snapshot_resource {vm}") == 1
        assert runs.count(f"verify_snapshot snap-{vm}") == 1
    assert runs.count("upload_manifest backup-1") == 3  # fails twice, then succeeds

    history = host.engine.history(instance_id)
    assert _kinds(history)[:5] == [
        ("ORCHESTRATOR_STARTED", -1),
        ("EXECUTION_STARTED", -1),
        ("TASK_SCHEDULED", 0),
        ("TASK_SCHEDULED", 1),
        ("ORCHESTRATOR_COMPLETED", -1),
    ]
    assert _kinds(history)[-2:] == [("EXECUTION_COMPLETED", -1), ("ORCHESTRATOR_COMPLETED", -1)]
    scheduled = [e for e in history if e["EventType"] in (4, 7, 10)]
    assert [e["EventId"] for e in scheduled] == list(range(len(scheduled)))  # sequence ids 0..n
    # 5 snapshots, the sub-orchestration, 3 upload attempts with 2 retry timers, the cooldown
    assert len(scheduled) == 5 + 1 + 3 + 2 + 1
    started = [e for e in history if e["EventType"] == EventType.ORCHESTRATOR_STARTED]
    completed = [e for e in history if e["EventType"] == EventType.ORCHESTRATOR_COMPLETED]
    assert len(started) == len(completed)

    # bounded concurrency: never more than two snapshots scheduled and not completed
    open_tasks, peak = set(), 0
    names = {e["EventId"]: e["Name"] for e in history if e["EventType"] == EventType.TASK_SCHEDULED}
    for event in history:
        if event["EventType"] == EventType.TASK_SCHEDULED and event["Name"] == "snapshot_resource":
            open_tasks.add(event["EventId"])
        elif event["EventType"] == EventType.TASK_COMPLETED:
            open_tasks.discard(event["TaskScheduledId"])
        peak = max(peak, len(open_tasks))
    assert peak == 2
    assert list(names.values()).count("snapshot_resource") == 5


def test_retries_follow_dtfx_sequence_and_wait_on_durable_timers(
    make_host: MakeHost, clock: ManualClock, activity_log: Path
) -> None:
    host = make_host()
    instance_id = host.start_new("backup_orchestrator", {"resources": ["vm1"], "cooldown_seconds": 5})
    host.engine.wait_until_idle(timeout=10)
    assert executions(activity_log).count(f"upload_manifest {instance_id}") == 1
    # The retry waits for its durable timer: nothing happens until the clock moves.
    host.engine.wait_until_idle(timeout=10)
    assert executions(activity_log).count(f"upload_manifest {instance_id}") == 1
    clock.advance(timedelta(milliseconds=999))
    host.engine.wait_until_idle(timeout=10)
    assert executions(activity_log).count(f"upload_manifest {instance_id}") == 1
    clock.advance(timedelta(milliseconds=1))
    host.engine.wait_until_idle(timeout=10)
    assert executions(activity_log).count(f"upload_manifest {instance_id}") == 2
    _drive(host, clock, instance_id)

    history = host.engine.history(instance_id)
    upload_ids = [e["EventId"] for e in history if e.get("Name") == "upload_manifest"]
    first = upload_ids[0]
    assert upload_ids == [first, first + 2, first + 4]
    timers = {e["EventId"]: e for e in history if e["EventType"] == EventType.TIMER_CREATED}
    assert first + 1 in timers and first + 3 in timers
    failures = [e for e in history if e["EventType"] == EventType.TASK_FAILED]
    assert [e["TaskScheduledId"] for e in failures] == [first, first + 2]
    assert "ConnectionError: transient storage error (attempt 1)" in failures[0]["Reason"]
    fired = [e for e in history if e["EventType"] == EventType.TIMER_FIRED]
    assert [e["TimerId"] for e in fired][:2] == [first + 1, first + 3]
    delay = parse_timestamp(timers[first + 1]["FireAt"]) - parse_timestamp(failures[0]["Timestamp"])
    assert delay == timedelta(seconds=1)


def test_sub_orchestration_gets_a_derived_id_and_reports_back(make_host: MakeHost, clock: ManualClock) -> None:
    host = make_host()
    instance_id = host.start_new("backup_orchestrator", {"resources": ["a", "b"], "cooldown_seconds": 1})
    _drive(host, clock, instance_id)
    history = host.engine.history(instance_id)
    created = next(e for e in history if e["EventType"] == EventType.SUB_ORCHESTRATION_INSTANCE_CREATED)
    execution_id = history[1]["OrchestrationInstance"]["ExecutionId"]
    assert created["InstanceId"] == f"{execution_id}:{created['EventId']}"
    child = host.engine.get_instance(created["InstanceId"])
    assert child is not None and child.status is RuntimeStatus.COMPLETED and child.output == "true"
    assert child.parent is not None and child.parent.instance_id == instance_id
    done = next(e for e in history if e["EventType"] == EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED)
    assert done["TaskScheduledId"] == created["EventId"] and done["Result"] == "true"


def test_external_event_is_buffered_until_waited_for(make_host: MakeHost, clock: ManualClock) -> None:
    host = make_host()
    job = {"resources": ["a"], "cooldown_seconds": 30, "wait_for_approval": True}
    instance_id = host.start_new("backup_orchestrator", job)
    host.raise_event(instance_id, "approve", {"by": "alice"})  # long before the orchestrator waits
    _drive(host, clock, instance_id)
    record = host.wait_for_completion(instance_id)
    assert json.loads(record.output or "null")["approval"] == {"by": "alice"}


def test_waiting_instance_can_be_terminated(make_host: MakeHost, clock: ManualClock) -> None:
    host = make_host()
    job = {"resources": ["a"], "cooldown_seconds": 1, "wait_for_approval": True}
    instance_id = host.start_new("backup_orchestrator", job)
    for _ in range(6):
        host.engine.wait_until_idle(timeout=10)
        clock.advance(timedelta(seconds=1))
    record = host.engine.get_instance(instance_id)
    assert record is not None and json.loads(record.custom_status or "{}")["phase"] == "awaiting-approval"
    host.engine.terminate(instance_id, "operator cancelled")
    record = host.wait_for_completion(instance_id)
    assert record.status is RuntimeStatus.TERMINATED and json.loads(record.output or "") == "operator cancelled"
    with pytest.raises(InstanceGoneError):
        host.raise_event(instance_id, "approve", True)


def test_start_new_with_an_existing_id(make_host: MakeHost, clock: ManualClock) -> None:
    host = make_host()
    host.start_new("countdown_orchestrator", 1, instance_id="slot-1")
    with pytest.raises(InstanceExistsError, match=r"status (Pending|Running) already exists"):
        host.start_new("countdown_orchestrator", 1, instance_id="slot-1")
    _drive(host, clock, "slot-1")
    # A finished instance is replaced (Azure's default NonRunningStates), with a fresh history.
    host.start_new("countdown_orchestrator", 0, instance_id="slot-1")
    record = host.wait_for_completion("slot-1")
    assert record.status is RuntimeStatus.COMPLETED
    assert [e["EventType"] for e in host.engine.history("slot-1")].count(EventType.EXECUTION_STARTED) == 1
    with pytest.raises(UnknownFunctionError, match="doesn't exist"):
        host.start_new("no_such_orchestrator")


def test_continue_as_new_restarts_history(make_host: MakeHost, clock: ManualClock) -> None:
    host = make_host()
    instance_id = host.start_new("countdown_orchestrator", 3)
    _drive(host, clock, instance_id)
    record = host.wait_for_completion(instance_id)
    assert record.status is RuntimeStatus.COMPLETED and record.output == '"liftoff"'
    history = host.engine.history(instance_id)
    assert json.loads(history[1]["Input"]) == "0"  # the last execution's input, as the host stores it
    assert len(history) == 4  # started, execution started, execution completed, completed


def test_non_deterministic_orchestrator_fails_with_a_clear_message(make_host: MakeHost) -> None:
    host = make_host("tests.runtime.bad_app")
    instance_id = host.engine.start_new("alternating_orchestrator", input_json=None)
    record = host.wait_for_completion(instance_id)
    assert record.status is RuntimeStatus.FAILED
    message = json.loads(record.output or '""')
    assert "Non-deterministic orchestrator 'alternating_orchestrator'" in message
    assert "a previous execution scheduled an activity 'step_a' with sequence id 0" in message
    assert "this replay scheduled an activity 'step_b'" in message
    assert "history event #" in message


def test_paranoid_mode_catches_inputs_that_change_between_replays(make_host: MakeHost) -> None:
    relaxed = make_host("tests.runtime.bad_app")
    record = relaxed.wait_for_completion(relaxed.engine.start_new("random_input_orchestrator", input_json=None))
    assert record.status is RuntimeStatus.COMPLETED  # what Azure does: inputs are not compared
    strict = make_host("tests.runtime.bad_app", paranoid=True)
    record = strict.wait_for_completion(strict.engine.start_new("random_input_orchestrator", input_json=None))
    assert record.status is RuntimeStatus.FAILED
    assert "two runs over the same history differ at action #0" in json.loads(record.output or '""')
