"""When sessions run: daily, weekly, monthly and yearly rules in a named time zone, and the pure
:func:`due_slots` that turns them into UTC instants.

Wall-clock rules meet daylight saving time twice a year; the rules here are:

* a time that does not exist on a spring-forward day (02:30 in Europe/Berlin on the last Sunday of
  March) runs once, at the first valid instant after the gap (03:00 CEST); several times in the
  same gap, or a gap time and the first time after it, run once together;
* a time that exists twice on a fall-back day (02:30 on the last Sunday of October) runs once, at
  its first occurrence;
* a monthly day that a month does not have (31 in April, 30 in February) runs on the month's last
  day, or not at all in that month with ``short_month: "skip"``; the same holds for a yearly
  February 29 in common years.

Instants that coincide, from one rule or several, are one slot.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo

from shared.core.errors import UsageError
from shared.policy.codec import spec
from shared.policy.formats import TIME_ZONE

__all__ = [
    "DailySchedule",
    "MonthlySchedule",
    "Schedule",
    "ShortMonth",
    "Week",
    "WeeklySchedule",
    "Weekday",
    "YearlySchedule",
    "due_slots",
]

_UTC = dt.UTC
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Weekday(StrEnum):
    """A day of the week; full English names ("Monday") are accepted too."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def _missing_(cls, value: object) -> Weekday | None:
        if isinstance(value, str):
            text = value.strip().lower()
            for member in cls:
                if len(text) >= 3 and _DAY_NAMES[member.number].startswith(text):
                    return member
        return None

    @classmethod
    def aliases(cls) -> dict[str, Weekday]:
        """The full names, also accepted (for suggestions; see the codec)."""
        return {_DAY_NAMES[member.number]: member for member in cls}

    @property
    def number(self) -> int:
        """Monday is 0, as in :meth:`datetime.date.weekday`."""
        return list(Weekday).index(self)


class Week(StrEnum):
    """Which occurrence of a weekday in its month."""

    FIRST = "first"
    SECOND = "second"
    THIRD = "third"
    FOURTH = "fourth"
    LAST = "last"

    @classmethod
    def aliases(cls) -> dict[str, Week]:
        """Spellings to suggest from: a fifth weekday exists in some months only, so 'last' is the fix."""
        return {"1st": cls.FIRST, "2nd": cls.SECOND, "3rd": cls.THIRD, "4th": cls.FOURTH, "fifth": cls.LAST}


class ShortMonth(StrEnum):
    """What a day the month does not have (31 in April, Feb 29 in a common year) means."""

    LAST_DAY = "last_day"
    SKIP = "skip"


_EVERY_DAY = tuple(Weekday)
_EVERY_MONTH = tuple(range(1, 13))


@dataclass(frozen=True)
class DailySchedule:
    """At the given times on the given weekdays."""

    times: tuple[dt.time, ...] = field(
        metadata=spec("times of day, HH:MM", example=["02:30"], min_items=1, max_items=24, unique=True)
    )
    weekdays: tuple[Weekday, ...] = field(
        default=_EVERY_DAY,
        metadata=spec("the days to run on (default: every day)", example=["mon", "wed"], min_items=1, unique=True),
    )


@dataclass(frozen=True)
class WeeklySchedule:
    """Once a week."""

    weekday: Weekday = field(metadata=spec("the day of the week", example="sat"))
    time: dt.time = field(metadata=spec("time of day, HH:MM", example="22:00"))


@dataclass(frozen=True)
class MonthlySchedule:
    """Once a month: on a day of the month (``day``), or on a weekday of a week (``week`` + ``weekday``,
    e.g. the last Friday)."""

    time: dt.time = field(metadata=spec("time of day, HH:MM", example="23:00"))
    day: int | None = field(
        default=None, metadata=spec("day of the month, 1-31 (see short_month)", example=1, minimum=1, maximum=31)
    )
    week: Week | None = field(default=None, metadata=spec("with weekday: which one in the month", example="last"))
    weekday: Weekday | None = field(default=None, metadata=spec("with week: the day of the week", example="fri"))
    months: tuple[int, ...] = field(
        default=_EVERY_MONTH,
        metadata=spec("the months to run in, 1-12 (default: all)", minimum=1, maximum=12, min_items=1, unique=True),
    )
    short_month: ShortMonth = field(
        default=ShortMonth.LAST_DAY,
        metadata=spec("a day the month lacks runs on its last day ('last_day') or not at all ('skip')"),
    )


@dataclass(frozen=True)
class YearlySchedule:
    """Once a year on a date; February 29 follows ``short_month`` in common years."""

    month: int = field(metadata=spec("month, 1-12", example=12, minimum=1, maximum=12))
    day: int = field(metadata=spec("day of the month", example=31, minimum=1, maximum=31))
    time: dt.time = field(metadata=spec("time of day, HH:MM", example="23:30"))
    short_month: ShortMonth = field(
        default=ShortMonth.LAST_DAY,
        metadata=spec("February 29 in a common year: run on the 28th ('last_day') or skip the year ('skip')"),
    )


@dataclass(frozen=True)
class Schedule:
    """Rules in one time zone; a slot is due when any rule says so."""

    time_zone: str = field(metadata=spec("IANA time zone of the times", example="Europe/Berlin", format=TIME_ZONE))
    daily: DailySchedule | None = field(default=None, metadata=spec("run on some or all days at given times"))
    weekly: WeeklySchedule | None = field(default=None, metadata=spec("run once a week"))
    monthly: MonthlySchedule | None = field(default=None, metadata=spec("run once a month"))
    yearly: YearlySchedule | None = field(default=None, metadata=spec("run once a year"))


def due_slots(schedule: Schedule, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """The instants (UTC, ascending, distinct) at which ``schedule`` is due, ``after < slot <= until``.

    The half-open window lets a timer ask for ``(last check, now]`` on every tick without ever
    seeing a slot twice or missing one. Both bounds must be timezone-aware.
    """
    if after.tzinfo is None or until.tzinfo is None:
        raise UsageError("due_slots needs timezone-aware datetimes", hint="pass e.g. datetime(..., tzinfo=UTC)")
    if until <= after:
        return []
    zone = ZoneInfo(schedule.time_zone)
    first = after.astimezone(zone).date() - dt.timedelta(days=1)
    last = until.astimezone(zone).date() + dt.timedelta(days=1)
    slots: set[dt.datetime] = set()
    day = first
    while day <= last:
        for wall in _wall_times(schedule, day):
            instant = _to_utc(dt.datetime.combine(day, wall), zone)
            if after < instant <= until:
                slots.add(instant)
        day += dt.timedelta(days=1)
    return sorted(slots)


def _wall_times(schedule: Schedule, day: dt.date) -> list[dt.time]:
    times: list[dt.time] = []
    daily, weekly, monthly, yearly = schedule.daily, schedule.weekly, schedule.monthly, schedule.yearly
    if daily is not None and any(day.weekday() == weekday.number for weekday in daily.weekdays):
        times.extend(daily.times)
    if weekly is not None and day.weekday() == weekly.weekday.number:
        times.append(weekly.time)
    if monthly is not None and day.month in monthly.months and _is_monthly_day(monthly, day):
        times.append(monthly.time)
    if yearly is not None and day.month == yearly.month and _is_day(day, yearly.day, yearly.short_month):
        times.append(yearly.time)
    return times


def _is_monthly_day(rule: MonthlySchedule, day: dt.date) -> bool:
    if rule.day is not None:
        return _is_day(day, rule.day, rule.short_month)
    if rule.week is None or rule.weekday is None or day.weekday() != rule.weekday.number:
        return False
    if rule.week is Week.LAST:
        return day.day + 7 > calendar.monthrange(day.year, day.month)[1]
    return (day.day - 1) // 7 == list(Week).index(rule.week)


def _is_day(day: dt.date, wanted: int, short_month: ShortMonth) -> bool:
    length = calendar.monthrange(day.year, day.month)[1]
    if wanted <= length:
        return day.day == wanted
    return short_month is ShortMonth.LAST_DAY and day.day == length


def _to_utc(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of a naive local wall time: its first occurrence if it repeats, the end of
    the gap if it does not exist."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(_UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=1 reads the wall time with the offset after the change (an instant before the
    # gap), fold=0 with the offset before it (an instant after). The gap ends between the two: find
    # the first second whose local time is past the wall time.
    low = int(wall.replace(tzinfo=zone, fold=1).astimezone(_UTC).timestamp())
    high = int(first.timestamp())
    while low < high:
        middle = (low + high) // 2
        local = dt.datetime.fromtimestamp(middle, _UTC).astimezone(zone).replace(tzinfo=None)
        if local > wall:
            high = middle
        else:
            low = middle + 1
    return dt.datetime.fromtimestamp(low, _UTC)
