"""due_slots, policy_slots and slot ids: time zones, DST transitions, short months, windows."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from shared.core.errors import UsageError
from shared.policy.document import policy_from_dict
from shared.policy.schedule import (
    DailySchedule,
    MonthlySchedule,
    Schedule,
    ShortMonth,
    Week,
    Weekday,
    WeeklySchedule,
    YearlySchedule,
    due_slots,
)
from shared.policy.slots import PolicySlot, parse_slot_id, policy_slots, slot_id
from tests.policy.documents import minimal_document

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def daily(zone: str, *times: str, weekdays: tuple[Weekday, ...] = tuple(Weekday)) -> Schedule:
    parsed = tuple(dt.time.fromisoformat(t) for t in times)
    return Schedule(zone, daily=DailySchedule(parsed, weekdays))


def local(slots: list[dt.datetime], zone: ZoneInfo) -> list[str]:
    return [slot.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") for slot in slots]


# -- daily and DST ------------------------------------------------------------------------------------


def test_daily_in_berlin_is_utc_shifted_by_the_season() -> None:
    slots = due_slots(daily("Europe/Berlin", "02:30"), utc(2024, 1, 10), utc(2024, 1, 12))
    assert slots == [utc(2024, 1, 10, 1, 30), utc(2024, 1, 11, 1, 30)]
    slots = due_slots(daily("Europe/Berlin", "02:30"), utc(2024, 7, 10), utc(2024, 7, 12))
    assert slots == [utc(2024, 7, 10, 0, 30), utc(2024, 7, 11, 0, 30)]
    assert all(slot.tzinfo is UTC for slot in slots)


def test_berlin_spring_forward_runs_a_missing_time_once_at_the_end_of_the_gap() -> None:
    # 2024-03-31: 02:00 CET jumps to 03:00 CEST; 02:00-02:59 does not exist.
    schedule = daily("Europe/Berlin", "01:30", "02:00", "02:30", "03:00", "03:30")
    slots = due_slots(schedule, utc(2024, 3, 30, 12), utc(2024, 3, 31, 12))
    assert local(slots, BERLIN) == [
        "2024-03-31 01:30 CET",
        "2024-03-31 03:00 CEST",  # 02:00, 02:30 and 03:00: one run at the first valid instant
        "2024-03-31 03:30 CEST",
    ]
    assert slots[1] == utc(2024, 3, 31, 1, 0)


def test_berlin_fall_back_runs_a_repeated_time_once_at_its_first_occurrence() -> None:
    # 2024-10-27: 03:00 CEST falls back to 02:00 CET; 02:00-02:59 happens twice.
    schedule = daily("Europe/Berlin", "02:00", "02:30", "03:00")
    slots = due_slots(schedule, utc(2024, 10, 26, 12), utc(2024, 10, 27, 12))
    assert local(slots, BERLIN) == ["2024-10-27 02:00 CEST", "2024-10-27 02:30 CEST", "2024-10-27 03:00 CET"]
    assert slots == [utc(2024, 10, 27, 0, 0), utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 2, 0)]


def test_new_york_spring_forward_and_fall_back() -> None:
    schedule = daily("America/New_York", "01:30", "02:30")
    spring = due_slots(schedule, utc(2024, 3, 10, 0), utc(2024, 3, 11, 0))
    assert local(spring, NEW_YORK) == ["2024-03-10 01:30 EST", "2024-03-10 03:00 EDT"]
    fall = due_slots(schedule, utc(2024, 11, 3, 0), utc(2024, 11, 4, 0))
    assert local(fall, NEW_YORK) == ["2024-11-03 01:30 EDT", "2024-11-03 02:30 EST"]
    assert fall[0] == utc(2024, 11, 3, 5, 30)  # the first 01:30, not the second one an hour later


def test_every_day_of_a_dst_year_has_exactly_one_run_per_time() -> None:
    slots = due_slots(daily("Europe/Berlin", "02:30"), utc(2023, 12, 31, 12), utc(2024, 12, 31, 12))
    assert len(slots) == 366  # 2024 is a leap year; the spring-forward day still has one run
    assert len({slot.astimezone(BERLIN).date() for slot in slots}) == 366


def test_a_day_that_does_not_exist_runs_its_times_once() -> None:
    # Samoa skipped 2011-12-30 when it crossed the date line.
    slots = due_slots(daily("Pacific/Apia", "09:00", "18:00"), utc(2011, 12, 29, 12), utc(2011, 12, 31, 12))
    apia = ZoneInfo("Pacific/Apia")
    assert local(slots, apia) == [
        "2011-12-29 09:00 -10",
        "2011-12-29 18:00 -10",
        "2011-12-31 00:00 +14",  # 2011-12-30 09:00 and 18:00 never happened: one run when the day ends
        "2011-12-31 09:00 +14",
        "2011-12-31 18:00 +14",
    ]


def test_weekdays_are_local_weekdays() -> None:
    # 23:30 Sunday in Tokyo is still Sunday locally although it is Sunday 14:30 UTC; 00:30 Monday
    # Tokyo is Sunday 15:30 UTC, and must count as Monday.
    schedule = daily("Asia/Tokyo", "00:30", weekdays=(Weekday.MON,))
    slots = due_slots(schedule, utc(2024, 6, 1), utc(2024, 6, 15))
    assert slots == [utc(2024, 6, 2, 15, 30), utc(2024, 6, 9, 15, 30)]


# -- weekly, monthly, yearly --------------------------------------------------------------------------


def test_weekly() -> None:
    schedule = Schedule("UTC", weekly=WeeklySchedule(Weekday.SAT, dt.time(22, 0)))
    assert due_slots(schedule, utc(2024, 6, 1), utc(2024, 6, 30)) == [
        utc(2024, 6, 1, 22),
        utc(2024, 6, 8, 22),
        utc(2024, 6, 15, 22),
        utc(2024, 6, 22, 22),
        utc(2024, 6, 29, 22),
    ]


def test_monthly_last_friday() -> None:
    schedule = Schedule(
        "America/New_York", monthly=MonthlySchedule(dt.time(22, 0), week=Week.LAST, weekday=Weekday.FRI)
    )
    slots = due_slots(schedule, utc(2024, 1, 1), utc(2025, 1, 1, 12))
    assert [slot.astimezone(NEW_YORK).date().isoformat() for slot in slots] == [
        "2024-01-26", "2024-02-23", "2024-03-29", "2024-04-26", "2024-05-31", "2024-06-28",
        "2024-07-26", "2024-08-30", "2024-09-27", "2024-10-25", "2024-11-29", "2024-12-27",
    ]  # fmt: skip
    assert slots[0] == utc(2024, 1, 27, 3, 0)  # 22:00 EST is 03:00 UTC the next day
    assert slots[3] == utc(2024, 4, 27, 2, 0)  # 22:00 EDT


def test_monthly_first_monday_in_chosen_months() -> None:
    rule = MonthlySchedule(dt.time(6, 0), week=Week.FIRST, weekday=Weekday.MON, months=(1, 4, 7, 10))
    slots = due_slots(Schedule("UTC", monthly=rule), utc(2024, 1, 1), utc(2025, 1, 1))
    assert [slot.date().isoformat() for slot in slots] == ["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-07"]


def test_monthly_day_31_runs_on_the_last_day_of_short_months() -> None:
    rule = MonthlySchedule(dt.time(23, 0), day=31)
    slots = due_slots(Schedule("UTC", monthly=rule), utc(2024, 1, 1), utc(2024, 7, 1))
    assert [slot.date().isoformat() for slot in slots] == [
        "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30",
    ]  # fmt: skip


def test_monthly_day_31_can_skip_short_months() -> None:
    rule = MonthlySchedule(dt.time(23, 0), day=31, short_month=ShortMonth.SKIP)
    slots = due_slots(Schedule("UTC", monthly=rule), utc(2024, 1, 1), utc(2024, 7, 1))
    assert [slot.date().isoformat() for slot in slots] == ["2024-01-31", "2024-03-31", "2024-05-31"]


def test_yearly_february_29() -> None:
    rule = YearlySchedule(2, 29, dt.time(1, 0))
    slots = due_slots(Schedule("Europe/Berlin", yearly=rule), utc(2023, 1, 1), utc(2029, 1, 1))
    assert [slot.astimezone(BERLIN).date().isoformat() for slot in slots] == [
        "2023-02-28", "2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29",
    ]  # fmt: skip
    skip = YearlySchedule(2, 29, dt.time(1, 0), short_month=ShortMonth.SKIP)
    slots = due_slots(Schedule("Europe/Berlin", yearly=skip), utc(2023, 1, 1), utc(2029, 1, 1))
    assert [slot.astimezone(BERLIN).date().isoformat() for slot in slots] == ["2024-02-29", "2028-02-29"]


def test_rules_that_coincide_give_one_slot() -> None:
    schedule = Schedule(
        "UTC",
        daily=DailySchedule((dt.time(22, 0),)),
        weekly=WeeklySchedule(Weekday.SAT, dt.time(22, 0)),
        monthly=MonthlySchedule(dt.time(22, 0), day=1),
    )
    slots = due_slots(schedule, utc(2024, 5, 31), utc(2024, 6, 2))  # Saturday, 1 June
    assert slots == [utc(2024, 5, 31, 22), utc(2024, 6, 1, 22)]


# -- the window -----------------------------------------------------------------------------------


def test_window_is_after_exclusive_until_inclusive() -> None:
    schedule = daily("UTC", "02:00")
    assert due_slots(schedule, utc(2024, 1, 1, 2), utc(2024, 1, 2, 2)) == [utc(2024, 1, 2, 2)]
    assert due_slots(schedule, utc(2024, 1, 1, 2), utc(2024, 1, 1, 2)) == []
    assert due_slots(schedule, utc(2024, 1, 2), utc(2024, 1, 1)) == []


def test_consecutive_windows_see_each_slot_once() -> None:
    schedule = daily("Europe/Berlin", "00:00", "02:30", "03:00", "23:59")
    ticks = [utc(2024, 3, 29) + dt.timedelta(minutes=5 * i) for i in range(12 * 24 * 4)]
    seen = [slot for before, after in itertools.pairwise(ticks) for slot in due_slots(schedule, before, after)]
    assert seen == due_slots(schedule, ticks[0], ticks[-1])
    assert len(seen) == len(set(seen))


def test_window_bounds_in_other_zones_are_instants() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    after = dt.datetime(2024, 1, 1, 12, 0, tzinfo=tokyo)  # 03:00 UTC: after that day's 02:00 UTC
    slots = due_slots(daily("UTC", "02:00"), after, utc(2024, 1, 2, 3))
    assert slots == [utc(2024, 1, 2, 2)]


def test_naive_bounds_are_refused() -> None:
    with pytest.raises(UsageError, match="timezone-aware"):
        due_slots(daily("UTC", "02:00"), dt.datetime(2024, 1, 1), utc(2024, 1, 2))


# -- policy slots and slot ids ------------------------------------------------------------------------


def _policy_with_images(enabled: bool = True) -> dict[str, object]:
    document = minimal_document()
    document["schedule"] = {"time_zone": "UTC", "daily": {"times": ["02:00", "22:00"]}}
    document["image_backup"] = {
        "enabled": enabled,
        "schedule": {
            "time_zone": "UTC",
            "weekly": {"weekday": "sat", "time": "22:00"},
            "daily": {"times": ["12:00"], "weekdays": ["sun"]},
        },
        "retention": {"days": 30},
    }
    return document


def test_policy_slots_mark_image_level_sessions() -> None:
    policy = policy_from_dict(_policy_with_images())
    slots = policy_slots(policy, utc(2024, 6, 1, 12), utc(2024, 6, 2, 23))  # Saturday noon to Sunday night
    assert slots == [
        PolicySlot(utc(2024, 6, 1, 22), scheduled=True, image_backup=True),
        PolicySlot(utc(2024, 6, 2, 2), scheduled=True, image_backup=False),
        PolicySlot(utc(2024, 6, 2, 12), scheduled=False, image_backup=True),
        PolicySlot(utc(2024, 6, 2, 22), scheduled=True, image_backup=False),
    ]


def test_policy_slots_without_image_backup_or_when_disabled() -> None:
    policy = policy_from_dict(_policy_with_images(enabled=False))
    assert all(not slot.image_backup for slot in policy_slots(policy, utc(2024, 6, 1), utc(2024, 6, 8)))
    document = _policy_with_images()
    document["enabled"] = False
    assert policy_slots(policy_from_dict(document), utc(2024, 6, 1), utc(2024, 6, 8)) == []


def test_slot_id_is_stable_and_round_trips() -> None:
    slot = utc(2024, 3, 31, 1, 0)
    assert slot_id("prod-vms", slot) == "prod-vms@20240331T010000Z"
    assert slot_id("prod-vms", slot.astimezone(BERLIN)) == "prod-vms@20240331T010000Z"
    assert parse_slot_id("prod-vms@20240331T010000Z") == ("prod-vms", slot)
    longest = slot_id("p" * 63, slot)
    assert len(longest) == 80
    assert not set(longest) & set("/\\#?")  # valid Durable instance id and Table key


@pytest.mark.parametrize(
    ("policy_id", "slot", "message"),
    [
        ("Prod", utc(2024, 1, 1), "is not a policy id"),
        ("prod", dt.datetime(2024, 1, 1), "has no time zone"),
        ("prod", utc(2024, 1, 1, 0, 0, 0, 5), "is not a whole second"),
    ],
)
def test_slot_id_refuses_what_would_not_be_stable(policy_id: str, slot: dt.datetime, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        slot_id(policy_id, slot)


def test_parse_slot_id_refuses_other_text() -> None:
    with pytest.raises(UsageError, match="is not a slot id"):
        parse_slot_id("prod-vms/2024")
