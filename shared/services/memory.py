"""In-memory adapters of the service ports: for tests, and until the Table storage catalog lands."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .messages import IMAGE_LEVEL, PointRecord, SessionRecord

__all__ = ["InMemoryCatalog"]


class InMemoryCatalog:
    """Restore points and sessions in dicts (PointCatalog and SessionCatalog)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: dict[str, PointRecord] = {}
        self._sessions: dict[str, SessionRecord] = {}

    def record_points(self, points: Sequence[PointRecord]) -> None:
        with self._lock:
            for point in points:
                self._points[point.point_id] = point

    def last_image_point(self, policy_id: str, vm_id: str, disk_id: str) -> PointRecord | None:
        with self._lock:
            mine = [
                p
                for p in self._points.values()
                if p.policy_id == policy_id
                and p.vm_id.lower() == vm_id.lower()
                and p.disk_id.lower() == disk_id.lower()
                and p.kind == IMAGE_LEVEL
            ]
        return max(mine, key=lambda p: (p.time, p.point_id)) if mine else None

    def points(self) -> list[PointRecord]:
        with self._lock:
            return sorted(self._points.values(), key=lambda p: (p.time, p.point_id))

    def record_session(self, session: SessionRecord) -> None:
        with self._lock:
            self._sessions[session.session_id] = session

    def sessions(self) -> list[SessionRecord]:
        with self._lock:
            return sorted(self._sessions.values(), key=lambda s: (s.started, s.session_id))
