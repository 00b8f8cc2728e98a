"""Set-up of the app tests that start from a restore point made outside a session (browse, SQL
restore): the point stored in a repository, recorded in the stack's catalog tables as a finished
session would have, and the ``bulwark`` CLI installed beside this Python."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from azure.data.tables import TableClient
from bulwark_local.stack import Stack

from shared.catalog.model import PointDisk, PointKind, RestorePoint
from shared.catalog.table import AzureTableCatalog
from shared.engine.fileset import backup_fileset
from shared.sources.bacpac import BacpacFile
from shared.wiring import POINTS_TABLE, SESSIONS_TABLE
from tests.worker.estate import open_repository

BULWARK = str(Path(sys.executable).parent / "bulwark")


def record_point(
    stack: Stack,
    point_id: str,
    resource_id: str,
    kind: PointKind,
    *,
    policy_id: str,
    repository_point_id: str,
    disks: tuple[PointDisk, ...] = (),
) -> None:
    """Add point ``point_id`` of ``resource_id`` to the stack's catalog (its tables made when
    missing), as made just now by a session of ``policy_id``."""
    point = RestorePoint(
        point_id=point_id,
        resource_id=resource_id,
        kind=kind,
        time=dt.datetime.now(dt.UTC),
        policy_id=policy_id,
        session_id=f"{policy_id}-test-session",
        repository_point_id=repository_point_id,
        disks=disks,
    )
    connection = stack.storage_connection_string
    with (
        TableClient.from_connection_string(connection, table_name=SESSIONS_TABLE) as sessions,
        TableClient.from_connection_string(connection, table_name=POINTS_TABLE) as points,
    ):
        catalog = AzureTableCatalog(sessions, points)
        catalog.ensure_tables()
        catalog.add_point(point)


def store_bacpac(location: str, bacpac: Path, source_id: str) -> str:
    """Back up the BACPAC file ``bacpac`` into the repository at ``location``; the point's id."""
    repo = open_repository(location)
    with BacpacFile(bacpac, source_id=source_id) as source:
        return backup_fileset(repo, source, kind="bacpac", tags={}, workers=2).point.point_id
