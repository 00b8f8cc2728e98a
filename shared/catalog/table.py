"""The Catalog port over Azure Table storage (azure-data-tables; Azurite locally).

Two tables, with keys designed for the queries (Table storage returns a partition in RowKey order):

``sessions``
    A session: PartitionKey = policy id, RowKey = ``<inverted start>_<session id>``. The inverted
    start is 10^19 - 1 minus the start in microseconds since the epoch, 19 digits, so a partition
    reads newest first and a time range is a RowKey range. The JSON document is in ``Doc*``
    properties; ``SessionId``, ``Status``, ``Trigger``, ``Started`` and ``Ended`` are copies for people
    browsing the table.

    Its pointer: PartitionKey ``~session``, RowKey = session id, ``PolicyId`` and ``SessionRow`` (the
    session's RowKey). It is written once, before the session, and never changes (a session keeps its
    policy and start), so ``get_session`` is two point reads and every save is one entity write.

``points``
    A restore point: PartitionKey = the first 32 hex digits of SHA-256 of the lower-cased resource id
    (ARM ids hold ``/``, which keys cannot), RowKey = ``<inverted time>_<point id>``, so a resource's
    points read newest first; ``Kind`` filters by kind. ``ResourceId``, ``Kind``, ``Time``, ``PolicyId``,
    ``SessionId``, ``PointId`` and ``Size`` are properties, the JSON document is in ``Doc*``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.data.tables import EdmType, EntityProperty, TableClient, TableEntity, UpdateMode

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
from shared.policy.azure_table import (
    ensure_table,
    is_missing_entity,
    pack_document,
    translate_table_error,
    unpack_document,
)

__all__ = ["POINTER_PARTITION", "AzureTableCatalog", "inverted_time", "resource_partition", "time_of_row"]

POINTER_PARTITION = "~session"
_MAX_INVERTED = 10**19 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PAGE = 1000


def inverted_time(moment: dt.datetime) -> str:
    """19 digits that sort newest first."""
    micros = (moment - _EPOCH) // dt.timedelta(microseconds=1)
    return f"{_MAX_INVERTED - micros:019d}"


def time_of_row(row_key: str) -> dt.datetime:
    """The time whose :func:`inverted_time` starts ``row_key``."""
    return _EPOCH + dt.timedelta(microseconds=_MAX_INVERTED - int(row_key[:19]))


def resource_partition(resource_id: str) -> str:
    return hashlib.sha256(id_key(resource_id).encode()).hexdigest()[:32]


class AzureTableCatalog:
    """Sessions and restore points in two Azure tables. The caller builds the TableClients."""

    def __init__(self, sessions: TableClient, points: TableClient) -> None:
        self._sessions = sessions
        self._points = points

    def ensure_tables(self) -> None:
        ensure_table(self._sessions)
        ensure_table(self._points)

    # -- sessions -------------------------------------------------------------------------------

    def save_session(self, session: Session) -> None:
        check_session(session)
        what = f"session '{session.session_id}'"
        row = f"{inverted_time(session.started)}_{session.session_id}"
        pointer = {
            "PartitionKey": POINTER_PARTITION,
            "RowKey": session.session_id,
            "PolicyId": session.policy_id,
            "SessionRow": row,
        }
        try:
            self._sessions.create_entity(pointer)
        except ResourceExistsError:
            self._check_pointer(session, what)
        except AzureError as exc:
            raise translate_table_error(exc, what, self._sessions.table_name) from exc
        entity = {
            "PartitionKey": session.policy_id,
            "RowKey": row,
            "SessionId": session.session_id,
            "Status": session.status.value,
            "Trigger": session.trigger.value,
            "Started": session.started,
            **({"Ended": session.ended} if session.ended else {}),
            **pack_document(to_dict(session), what=what),
        }
        self._upsert(self._sessions, entity, what)

    def get_session(self, session_id: str) -> Session:
        what = f"session '{session_id}'"
        try:
            pointer = self._sessions.get_entity(POINTER_PARTITION, session_id)
            entity = self._sessions.get_entity(pointer["PolicyId"], pointer["SessionRow"])
        except AzureError as exc:
            if is_missing_entity(exc):
                raise SessionNotFoundError(session_id) from exc
            raise translate_table_error(exc, what, self._sessions.table_name) from exc
        return session_from_dict(unpack_document(entity, what=what))

    def list_sessions(
        self,
        policy_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[Session]:
        conditions = ["PartitionKey eq @policy"]
        parameters: dict[str, Any] = {"policy": policy_id}
        if until is not None:  # started < until  <=>  inverted > inverted(until)
            conditions.append("RowKey ge @low")
            parameters["low"] = f"{int(inverted_time(until)) + 1:019d}"
        if since is not None:  # started >= since  <=>  inverted <= inverted(since)
            conditions.append("RowKey lt @high")
            parameters["high"] = f"{int(inverted_time(since)) + 1:019d}"
        entities = self._query(self._sessions, " and ".join(conditions), parameters, limit, f"policy '{policy_id}'")
        return [session_from_dict(unpack_document(e, what=f"session '{e.get('SessionId')}'")) for e in entities]

    # -- restore points -------------------------------------------------------------------------

    def add_point(self, point: RestorePoint) -> None:
        check_point(point)
        what = f"restore point '{point.point_id}'"
        entity = {
            "PartitionKey": resource_partition(point.resource_id),
            "RowKey": f"{inverted_time(point.time)}_{point.point_id}",
            "ResourceId": point.resource_id,
            "Kind": point.kind.value,
            "Time": point.time,
            "PolicyId": point.policy_id,
            "SessionId": point.session_id,
            "PointId": point.point_id,  # get_point's one-query lookup across resources
            "Size": EntityProperty(point.size, EdmType.INT64),  # int32 unless told otherwise
            **pack_document(to_dict(point), what=what),
        }
        self._upsert(self._points, entity, what)

    def remove_point(self, point: RestorePoint) -> None:
        try:
            self._points.delete_entity(  # the SDK ignores a missing entity
                resource_partition(point.resource_id), f"{inverted_time(point.time)}_{point.point_id}"
            )
        except AzureError as exc:
            what = f"restore point '{point.point_id}'"
            raise translate_table_error(exc, what, self._points.table_name) from exc

    def list_points(
        self, resource_id: str, *, kind: PointKind | None = None, limit: int | None = None
    ) -> list[RestorePoint]:
        conditions = ["PartitionKey eq @partition"]
        parameters: dict[str, Any] = {"partition": resource_partition(resource_id)}
        if kind is not None:
            conditions.append("Kind eq @kind")
            parameters["kind"] = kind.value
        entities = self._query(self._points, " and ".join(conditions), parameters, limit, f"points of '{resource_id}'")
        return [point_from_dict(unpack_document(e, what=f"restore point in '{e.get('RowKey')}'")) for e in entities]

    def latest_point(self, resource_id: str, kind: PointKind) -> RestorePoint | None:
        points = self.list_points(resource_id, kind=kind, limit=1)
        return points[0] if points else None

    def get_point(self, point_id: str) -> RestorePoint:
        found = self._query(self._points, "PointId eq @id", {"id": point_id}, 1, f"restore point '{point_id}'")
        if not found:
            raise PointNotFoundError(f"the catalog has no restore point '{point_id}'", hint=POINT_HINT)
        return point_from_dict(unpack_document(found[0], what=f"restore point '{point_id}'"))

    # -- plumbing -------------------------------------------------------------------------------

    def _check_pointer(self, session: Session, what: str) -> None:
        try:
            pointer = self._sessions.get_entity(POINTER_PARTITION, session.session_id)
        except AzureError as exc:
            raise translate_table_error(exc, what, self._sessions.table_name) from exc
        started = time_of_row(str(pointer["SessionRow"]))
        check_same_run(session, policy_id=str(pointer["PolicyId"]), started=started)

    def _upsert(self, table: TableClient, entity: dict[str, Any], what: str) -> None:
        try:
            table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise translate_table_error(exc, what, table.table_name) from exc

    def _query(
        self, table: TableClient, query: str, parameters: dict[str, Any], limit: int | None, what: str
    ) -> list[TableEntity]:
        page = min(limit, _PAGE) if limit is not None else _PAGE
        found: list[TableEntity] = []
        try:
            entities: Iterator[TableEntity] = iter(
                table.query_entities(query, parameters=parameters, results_per_page=page)
            )
            for entity in entities:
                found.append(entity)
                if limit is not None and len(found) >= limit:
                    break
        except AzureError as exc:
            raise translate_table_error(exc, what, table.table_name) from exc
        return found


_: type[Catalog] = AzureTableCatalog
