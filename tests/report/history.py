"""A policy and ten days of its sessions and restore points, built in memory for report tests.

Policy ``prod-vms``: sessions daily at 03:00 UTC over two VMs and one database, image-level backups
every Saturday 22:00 (weekly), 7 snapshots kept. ``web-1`` backs up fine throughout; ``web-2``
failed the last two sessions (so it misses its RPO); the database exports every session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.catalog.memory import InMemoryCatalog
from shared.catalog.model import PointKind, ResourceResult, RestorePoint, Session, Status, TriggerKind
from shared.policy.azure_ids import ResourceKind
from shared.policy.document import policy_from_dict
from shared.policy.model import Policy
from shared.policy.store import InMemoryPolicyStore

GIB = 1 << 30
MIB = 1 << 20
SUB = "00000000-0000-0000-0000-0000000000aa"
GROUP = f"/subscriptions/{SUB}/resourceGroups/prod"
WEB1 = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web-1"
WEB2 = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web-2"
DB = f"{GROUP}/providers/Microsoft.Sql/servers/sql-1/databases/sales"
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
POLICY_ID = "prod-vms"


class FixedClock:
    def __init__(self, now: dt.datetime) -> None:
        self._now = now

    def now(self) -> dt.datetime:
        return self._now


def policy_document() -> dict[str, object]:
    return {
        "id": POLICY_ID,
        "description": "production web tier and its database",
        "scope": {"resource_groups": [GROUP], "kinds": ["vm", "sql_database"]},
        "schedule": {"time_zone": "UTC", "daily": {"times": ["03:00"]}},
        "snapshots": {"keep": 7},
        "image_backup": {
            "enabled": True,
            "schedule": {"time_zone": "UTC", "weekly": {"weekday": "sat", "time": "22:00"}},
            "retention": {"days": 30, "monthly": 6},
        },
        "sql": {"retention": {"days": 14}},
        "repository": {"location": "https://backups.blob.core.windows.net/bulwark/prod", "region": "westeurope"},
        "encryption": {"passphrase": {"key_vault_secret": "bulwark-repo-passphrase"}},
    }


@dataclass
class History:
    policy: Policy
    catalog: InMemoryCatalog
    policies: InMemoryPolicyStore
    sessions: list[Session]


def build_history(days: int = 10, *, now: dt.datetime = NOW) -> History:
    policy = policy_from_dict(policy_document())
    store = InMemoryPolicyStore()
    store.create(policy)
    catalog = InMemoryCatalog()
    sessions: list[Session] = []
    first = (now - dt.timedelta(days=days)).replace(hour=3, minute=0, second=0, microsecond=0)
    for day in range(days + 1):
        started = first + dt.timedelta(days=day)
        if started > now:
            break
        image = day in (0, 7)  # a full image-level backup, then an incremental one a week later
        web2_fails = day >= days - 1
        results = [
            _vm(WEB1, started, image, full=day == 0, failed=False),
            _vm(WEB2, started, image, full=day == 0, failed=web2_fails),
            ResourceResult(
                DB,
                ResourceKind.SQL_DATABASE,
                Status.SUCCESS,
                started=started + dt.timedelta(minutes=1),
                ended=started + dt.timedelta(minutes=9),
                bytes_read=3 * GIB,
                bytes_stored=(2 * GIB) if day == 0 else 120 * MIB,
                point_ids=(f"bacpac-{day}",),
            ),
        ]
        status = Status.FAILED if web2_fails else Status.SUCCESS
        session = Session(
            session_id=f"{POLICY_ID}@{started:%Y%m%dT%H%M}",
            policy_id=POLICY_ID,
            trigger=TriggerKind.SCHEDULE,
            started=started,
            status=status,
            ended=started + dt.timedelta(minutes=25 if image else 6),
            slot=started,
            image_backup=image,
            reason="web-2: the snapshot of disk web-2-os failed: quota exceeded" if web2_fails else "",
            resources=tuple(results),
        )
        catalog.save_session(session)
        sessions.append(session)
        for result in results:
            if result.status is Status.FAILED:
                continue
            kind = PointKind.BACPAC if result.resource_id == DB else PointKind.SNAPSHOT
            _point(catalog, result.resource_id, kind, started, session.session_id, day)
            if image and result.resource_id != DB:
                _point(catalog, result.resource_id, PointKind.IMAGE, started, session.session_id, day)
    return History(policy, catalog, store, sessions)


def _vm(resource_id: str, started: dt.datetime, image: bool, *, full: bool, failed: bool) -> ResourceResult:
    if failed:
        return ResourceResult(
            resource_id,
            ResourceKind.VM,
            Status.FAILED,
            reason="the snapshot of disk web-2-os failed: quota exceeded",
            started=started,
            ended=started + dt.timedelta(minutes=2),
        )
    read = (40 * GIB if full else 2 * GIB) if image else 0
    stored = (18 * GIB if full else 700 * MIB) if image else 0
    return ResourceResult(
        resource_id,
        ResourceKind.VM,
        Status.SUCCESS,
        started=started,
        ended=started + dt.timedelta(minutes=20 if image else 3),
        bytes_read=read,
        bytes_stored=stored,
        snapshot_ids=(f"{resource_id}-os-{started:%d}", f"{resource_id}-data-{started:%d}"),
    )


def _point(
    catalog: InMemoryCatalog, resource_id: str, kind: PointKind, time: dt.datetime, session_id: str, day: int
) -> None:
    name = resource_id.rsplit("/", 1)[-1]
    catalog.add_point(
        RestorePoint(
            point_id=f"{kind}-{name}-{day}",
            resource_id=resource_id,
            kind=kind,
            time=time,
            policy_id=POLICY_ID,
            session_id=session_id,
            size=64 * GIB,
        )
    )
