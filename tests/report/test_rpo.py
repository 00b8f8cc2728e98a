"""RPO compliance: schedule intervals, and which resources have a point within theirs."""

from __future__ import annotations

import datetime as dt

from shared.catalog.model import PointKind
from shared.policy.schedule import DailySchedule, Schedule, Weekday, WeeklySchedule
from shared.report.rpo import check_rpo, schedule_interval
from tests.report.history import DB, NOW, WEB1, WEB2, build_history


def test_a_schedule_interval_is_its_longest_gap() -> None:
    daily = Schedule("UTC", daily=DailySchedule((dt.time(3, 0),)))
    assert schedule_interval(daily, NOW) == dt.timedelta(days=1)
    twice = Schedule("UTC", daily=DailySchedule((dt.time(3, 0), dt.time(15, 0))))
    assert schedule_interval(twice, NOW) == dt.timedelta(hours=12)
    weekdays = tuple(Weekday(d) for d in ("mon", "tue", "wed", "thu", "fri"))
    workdays = Schedule("UTC", daily=DailySchedule((dt.time(2, 0),), weekdays))
    assert schedule_interval(workdays, NOW) == dt.timedelta(days=3)  # Friday to Monday
    weekly = Schedule("UTC", weekly=WeeklySchedule(Weekday("sat"), dt.time(22, 0)))
    assert schedule_interval(weekly, NOW) == dt.timedelta(days=7)


def test_resources_without_a_recent_point_miss_their_rpo() -> None:
    history = build_history()
    resources = {WEB1: "vm", WEB2: "vm", DB: "sql_database"}
    points = {r: history.catalog.list_points(r) for r in resources}
    checks = {(c.resource_id, c.kind): c for c in check_rpo(history.policy, resources, points, NOW)}
    assert set(checks) == {
        (WEB1, PointKind.SNAPSHOT),
        (WEB1, PointKind.IMAGE),
        (WEB2, PointKind.SNAPSHOT),
        (WEB2, PointKind.IMAGE),
        (DB, PointKind.BACPAC),
    }
    assert checks[(WEB1, PointKind.SNAPSHOT)].compliant and checks[(DB, PointKind.BACPAC)].compliant
    missed = checks[(WEB2, PointKind.SNAPSHOT)]
    assert not missed.compliant and missed.age == dt.timedelta(days=2, hours=9)
    assert missed.interval == dt.timedelta(days=1)
    assert checks[(WEB2, PointKind.IMAGE)].compliant  # the weekly image point is 3 days old
    # an hour's grace past the interval, not more
    late = dt.datetime(2026, 11, 26, 3, 30, tzinfo=dt.UTC)  # the 03:00 point plus a day and half an hour
    assert check_rpo(history.policy, {WEB1: "vm"}, points, late)[0].compliant
    later = dt.datetime(2026, 11, 26, 5, 0, tzinfo=dt.UTC)
    assert not check_rpo(history.policy, {WEB1: "vm"}, points, later)[0].compliant


def test_a_resource_without_points_is_not_compliant() -> None:
    history = build_history()
    [check] = check_rpo(history.policy, {DB: "sql_database"}, {}, NOW)
    assert not check.compliant and check.latest is None and check.age is None
