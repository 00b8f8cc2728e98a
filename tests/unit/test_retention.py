from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.core.retention import PointRef, RetentionPolicy, apply_retention

START = datetime(2026, 1, 1, 12, tzinfo=UTC)


def daily_points(days: int, group: str = "disk-a") -> list[PointRef]:
    return [PointRef(f"{group}-{n:03d}", START + timedelta(days=n), group) for n in range(days)]


def test_keep_last_keeps_the_newest() -> None:
    decision = apply_retention(daily_points(5), RetentionPolicy(last=2))
    assert decision.keep == ["disk-a-004", "disk-a-003"]
    assert decision.remove == ["disk-a-002", "disk-a-001", "disk-a-000"]
    assert decision.reasons == {"disk-a-004": ["last"], "disk-a-003": ["last"]}


def test_daily_keeps_newest_point_of_each_day() -> None:
    points = [*daily_points(3), PointRef("early", START + timedelta(days=2, hours=-5), "disk-a")]
    decision = apply_retention(points, RetentionPolicy(daily=3))
    assert "early" in decision.remove
    assert decision.reasons["disk-a-002"] == ["daily 2026-01-03"]


def test_gfs_rules_combine_and_explain() -> None:
    points = daily_points(400)
    decision = apply_retention(points, RetentionPolicy(daily=7, weekly=4, monthly=12, yearly=2))
    kept = set(decision.keep)
    assert {f"disk-a-{n:03d}" for n in range(393, 400)} <= kept
    assert decision.reasons["disk-a-399"] == [
        "daily 2027-02-04",
        "weekly 2027-W05",
        "monthly 2027-02",
        "yearly 2027",
    ]
    # the newest point of December 2026 is kept as that month's
    assert "monthly 2026-12" in decision.reasons["disk-a-364"]
    assert len(kept) + len(decision.remove) == 400


def test_groups_are_retained_independently() -> None:
    points = daily_points(3, "a") + daily_points(1, "b")
    decision = apply_retention(points, RetentionPolicy(last=1))
    assert sorted(decision.keep) == ["a-002", "b-000"]


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="keep-daily"):
        RetentionPolicy(daily=-1)
    assert RetentionPolicy().is_empty
