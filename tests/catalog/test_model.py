"""Catalog records: the session status rule, JSON round trips, and the OpenAPI components."""

from __future__ import annotations

import json

import pytest

from shared.catalog.model import (
    Status,
    catalog_components,
    overall_status,
    point_from_dict,
    session_from_dict,
    to_dict,
)
from shared.core.errors import IntegrityError
from tests.catalog.contract import at, point, result, session
from tests.policy.documents import DB, VM


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([Status.SUCCESS, Status.SUCCESS], Status.SUCCESS),
        ([Status.SUCCESS, Status.WARNING], Status.WARNING),
        ([Status.WARNING, Status.FAILED, Status.SUCCESS], Status.FAILED),
        ([Status.SUCCESS, Status.RUNNING, Status.FAILED], Status.RUNNING),
        ([], Status.WARNING),
    ],
)
def test_overall_status_is_the_worst(statuses: list[Status], expected: Status) -> None:
    assert overall_status(result(VM, status) for status in statuses) is expected


def test_session_and_point_round_trip_through_json() -> None:
    done = session(
        "s1",
        status=Status.SUCCESS,
        ended=at(2),
        image_backup=True,
        resources=(result(VM, started=at(0), ended=at(1), snapshot_ids=("a", "b"), point_ids=("p1",)), result(DB)),
    )
    document = json.loads(json.dumps(to_dict(done)))
    assert document["started"] == "2024-06-01T02:00:00.000000Z"
    assert document["status"] == "Success"
    assert document["resources"][1]["kind"] == "sql_database"
    assert session_from_dict(document) == done
    image = point("p1", snapshots=("a", "b"))
    assert point_from_dict(json.loads(json.dumps(to_dict(image)))) == image


def test_unreadable_records_are_integrity_errors() -> None:
    with pytest.raises(IntegrityError, match="session_id: is missing"):
        session_from_dict({"policy_id": "p"})


def test_openapi_components() -> None:
    components = catalog_components()
    assert {"Session", "ResourceResult", "RestorePoint"} <= set(components)
    status = components["Session"]["properties"]["status"]
    assert status["enum"] == ["Running", "Success", "Warning", "Failed"]
    assert components["Session"]["properties"]["resources"]["items"] == {"$ref": "#/components/schemas/ResourceResult"}
    assert components["RestorePoint"]["properties"]["time"]["format"] == "date-time"
