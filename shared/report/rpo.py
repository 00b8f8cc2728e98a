"""RPO compliance: does each resource have a restore point within its schedule's interval? Pure.

A schedule's interval is the longest gap between two of its slots over the past year (a daily
schedule: one day; Monday to Friday at 02:00: three days over a weekend). A resource complies when
its newest restore point of the kind the schedule makes is younger than that interval plus a grace
for the session itself (default one hour): snapshot points follow the policy's schedule, image-level
points the image-level schedule, BACPAC points (databases) the policy's schedule.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.catalog.model import PointKind, RestorePoint
from shared.policy.model import Policy
from shared.policy.schedule import Schedule, due_slots

__all__ = ["DEFAULT_GRACE", "RpoCheck", "check_rpo", "schedule_interval"]

DEFAULT_GRACE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class RpoCheck:
    resource_id: str
    kind: PointKind
    interval: dt.timedelta
    latest: dt.datetime | None
    compliant: bool
    age: dt.timedelta | None
    """How old the newest point was when checked (None: there is none)."""


def schedule_interval(schedule: Schedule, now: dt.datetime) -> dt.timedelta:
    """The longest gap between consecutive slots over the year before ``now`` (a year if only one)."""
    slots = due_slots(schedule, now - dt.timedelta(days=366), now)
    if len(slots) < 2:
        return dt.timedelta(days=366)
    return max(later - earlier for earlier, later in itertools.pairwise(slots))


def check_rpo(
    policy: Policy,
    resources: Mapping[str, str],
    points: Mapping[str, Sequence[RestorePoint]],
    now: dt.datetime,
    *,
    grace: dt.timedelta = DEFAULT_GRACE,
) -> list[RpoCheck]:
    """One check per resource (``resources``: id -> ``vm`` or ``sql_database``) and point kind."""
    session_interval = schedule_interval(policy.schedule, now)
    image = policy.image_backup
    image_interval = schedule_interval(image.schedule, now) if image.enabled and image.schedule else None
    checks: list[RpoCheck] = []
    for resource_id, kind in sorted(resources.items()):
        wanted: list[tuple[PointKind, dt.timedelta]]
        if kind == "vm":
            wanted = [(PointKind.SNAPSHOT, session_interval)]
            if image_interval is not None:
                wanted.append((PointKind.IMAGE, image_interval))
        else:
            wanted = [(PointKind.BACPAC, session_interval)]
        owned = points.get(resource_id, ())
        for point_kind, interval in wanted:
            times = [p.time for p in owned if p.kind is point_kind and p.policy_id == policy.id]
            latest = max(times) if times else None
            compliant = latest is not None and now - latest <= interval + grace
            checks.append(
                RpoCheck(resource_id, point_kind, interval, latest, compliant, None if latest is None else now - latest)
            )
    return checks
