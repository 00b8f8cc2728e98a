"""The Catalog port: sessions and restore points, and the queries the API, the CLI and retention need.

Contract (every implementation; tests/catalog/contract.py checks it):

* ``save_session`` creates or replaces a session (activities may run twice: saving the same session
  again is harmless). A session id belongs to one policy and start time for good; saving it with
  another is a UsageError.
* ``list_sessions`` returns a policy's sessions newest first (by ``started``, then id), with
  ``since <= started < until`` and at most ``limit`` of them.
* ``add_point`` creates or replaces a point (by resource, time and id); ``remove_point`` forgets it
  (a missing point is not an error).
* ``list_points`` returns a resource's points newest first (by ``time``, then id), optionally of one
  kind; ``latest_point`` the first of them. Resource ids compare ignoring case, as ARM's do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol

from shared.catalog.model import PointKind, RestorePoint, Session

__all__ = ["POINT_HINT", "Catalog", "latest_image_points", "protected_snapshot_ids"]

POINT_HINT = "list a resource's points with GET /api/points?resource=<id> or `bulwark sessions`"


class Catalog(Protocol):
    def save_session(self, session: Session) -> None: ...

    def get_session(self, session_id: str) -> Session:
        """SessionNotFoundError if there is none."""
        ...

    def list_sessions(
        self,
        policy_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[Session]: ...

    def add_point(self, point: RestorePoint) -> None: ...

    def remove_point(self, point: RestorePoint) -> None: ...

    def list_points(
        self, resource_id: str, *, kind: PointKind | None = None, limit: int | None = None
    ) -> list[RestorePoint]: ...

    def latest_point(self, resource_id: str, kind: PointKind) -> RestorePoint | None: ...

    def get_point(self, point_id: str) -> RestorePoint:
        """The point with this catalog id, whatever its resource; PointNotFoundError if none."""
        ...


def latest_image_points(catalog: Catalog, resource_ids: Iterable[str]) -> dict[str, RestorePoint]:
    """The newest image-level point of each VM that has one, keyed by the id as given."""
    latest = {}
    for resource_id in resource_ids:
        point = catalog.latest_point(resource_id, PointKind.IMAGE)
        if point is not None:
            latest[resource_id] = point
    return latest


def protected_snapshot_ids(catalog: Catalog, vm_ids: Iterable[str]) -> frozenset[str]:
    """The snapshots the last image-level backups were made from: snapshot retention keeps them
    until the next image-level session (``protected_ids`` of select_snapshots_to_delete)."""
    return frozenset(
        snapshot_id for point in latest_image_points(catalog, vm_ids).values() for snapshot_id in point.snapshot_ids
    )
