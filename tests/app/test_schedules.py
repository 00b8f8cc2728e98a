"""The schedule timer on the runtime's clock: a due slot starts its session once, under the slot's id.

The policy's daily slot 03:17 UTC falls in the timer tick of 03:20 (window 03:15-03:20]); the
session it starts is a snapshot session (the image-level schedule is not due). Replaying the tick
(as after a restart) starts nothing and leaves the finished instance alone: the runtime, like the
Durable host, would replace a finished instance started under the same id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bulwark_local.runtime import InstanceRecord, LocalFunctionsHost, ManualClock, RuntimeStatus
from bulwark_local.runtime.store import InstanceQuery
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack
from pytest import TempPathFactory

from functions.triggers.schedules import window
from shared.azure.clients import AzureClients
from tests.app.harness import policy_document, running_app, store_policy
from tests.worker.estate import make_estate, make_repository

START = datetime(2024, 3, 1, 3, 12, 30, tzinfo=UTC)  # a Friday
POLICY = "nightly"
SLOT_ID = f"{POLICY}@20240301T031700Z"


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def sessions(host: LocalFunctionsHost) -> list[InstanceRecord]:
    """This policy's session instances (not their per-VM sub-orchestrations)."""
    found = host.engine.list_instances(InstanceQuery(instance_id_prefix=f"{POLICY}@"))
    return [i for i in found if ":vm:" not in i.instance_id]


def ticked(host: LocalFunctionsHost, occurrence: datetime) -> None:
    """Wait until the timer has run for ``occurrence`` (before moving the clock again: a clock that
    jumps past the next occurrence while the function runs would skip it)."""

    def done() -> bool:
        status = host.store.timer_status("start_due_sessions")
        return status is not None and status.last == occurrence

    wait_for(done)


def test_a_due_slot_starts_one_session_under_its_slot_id(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("schedules")
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    repository, secret = make_repository(work)
    document = policy_document(stack, estate.vm.resource_group, repository, secret, POLICY)
    document["schedule"] = {"time_zone": "UTC", "daily": {"times": ["03:17"]}}
    store_policy(stack, document)
    clock = ManualClock(START)
    with running_app(stack, work, timers=True, clock=clock) as (host, _):
        wait_for(lambda: host.store.timer_status("start_due_sessions") is not None)
        clock.advance(timedelta(minutes=2, seconds=30))  # 03:15: nothing of ours is due
        ticked(host, datetime(2024, 3, 1, 3, 15, tzinfo=UTC))
        host.engine.wait_until_idle(timeout=10)
        assert sessions(host) == []
        clock.advance(timedelta(minutes=5))  # 03:20: the tick covers (03:15, 03:20]
        wait_for(lambda: bool(sessions(host)))
        record = host.wait_for_completion(SLOT_ID, timeout=60)
        assert record.status is RuntimeStatus.COMPLETED
        output = json.loads(record.output or "{}")
        assert output["slot"] == "2024-03-01T03:17:00.000000Z" and output["image_level"] is False
        assert output["status"] == "Success" and output["resources"][0]["resource_id"] == estate.vm.id
        assert all(d["snapshot_id"] and not d["point_id"] for d in output["resources"][0]["disks"])

        [spec] = host.functions.timers
        replay = (
            '{"ScheduleStatus": {"Last": "2024-03-01T03:15:00Z", "Next": "2024-03-01T03:20:00Z"}, "IsPastDue": true}'
        )
        host.invoker.run_timer(spec, replay, host.urls.client_binding())
        host.engine.wait_until_idle(timeout=10)
        [again] = sessions(host)
        assert again.instance_id == SLOT_ID and again.status is RuntimeStatus.COMPLETED
        assert again.output == record.output  # not replaced by a new run

        clock.advance(timedelta(minutes=5))  # 03:25: (03:20, 03:25] holds no slot
        ticked(host, datetime(2024, 3, 1, 3, 25, tzinfo=UTC))
        host.engine.wait_until_idle(timeout=10)
        assert [s.instance_id for s in sessions(host)] == [SLOT_ID]


def test_timer_window_is_last_to_next_occurrence_and_at_most_a_day() -> None:
    status = {"Last": "2024-03-01T03:15:00Z", "Next": "2024-03-01T03:20:00Z"}
    assert window(status) == (datetime(2024, 3, 1, 3, 15, tzinfo=UTC), datetime(2024, 3, 1, 3, 20, tzinfo=UTC))
    assert window({"Next": "2024-03-01T03:20:00Z"})[0] == datetime(2024, 3, 1, 3, 15, tzinfo=UTC)
    long_ago = {"Last": "2024-01-01T00:00:00Z", "Next": "2024-03-01T03:20:00Z"}
    assert window(long_ago)[0] == datetime(2024, 2, 29, 3, 20, tzinfo=UTC)
