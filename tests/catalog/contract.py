"""The Catalog contract (shared/catalog/port.py) as one suite for every implementation.

Subclass :class:`CatalogContract` in a ``test_*.py`` module and provide a ``catalog`` fixture: an
empty catalog.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from shared.catalog.model import PointKind, ResourceResult, RestorePoint, Session, Status, TriggerKind
from shared.catalog.port import Catalog, latest_image_points, protected_snapshot_ids
from shared.core.errors import InvalidDocumentError, PointNotFoundError, SessionNotFoundError, UsageError
from shared.policy.azure_ids import ResourceKind
from tests.policy.documents import DB, VM, VM2

UTC = dt.UTC
T0 = dt.datetime(2024, 6, 1, 2, 0, tzinfo=UTC)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def session(session_id: str, policy_id: str = "prod-vms", *, started: dt.datetime = T0, **changes: object) -> Session:
    base = Session(
        session_id=session_id,
        policy_id=policy_id,
        trigger=TriggerKind.SCHEDULE,
        started=started,
        status=Status.RUNNING,
        slot=started,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def result(resource: str = VM, status: Status = Status.SUCCESS, **changes: object) -> ResourceResult:
    kind = ResourceKind.SQL_DATABASE if "/databases/" in resource else ResourceKind.VM
    base = ResourceResult(resource_id=resource, kind=kind, status=status)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def point(point_id: str, resource: str = VM, *, time: dt.datetime = T0, kind: PointKind = PointKind.IMAGE,
          snapshots: tuple[str, ...] = ()) -> RestorePoint:  # fmt: skip
    return RestorePoint(
        point_id=point_id,
        resource_id=resource,
        kind=kind,
        time=time,
        policy_id="prod-vms",
        session_id="prod-vms@20240601T020000Z",
        size=10 * 2**30,
        snapshot_ids=snapshots,
        repository_point_id=f"repo-{point_id}" if kind is not PointKind.SNAPSHOT else None,
    )


class CatalogContract:
    # -- sessions -------------------------------------------------------------------------------

    def test_save_then_get(self, catalog: Catalog) -> None:
        running = session("prod-vms@20240601T020000Z", resources=(result(status=Status.RUNNING),))
        catalog.save_session(running)
        assert catalog.get_session(running.session_id) == running
        done = dataclasses.replace(
            running,
            status=Status.WARNING,
            ended=at(1.5),
            reason="1 of 2 resources warned",
            resources=(
                result(
                    started=at(0),
                    ended=at(1),
                    bytes_read=5 * 2**30,
                    bytes_stored=2**30,
                    snapshot_ids=(f"{VM}-os-snap", f"{VM}-data-snap"),
                    point_ids=("p1",),
                ),
                result(DB, Status.WARNING, reason="the export took 19 h of the 20 h limit"),
            ),
        )
        catalog.save_session(done)  # replaces: an activity may record the same session again
        catalog.save_session(done)
        got = catalog.get_session(running.session_id)
        assert got == done
        assert got.duration == dt.timedelta(hours=1.5)
        assert got.bytes_read == 5 * 2**30 and got.bytes_stored == 2**30
        assert got.resources[0].duration == dt.timedelta(hours=1)

    def test_get_of_a_missing_session(self, catalog: Catalog) -> None:
        with pytest.raises(SessionNotFoundError, match="No backup session has the id 'nope'") as caught:
            catalog.get_session("nope")
        assert caught.value.session_id == "nope"

    def test_a_session_id_keeps_its_policy_and_start(self, catalog: Catalog) -> None:
        catalog.save_session(session("s1"))
        with pytest.raises(UsageError, match="exists already for policy 'prod-vms'"):
            catalog.save_session(session("s1", started=at(1)))
        with pytest.raises(UsageError, match="exists already"):
            catalog.save_session(session("s1", policy_id="other"))
        assert catalog.get_session("s1") == session("s1")
        assert catalog.list_sessions("other") == []

    def test_sessions_by_policy_newest_first(self, catalog: Catalog) -> None:
        for hours in (5, 1, 3, 2, 4):
            catalog.save_session(session(f"s{hours}", started=at(hours)))
        catalog.save_session(session("other-1", "other", started=at(6)))
        catalog.save_session(session("s3b", started=at(3)))  # same start as s3: by id
        assert [s.session_id for s in catalog.list_sessions("prod-vms")] == ["s5", "s4", "s3", "s3b", "s2", "s1"]
        assert [s.session_id for s in catalog.list_sessions("other")] == ["other-1"]
        assert catalog.list_sessions("nobody") == []

    def test_sessions_in_a_time_range(self, catalog: Catalog) -> None:
        for hours in range(6):
            catalog.save_session(session(f"s{hours}", started=at(hours)))

        def ids(**query: object) -> list[str]:
            return [s.session_id for s in catalog.list_sessions("prod-vms", **query)]  # type: ignore[arg-type]

        assert ids(since=at(2), until=at(4)) == ["s3", "s2"]  # since <= started < until
        assert ids(since=at(4)) == ["s5", "s4"]
        assert ids(until=at(1)) == ["s0"]
        assert ids(since=at(2) + dt.timedelta(microseconds=1), until=at(3) + dt.timedelta(microseconds=1)) == ["s3"]
        assert ids(limit=2) == ["s5", "s4"]
        assert ids(since=at(1), limit=3) == ["s5", "s4", "s3"]
        assert ids(since=at(2).astimezone(dt.timezone(dt.timedelta(hours=-5))), until=at(3)) == ["s2"]

    def test_invalid_sessions_are_refused(self, catalog: Catalog) -> None:
        with pytest.raises(InvalidDocumentError, match=r"session_id: 'no/slash' is not a catalog id"):
            catalog.save_session(session("no/slash"))
        with pytest.raises(InvalidDocumentError, match="started: has no time zone"):
            catalog.save_session(session("s1", started=dt.datetime(2024, 1, 1)))
        with pytest.raises(InvalidDocumentError, match="ended: is before started"):
            catalog.save_session(session("s1", ended=at(-1)))
        with pytest.raises(InvalidDocumentError, match=r"resources\[0\].resource_id: 'vm1' is not an Azure"):
            catalog.save_session(session("s1", resources=(result("vm1"),)))
        with pytest.raises(SessionNotFoundError):
            catalog.get_session("s1")

    def test_large_session_round_trips(self, catalog: Catalog) -> None:
        many = tuple(
            result(f"{VM}-{i:05d}", bytes_read=i, snapshot_ids=(f"snap-{i}-os", f"snap-{i}-data"), reason="ok " * 10)
            for i in range(3000)
        )
        big = session("big", resources=many, status=Status.SUCCESS, ended=at(8))
        catalog.save_session(big)
        assert catalog.get_session("big") == big
        assert catalog.list_sessions("prod-vms") == [big]

    # -- restore points -------------------------------------------------------------------------

    def test_points_by_resource_newest_first(self, catalog: Catalog) -> None:
        catalog.add_point(point("p1", time=at(1)))
        catalog.add_point(point("p3", time=at(3), kind=PointKind.SNAPSHOT, snapshots=("s3",)))
        catalog.add_point(point("p2", time=at(2)))
        catalog.add_point(point("p2b", time=at(2)))
        catalog.add_point(point("q1", VM2, time=at(5)))
        catalog.add_point(point("d1", DB, time=at(4), kind=PointKind.BACPAC))
        assert [p.point_id for p in catalog.list_points(VM)] == ["p3", "p2", "p2b", "p1"]
        assert [p.point_id for p in catalog.list_points(VM.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"))] == [
            "p3", "p2", "p2b", "p1",
        ]  # fmt: skip
        assert [p.point_id for p in catalog.list_points(VM, kind=PointKind.IMAGE)] == ["p2", "p2b", "p1"]
        assert [p.point_id for p in catalog.list_points(VM, limit=2)] == ["p3", "p2"]
        assert [p.point_id for p in catalog.list_points(DB)] == ["d1"]
        assert catalog.list_points(f"{VM}-none") == []
        assert catalog.list_points(VM)[0] == point("p3", time=at(3), kind=PointKind.SNAPSHOT, snapshots=("s3",))

    def test_latest_point_of_a_kind(self, catalog: Catalog) -> None:
        assert catalog.latest_point(VM, PointKind.IMAGE) is None
        catalog.add_point(point("p1", time=at(1), snapshots=("s1",)))
        catalog.add_point(point("p2", time=at(2), kind=PointKind.SNAPSHOT, snapshots=("s2",)))
        latest = catalog.latest_point(VM, PointKind.IMAGE)
        assert latest is not None and latest.point_id == "p1"
        catalog.add_point(point("p3", time=at(3), snapshots=("s3-os", "s3-data")))
        assert latest_image_points(catalog, [VM, VM2]) == {VM: point("p3", time=at(3), snapshots=("s3-os", "s3-data"))}
        assert protected_snapshot_ids(catalog, [VM, VM2]) == {"s3-os", "s3-data"}

    def test_adding_a_point_again_replaces_it(self, catalog: Catalog) -> None:
        catalog.add_point(point("p1", time=at(1)))
        bigger = dataclasses.replace(point("p1", time=at(1)), size=1)
        catalog.add_point(bigger)
        assert catalog.list_points(VM) == [bigger]

    def test_get_point_by_id_whatever_its_resource(self, catalog: Catalog) -> None:
        catalog.add_point(point("p1", time=at(1)))
        catalog.add_point(point("d1", DB, time=at(4), kind=PointKind.BACPAC))
        assert catalog.get_point("d1") == point("d1", DB, time=at(4), kind=PointKind.BACPAC)
        assert catalog.get_point("p1").resource_id == VM
        with pytest.raises(PointNotFoundError, match="'p9'"):
            catalog.get_point("p9")

    def test_remove_point(self, catalog: Catalog) -> None:
        catalog.add_point(point("p1", time=at(1)))
        catalog.add_point(point("p2", time=at(2)))
        catalog.remove_point(point("p2", time=at(2)))
        catalog.remove_point(point("p2", time=at(2)))  # a missing point is not an error
        assert [p.point_id for p in catalog.list_points(VM)] == ["p1"]

    def test_invalid_points_are_refused(self, catalog: Catalog) -> None:
        with pytest.raises(InvalidDocumentError, match="time: has no time zone"):
            catalog.add_point(point("p1", time=dt.datetime(2024, 1, 1)))
        with pytest.raises(InvalidDocumentError, match="point_id: 'p#1' is not a catalog id"):
            catalog.add_point(point("p#1"))
        with pytest.raises(InvalidDocumentError, match="size: -1 is out of range"):
            catalog.add_point(dataclasses.replace(point("p1"), size=-1))
        assert catalog.list_points(VM) == []
