"""Timer triggers: NCRONTAB schedules fired against the runtime's clock.

Schedules are six-field NCRONTAB expressions (``{second} {minute} {hour} {day} {month}
{day-of-week}``), five-field ones (seconds = 0) or ``hh:mm:ss`` intervals, evaluated in UTC.
Parsing uses croniter (seconds first); as in NCrontab a day must match both the day-of-month and
the day-of-week fields. Like the Functions host's timer listener:

* an invocation runs to its end before the next occurrence is computed (no overlap);
* ``run_on_startup`` fires once when the runtime starts;
* with schedule monitoring (``use_monitor``, on by default for periods of a minute or more) the
  last and next occurrences are persisted; an occurrence missed while the runtime was down fires
  once at start-up with ``IsPastDue`` set;
* the function receives ``ScheduleStatus`` as it was before the invocation: ``Next`` is the
  occurrence being run, ``Last`` the one before.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from croniter import croniter

from .clock import Clock
from .errors import ScheduleError
from .function_index import TimerFunction
from .history import format_timestamp
from .store import StateStore, TimerStatus

__all__ = ["NcrontabSchedule", "TimerTriggerRunner"]

_LOG = logging.getLogger("bulwark_local.runtime.timers")
_INTERVAL = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")
_MAX_SLEEP_SECONDS = 1.0


class NcrontabSchedule:
    """When a timer trigger's schedule fires next."""

    def __init__(self, expression: str) -> None:
        self.expression = expression.strip()
        interval = _INTERVAL.match(self.expression)
        self._interval: timedelta | None = None
        self._seconds_first = False
        if interval:
            days, hours, minutes, seconds = (int(g) if g else 0 for g in interval.groups())
            self._interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
            if self._interval <= timedelta(0):
                raise ScheduleError(f"timer interval {expression!r} must be positive")
            return
        fields = self.expression.split()
        if len(fields) not in (5, 6):
            raise ScheduleError(
                f"timer schedule {expression!r} has {len(fields)} fields",
                hint="use six NCRONTAB fields: second minute hour day month day-of-week",
            )
        self._seconds_first = len(fields) == 6
        if not croniter.is_valid(self.expression, second_at_beginning=self._seconds_first):
            raise ScheduleError(
                f"timer schedule {expression!r} is not a valid NCRONTAB expression",
                hint="e.g. '0 */5 * * * *' fires every five minutes",
            )

    def next_after(self, when: datetime) -> datetime:
        """The first occurrence strictly after ``when``."""
        if self._interval is not None:
            return when + self._interval
        iterator = croniter(self.expression, when, second_at_beginning=self._seconds_first, day_or=False)
        following: datetime = iterator.get_next(datetime)
        return following

    def period(self, around: datetime) -> timedelta:
        first = self.next_after(around)
        return self.next_after(first) - first


class TimerTriggerRunner:
    """Fires one timer-triggered function on its schedule, on its own thread."""

    def __init__(
        self,
        spec: TimerFunction,
        *,
        clock: Clock,
        store: StateStore,
        invoke: Callable[[TimerFunction, str], None],
    ) -> None:
        self._spec = spec
        self._schedule = NcrontabSchedule(spec.schedule)
        self._clock = clock
        self._store = store
        self._invoke = invoke
        self._monitor = (
            spec.use_monitor
            if spec.use_monitor is not None
            else self._schedule.period(clock.now()) >= timedelta(minutes=1)
        )
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"timer-{spec.name}", daemon=True)
        clock.subscribe(self._poke)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._poke()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _poke(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _run(self) -> None:
        status = self._store.timer_status(self._spec.name) if self._monitor else None
        now = self._clock.now()
        if self._spec.run_on_startup:
            self._fire(now, last=status.last if status else None, past_due=False)
        elif status is not None and status.next is not None and status.next < now:
            _LOG.info("timer %s missed %s while stopped; firing now", self._spec.name, status.next)
            self._fire(status.next, last=status.last, past_due=True)
        while not self._stopping.is_set():
            due = self._schedule.next_after(self._clock.now())
            if self._monitor:
                last = self._last()
                self._store.save_timer_status(
                    self._spec.name, TimerStatus(last=last, next=due, last_updated=self._clock.now())
                )
            if not self._sleep_until(due):
                return
            self._fire(due, last=self._last(), past_due=False)

    def _last(self) -> datetime | None:
        status = self._store.timer_status(self._spec.name) if self._monitor else None
        return status.last if status else None

    def _sleep_until(self, due: datetime) -> bool:
        while not self._stopping.is_set():
            seconds = self._clock.seconds_until(due)
            if seconds == 0.0:
                return True
            with self._wake:
                self._wake.wait(min(seconds, _MAX_SLEEP_SECONDS) if seconds else _MAX_SLEEP_SECONDS)
        return False

    def _fire(self, occurrence: datetime, *, last: datetime | None, past_due: bool) -> None:
        now = self._clock.now()
        timer_json = json.dumps(
            {
                "Schedule": {"AdjustForDST": True},
                "ScheduleStatus": {
                    "Last": format_timestamp(last) if last else None,
                    "Next": format_timestamp(occurrence),
                    "LastUpdated": format_timestamp(now),
                }
                if self._monitor
                else None,
                "IsPastDue": past_due,
            }
        )
        _LOG.info("timer %s fires for %s", self._spec.name, format_timestamp(occurrence))
        try:
            self._invoke(self._spec, timer_json)
        except Exception:
            _LOG.exception("timer function %s failed", self._spec.name)
        if self._monitor:
            self._store.save_timer_status(
                self._spec.name,
                TimerStatus(
                    last=occurrence,
                    next=self._schedule.next_after(occurrence),
                    last_updated=self._clock.now(),
                ),
            )
