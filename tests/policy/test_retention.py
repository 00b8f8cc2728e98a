"""Snapshot retention (keeps the image-level base until the next image-level session) and point retention."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.core.errors import UsageError
from shared.policy.document import policy_from_dict
from shared.policy.model import BackupRetention, Policy
from shared.policy.retention import (
    BackupPoint,
    DiskSnapshot,
    select_points_to_delete,
    select_snapshots_to_delete,
)
from shared.policy.validation import peak_snapshots_per_disk
from tests.policy.documents import DB, VM, minimal_document

UTC = dt.UTC
START = dt.datetime(2024, 6, 1, 2, 0, tzinfo=UTC)
OS_DISK = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/os"
DATA_DISK = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/data"


def policy(keep: int, *, image: bool = True) -> Policy:
    document = minimal_document()
    document["snapshots"] = {"keep": keep}
    if image:
        document["image_backup"] = {
            "enabled": True,
            "schedule": {"time_zone": "UTC", "weekly": {"weekday": "sun", "time": "03:00"}},
            "retention": {"days": 30},
        }
    return policy_from_dict(document)


def snaps(disk: str, count: int, *, start: dt.datetime = START) -> list[DiskSnapshot]:
    return [DiskSnapshot(f"{disk.rsplit('/', 1)[-1]}-{i}", disk, start + dt.timedelta(days=i)) for i in range(count)]


def test_keeps_the_newest_per_disk_and_deletes_the_rest_oldest_first() -> None:
    snapshots = snaps(OS_DISK, 5) + snaps(DATA_DISK, 2)
    plan = select_snapshots_to_delete(snapshots, policy(3, image=False), START + dt.timedelta(days=10), ())
    assert plan.to_delete == ("os-0", "os-1")
    assert set(plan.to_keep) == {"os-4", "os-3", "os-2", "data-1", "data-0"}  # the data disk is not short-changed
    reasons = {d.item_id: d.reason for d in plan.decisions}
    assert reasons["os-4"] == "#1 of the 3 newest of this disk (snapshots.keep)"
    assert reasons["os-1"] == (
        "#4 of this disk, older than the 3 newest (snapshots.keep), and not the base of the last image-level backup"
    )


def test_the_base_of_the_last_image_level_backup_is_kept_until_the_next_one() -> None:
    # Session 1 made an image-level backup from os-0; sessions 2..5 took snapshots only.
    snapshots = snaps(OS_DISK, 5)
    now = START + dt.timedelta(days=5)
    plan = select_snapshots_to_delete(snapshots, policy(2), now, protected_ids={"os-0"})
    assert plan.to_delete == ("os-1", "os-2")
    assert plan.to_keep == ("os-4", "os-3", "os-0")
    base = next(d for d in plan.decisions if d.item_id == "os-0")
    assert base.reason == "base of the last image-level backup; kept until the next image-level session"
    # Session 6 is an image-level session from os-5: the catalog's newest image point now names os-5,
    # so os-0 loses its protection and goes.
    snapshots = [s for s in snapshots if s.snapshot_id not in plan.to_delete] + [
        DiskSnapshot("os-5", OS_DISK, START + dt.timedelta(days=5))
    ]
    plan = select_snapshots_to_delete(snapshots, policy(2), now + dt.timedelta(days=1), protected_ids={"os-5"})
    assert plan.to_delete == ("os-0", "os-3")
    assert plan.to_keep == ("os-5", "os-4")
    assert "base of the last image-level backup" in plan.decisions[0].reason
    assert plan.decisions[0].reason.startswith("#1 of the 2 newest")


def test_chain_after_three_sessions_matches_the_seed() -> None:
    """keep=1 with image-level backup every session: the new snapshot and the last base stay."""
    kept: list[DiskSnapshot] = []
    base: str | None = None
    for session in range(3):
        new = DiskSnapshot(f"os-{session}", OS_DISK, START + dt.timedelta(days=session))
        kept.append(new)
        # The image-level backup ran from `new` (diff against `base`) and its point is recorded: `new` is the base now.
        base = new.snapshot_id
        plan = select_snapshots_to_delete(kept, policy(1), new.created, protected_ids={base})
        kept = [s for s in kept if s.snapshot_id in plan.to_keep]
        assert [s.snapshot_id for s in kept] == [new.snapshot_id]
        assert len(kept) + 1 <= peak_snapshots_per_disk(1, image_backup=True)
    # Without a recorded image-level point after the last snapshot, the old base stays next to the new one.
    kept.append(DiskSnapshot("os-3", OS_DISK, START + dt.timedelta(days=3)))
    plan = select_snapshots_to_delete(kept, policy(1), START + dt.timedelta(days=3), protected_ids={base})
    assert plan.to_keep == ("os-3", "os-2")


def test_snapshots_from_the_future_are_kept() -> None:
    future = DiskSnapshot("late", OS_DISK, START + dt.timedelta(hours=1))
    plan = select_snapshots_to_delete([*snaps(OS_DISK, 1), future], policy(1), START, ())
    decision = next(d for d in plan.decisions if d.item_id == "late")
    assert not decision.delete and "created after the retention time" in decision.reason


def test_equal_times_are_ranked_by_id() -> None:
    twins = [DiskSnapshot(name, OS_DISK, START) for name in ("b", "a", "c")]
    plan = select_snapshots_to_delete(twins, policy(1, image=False), START, ())
    assert plan.to_keep == ("c",)
    assert plan.to_delete == ("a", "b")


def test_every_decision_is_explained() -> None:
    plan = select_snapshots_to_delete(snaps(OS_DISK, 4), policy(2), START + dt.timedelta(days=4), {"os-0"})
    assert len(plan.decisions) == 4
    lines = plan.explain()
    assert lines[0] == "keep os-3 (2024-06-04T02:00:00.000000Z): #1 of the 2 newest of this disk (snapshots.keep)"
    assert lines[2].startswith("delete os-1 (2024-06-02T02:00:00.000000Z): #3 of this disk")


def test_sql_only_policy_has_no_snapshot_retention() -> None:
    document = minimal_document()
    document["scope"] = {"kinds": ["sql_database"], "resources": [DB]}
    document["sql"] = {"retention": {"days": 7}}
    del document["snapshots"]
    with pytest.raises(UsageError, match="has no snapshot settings"):
        select_snapshots_to_delete([], policy_from_dict(document), START, ())


def test_peak_count_behind_the_500_guard() -> None:
    assert peak_snapshots_per_disk(498, image_backup=True) == 500
    assert peak_snapshots_per_disk(499, image_backup=False) == 500
    assert policy(498).snapshots is not None  # accepted: exactly at the limit
    assert policy(499, image=False).snapshots is not None


# -- repository points ----------------------------------------------------------------------------------


def points(resource: str, days: int, prefix: str = "p") -> list[BackupPoint]:
    return [BackupPoint(f"{prefix}{i:03d}", resource, START + dt.timedelta(days=i)) for i in range(days)]


def test_points_younger_than_days_are_kept() -> None:
    now = START + dt.timedelta(days=99, hours=1)
    plan = select_points_to_delete(points(VM, 100), BackupRetention(days=10), now)
    assert plan.to_keep == tuple(f"p{i:03d}" for i in range(99, 89, -1))
    assert plan.to_delete[0] == "p000" and len(plan.to_delete) == 90


def test_gfs_keeps_weekly_monthly_and_yearly_points() -> None:
    now = START + dt.timedelta(days=399, hours=1)
    plan = select_points_to_delete(points(VM, 400), BackupRetention(days=7, weekly=4, monthly=3, yearly=2), now)
    reasons = {d.item_id: d.reason for d in plan.decisions if not d.delete}
    assert sum("weekly" in r for r in reasons.values()) == 4
    assert sum("monthly" in r for r in reasons.values()) == 3
    assert sum("yearly" in r for r in reasons.values()) == 2
    assert any(r.endswith("the yearly 2024 point (retention)") for r in reasons.values())
    assert any("the weekly 2025-W27 point (retention)" in r for r in reasons.values())


def test_the_newest_point_of_each_resource_is_always_kept() -> None:
    now = START + dt.timedelta(days=1000)
    plan = select_points_to_delete(points(VM, 3) + points(DB, 1, "db"), BackupRetention(days=1), now)
    assert set(plan.to_keep) == {"p002", "db000"}
    assert {d.group for d in plan.decisions if not d.delete} == {VM, DB}
    assert next(d for d in plan.decisions if d.item_id == "p002").reason == "the newest point of this resource"
