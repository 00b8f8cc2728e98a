"""The Catalog contract in memory, for unit tests of code that records sessions and points."""

from __future__ import annotations

import datetime as dt

from shared.catalog.model import (
    PointKind,
    RestorePoint,
    Session,
    check_point,
    check_same_run,
    check_session,
    point_from_dict,
    session_from_dict,
    to_dict,
)
from shared.catalog.port import POINT_HINT, Catalog
from shared.core.errors import PointNotFoundError, SessionNotFoundError
from shared.policy.azure_ids import id_key

__all__ = ["InMemoryCatalog"]


class InMemoryCatalog:
    """Keeps JSON-shaped copies, so a test sees what a real store would give back."""

    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, object]] = {}
        self._points: dict[tuple[str, dt.datetime, str], dict[str, object]] = {}

    def save_session(self, session: Session) -> None:
        check_session(session)
        existing = self._sessions.get(session.session_id)
        if existing is not None:
            stored = session_from_dict(existing)
            check_same_run(session, policy_id=stored.policy_id, started=stored.started)
        self._sessions[session.session_id] = to_dict(session)

    def get_session(self, session_id: str) -> Session:
        document = self._sessions.get(session_id)
        if document is None:
            raise SessionNotFoundError(session_id)
        return session_from_dict(document)

    def list_sessions(
        self,
        policy_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[Session]:
        sessions = [session_from_dict(document) for document in self._sessions.values()]
        chosen = [
            s
            for s in sessions
            if s.policy_id == policy_id
            and (since is None or s.started >= since)
            and (until is None or s.started < until)
        ]
        chosen.sort(key=lambda s: s.session_id)
        chosen.sort(key=lambda s: s.started, reverse=True)  # stable: equal times stay in id order
        return chosen[:limit] if limit is not None else chosen

    def add_point(self, point: RestorePoint) -> None:
        check_point(point)
        self._points[(id_key(point.resource_id), point.time, point.point_id)] = to_dict(point)

    def remove_point(self, point: RestorePoint) -> None:
        self._points.pop((id_key(point.resource_id), point.time, point.point_id), None)

    def list_points(
        self, resource_id: str, *, kind: PointKind | None = None, limit: int | None = None
    ) -> list[RestorePoint]:
        key = id_key(resource_id)
        points = [point_from_dict(document) for (owner, _, _), document in self._points.items() if owner == key]
        chosen = [p for p in points if kind is None or p.kind is kind]
        chosen.sort(key=lambda p: p.point_id)
        chosen.sort(key=lambda p: p.time, reverse=True)  # stable: equal times stay in id order
        return chosen[:limit] if limit is not None else chosen

    def latest_point(self, resource_id: str, kind: PointKind) -> RestorePoint | None:
        points = self.list_points(resource_id, kind=kind, limit=1)
        return points[0] if points else None

    def get_point(self, point_id: str) -> RestorePoint:
        for (_, _, found), document in self._points.items():
            if found == point_id:
                return point_from_dict(document)
        raise PointNotFoundError(f"the catalog has no restore point '{point_id}'", hint=POINT_HINT)


_: type[Catalog] = InMemoryCatalog
