"""A policy's retention, applied: which snapshots and repository points to delete, and why.

Both functions are pure (time is passed in) and explain every decision, kept or deleted. The
calendar rules (newest N, newest per week/month/year) are :mod:`shared.core.retention`'s.

**Snapshots** (:func:`select_snapshots_to_delete`): each disk keeps its ``snapshots.keep`` newest
snapshots. The snapshot the last image-level backup of a disk was made from is kept as well, however
old, until the next image-level session has completed: it is the base of that session's changed-block
diff (the seed: "this snapshot remains in the snapshot chain until the next image-level backup
session"). The caller passes those as ``protected_ids``: the ``snapshot_ids`` of the newest
image-level restore point of each VM in the catalog. A failed image-level session records no point,
so the old base stays protected.

**Repository points** (:func:`select_points_to_delete`): every point younger than ``days``, the
newest of each of the last ``weekly``/``monthly``/``yearly`` calendar periods (UTC), and always the
newest point of each resource.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

from shared.core.clock import format_time
from shared.core.errors import UsageError
from shared.core.retention import PointRef, RetentionPolicy, apply_retention
from shared.policy.model import BackupRetention, Policy

__all__ = [
    "BackupPoint",
    "Decision",
    "DiskSnapshot",
    "RetentionPlan",
    "select_points_to_delete",
    "select_snapshots_to_delete",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DiskSnapshot:
    """A snapshot this policy made of one disk."""

    snapshot_id: str
    disk_id: str
    created: dt.datetime


@dataclass(frozen=True)
class BackupPoint:
    """A restore point in the repository (image or BACPAC) of one resource."""

    point_id: str
    resource_id: str
    time: dt.datetime


@dataclass(frozen=True)
class Decision:
    item_id: str
    group: str
    """The disk (snapshots) or resource (points) the item belongs to."""
    time: dt.datetime
    delete: bool
    reason: str

    def __str__(self) -> str:
        verb = "delete" if self.delete else "keep"
        return f"{verb} {self.item_id} ({format_time(self.time)}): {self.reason}"


@dataclass(frozen=True)
class RetentionPlan:
    """Every decision, grouped by disk or resource, newest first within a group."""

    decisions: tuple[Decision, ...]

    @property
    def to_delete(self) -> tuple[str, ...]:
        """The ids to delete, oldest first (the order to delete them in)."""
        doomed = [d for d in self.decisions if d.delete]
        return tuple(d.item_id for d in sorted(doomed, key=lambda d: (d.time, d.item_id)))

    @property
    def to_keep(self) -> tuple[str, ...]:
        return tuple(d.item_id for d in self.decisions if not d.delete)

    def explain(self) -> list[str]:
        return [str(decision) for decision in self.decisions]


def select_snapshots_to_delete(
    snapshots: Sequence[DiskSnapshot],
    policy: Policy,
    now: dt.datetime,
    protected_ids: Collection[str],
) -> RetentionPlan:
    """Which of ``snapshots`` (this policy's, of any number of disks) to delete now.

    ``protected_ids`` are the snapshots the last image-level backups were made from; they are kept.
    """
    if policy.snapshots is None:
        raise UsageError(
            f"Policy '{policy.id}' has no snapshot settings.", hint="it protects no VMs; there is nothing to retain"
        )
    keep = policy.snapshots.keep
    ordered = sorted(snapshots, key=lambda s: (s.created, s.snapshot_id), reverse=True)  # ties as _grouped
    kept = apply_retention([PointRef(s.snapshot_id, s.created, s.disk_id) for s in ordered], RetentionPolicy(last=keep))
    newest_kept = set(kept.keep)
    protected = set(protected_ids)
    decisions: list[Decision] = []
    for disk_id, group in _grouped(snapshots, lambda s: s.disk_id, lambda s: s.created, lambda s: s.snapshot_id):
        for rank, snapshot in enumerate(group, start=1):
            reasons = []
            if snapshot.snapshot_id in newest_kept:
                reasons.append(f"#{rank} of the {keep} newest of this disk (snapshots.keep)")
            if snapshot.snapshot_id in protected:
                reasons.append("base of the last image-level backup; kept until the next image-level session")
            if snapshot.created > now:
                reasons.append("created after the retention time; kept until retention runs after it")
            if reasons:
                decisions.append(Decision(snapshot.snapshot_id, disk_id, snapshot.created, False, "; ".join(reasons)))
            else:
                decisions.append(
                    Decision(
                        snapshot.snapshot_id,
                        disk_id,
                        snapshot.created,
                        True,
                        f"#{rank} of this disk, older than the {keep} newest (snapshots.keep), "
                        "and not the base of the last image-level backup",
                    )
                )
    return RetentionPlan(tuple(decisions))


def select_points_to_delete(
    points: Sequence[BackupPoint], retention: BackupRetention, now: dt.datetime
) -> RetentionPlan:
    """Which repository restore points (images or BACPACs, any number of resources) to delete now."""
    ordered = sorted(points, key=lambda p: (p.time, p.point_id), reverse=True)  # ties as _grouped
    calendar_kept = apply_retention(
        [PointRef(p.point_id, p.time, p.resource_id) for p in ordered],
        RetentionPolicy(weekly=retention.weekly, monthly=retention.monthly, yearly=retention.yearly),
    )
    horizon = now - dt.timedelta(days=retention.days)
    decisions: list[Decision] = []
    for resource_id, group in _grouped(points, lambda p: p.resource_id, lambda p: p.time, lambda p: p.point_id):
        for rank, point in enumerate(group, start=1):
            reasons = []
            if rank == 1:
                reasons.append("the newest point of this resource")
            if point.time > horizon:
                reasons.append(f"younger than {retention.days} days (retention.days)")
            reasons.extend(f"the {rule} point (retention)" for rule in calendar_kept.reasons.get(point.point_id, []))
            if reasons:
                decisions.append(Decision(point.point_id, resource_id, point.time, False, "; ".join(reasons)))
            else:
                decisions.append(
                    Decision(
                        point.point_id,
                        resource_id,
                        point.time,
                        True,
                        f"older than {retention.days} days and not a weekly, monthly or yearly point to keep",
                    )
                )
    return RetentionPlan(tuple(decisions))


def _grouped(
    items: Sequence[T],
    group_of: Callable[[T], str],
    time_of: Callable[[T], dt.datetime],
    id_of: Callable[[T], str],
) -> list[tuple[str, list[T]]]:
    """Items by group (sorted), newest first within a group; equal times by id, descending."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    return [
        (group, sorted(members, key=lambda m: (time_of(m), id_of(m)), reverse=True))
        for group, members in sorted(groups.items())
    ]
