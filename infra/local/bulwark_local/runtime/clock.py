"""The runtime's clock: wall time in production, a hand-driven clock in tests.

Durable timers, message visibility and timer triggers all read the same :class:`Clock`, so a
test can start an orchestration, see it wait on a one-hour timer, advance a :class:`ManualClock`
by an hour and watch the timer fire at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Where the runtime gets the current time and learns how long to sleep."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def seconds_until(self, when: datetime) -> float | None:
        """Real seconds to sleep before ``when`` is due; ``None`` means "until woken"."""
        ...

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever the time moves other than by itself (a test advancing it)."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def seconds_until(self, when: datetime) -> float | None:
        return max(0.0, (when - self.now()).total_seconds())

    def subscribe(self, wake: Callable[[], None]) -> None:
        return None


class ManualClock:
    """A clock that only moves when told to; sleepers wake when it does."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2024, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[], None]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def seconds_until(self, when: datetime) -> float | None:
        return 0.0 if when <= self.now() else None

    def subscribe(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._subscribers.append(wake)

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and wake every sleeper."""
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += delta
            now, subscribers = self._now, list(self._subscribers)
        for wake in subscribers:
            wake()
        return now

    def set(self, when: datetime) -> datetime:
        """Move the clock forward to ``when``."""
        return self.advance(when.astimezone(UTC) - self.now())
