"""Timer triggers: NCRONTAB parsing and firing against the runtime's clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bulwark_local.runtime import LocalFunctionsHost, ManualClock, RuntimeStatus, ScheduleError, StateStore
from bulwark_local.runtime.function_index import TimerFunction
from bulwark_local.runtime.schedule import NcrontabSchedule, TimerTriggerRunner
from bulwark_local.runtime.store import InstanceQuery

from .conftest import START

MakeHost = Callable[..., LocalFunctionsHost]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_ncrontab_six_fields_with_seconds_first() -> None:
    every_five_minutes = NcrontabSchedule("0 */5 * * * *")
    assert every_five_minutes.next_after(_at("2024-03-01T12:03:10")) == _at("2024-03-01T12:05:00")
    assert NcrontabSchedule("*/15 * * * * *").next_after(_at("2024-03-01T12:00:00")) == _at("2024-03-01T12:00:15")
    weekdays = NcrontabSchedule("0 30 9 * * Mon-Fri")
    assert weekdays.next_after(_at("2024-03-01T10:00:00")) == _at("2024-03-04T09:30:00")  # Fri -> Mon
    # NCrontab needs both day fields to match: the 13th only when it is a Friday.
    assert NcrontabSchedule("0 0 0 13 * 5").next_after(_at("2024-01-01T00:00:00")) == _at("2024-09-13T00:00:00")
    assert NcrontabSchedule("30 * * * *").next_after(_at("2024-03-01T12:00:00")) == _at("2024-03-01T12:30:00")
    assert NcrontabSchedule("00:10:00").next_after(_at("2024-03-01T12:00:00")) == _at("2024-03-01T12:10:00")
    for bad in ("0 */5 * * *  * *", "every five minutes", "0 61 * * * *"):
        with pytest.raises(ScheduleError):
            NcrontabSchedule(bad)


def test_timer_trigger_fires_on_the_clock_and_each_slot_once(make_host: MakeHost, clock: ManualClock) -> None:
    host = make_host(timers=True)
    # The trigger has computed (and recorded) its first occurrence before the clock moves.
    _wait_for(lambda: host.store.timer_status("scheduled_backup") is not None)
    status = host.store.timer_status("scheduled_backup")
    assert status is not None and status.next == START + timedelta(minutes=5)
    clock.advance(timedelta(minutes=4, seconds=59))
    host.engine.wait_until_idle(timeout=10)
    assert host.engine.list_instances() == []
    clock.advance(timedelta(seconds=1))  # 12:05:00
    scheduled = InstanceQuery(instance_id_prefix="scheduled-")
    _wait_for(lambda: bool(host.engine.list_instances(scheduled)))
    [instance] = host.engine.list_instances(scheduled)
    assert instance.instance_id == "scheduled-2024-03-01T12:05:00Z"
    assert instance.status in (RuntimeStatus.PENDING, RuntimeStatus.RUNNING, RuntimeStatus.COMPLETED)

    # The function derives the instance id from the slot and checks it first: a slot that fires
    # again (a restart replaying a missed occurrence) starts nothing new.
    [spec] = host.functions.timers
    payload = '{"ScheduleStatus": {"Next": "2024-03-01T12:05:00Z"}, "IsPastDue": true}'
    host.invoker.run_timer(spec, payload, host.urls.client_binding())
    assert len(host.engine.list_instances(scheduled)) == 1


def _runner(store: StateStore, clock: ManualClock, fired: list[str], *, run_on_startup: bool) -> TimerTriggerRunner:
    spec = TimerFunction(
        name="tick",
        callable=lambda timer: None,
        trigger_parameter="timer",
        schedule="0 0 * * * *",
        run_on_startup=run_on_startup,
    )
    return TimerTriggerRunner(spec, clock=clock, store=store, invoke=lambda s, payload: fired.append(payload))


def _wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met")


def test_run_on_startup_and_past_due_after_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(START)
    store = StateStore(tmp_path / "state.sqlite")
    fired: list[str] = []
    runner = _runner(store, clock, fired, run_on_startup=True)
    runner.start()
    _wait_for(lambda: len(fired) == 1)
    assert '"IsPastDue": false' in fired[0]
    clock.advance(timedelta(hours=1))  # 13:00
    _wait_for(lambda: len(fired) == 2)
    assert '"Next": "2024-03-01T13:00:00Z"' in fired[1]
    runner.stop()

    clock.advance(timedelta(hours=2, minutes=30))  # 15:30: the 14:00 and 15:00 runs were missed
    fired.clear()
    runner = _runner(store, clock, fired, run_on_startup=False)
    runner.start()
    _wait_for(lambda: len(fired) == 1)
    assert '"IsPastDue": true' in fired[0]
    runner.stop()
    store.close()
