"""Which restore points to keep: a pure, explainable function.

The rules follow the familiar keep-last / keep-daily / weekly / monthly / yearly scheme: for a
rule keeping N, walk the points newest first and keep the newest point of each of the N most
recent calendar periods (UTC) that have points. Rules are applied per source (a disk is never
kept or dropped because of another disk's points). Every kept point says which rules kept it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["PointRef", "RetentionDecision", "RetentionPolicy", "apply_retention"]


@dataclass(frozen=True)
class RetentionPolicy:
    last: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        for name in ("last", "daily", "weekly", "monthly", "yearly"):
            if getattr(self, name) < 0:
                raise ValueError(f"keep-{name} must not be negative")

    @property
    def is_empty(self) -> bool:
        return not (self.last or self.daily or self.weekly or self.monthly or self.yearly)


@dataclass(frozen=True)
class PointRef:
    point_id: str
    time: datetime
    group: str
    """Points are retained per group, e.g. per source disk."""


@dataclass
class RetentionDecision:
    keep: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)


_PERIODS: list[tuple[str, Callable[[datetime], str]]] = [
    ("daily", lambda t: t.strftime("%Y-%m-%d")),
    ("weekly", lambda t: "{:04d}-W{:02d}".format(*t.isocalendar()[:2])),
    ("monthly", lambda t: t.strftime("%Y-%m")),
    ("yearly", lambda t: t.strftime("%Y")),
]


def apply_retention(points: Sequence[PointRef], policy: RetentionPolicy) -> RetentionDecision:
    decision = RetentionDecision()
    groups: dict[str, list[PointRef]] = {}
    for point in points:
        groups.setdefault(point.group, []).append(point)
    for group_points in groups.values():
        newest_first = sorted(group_points, key=lambda p: p.time, reverse=True)
        reasons: dict[str, list[str]] = {p.point_id: [] for p in newest_first}
        for point in newest_first[: policy.last]:
            reasons[point.point_id].append("last")
        for rule, period_of in _PERIODS:
            wanted = getattr(policy, rule)
            seen: list[str] = []
            for point in newest_first:
                if len(seen) >= wanted:
                    break
                period = period_of(point.time)
                if period not in seen:
                    seen.append(period)
                    reasons[point.point_id].append(f"{rule} {period}")
        for point in newest_first:
            if reasons[point.point_id]:
                decision.keep.append(point.point_id)
                decision.reasons[point.point_id] = reasons[point.point_id]
            else:
                decision.remove.append(point.point_id)
    return decision
