"""Contract: replay the recorded SQL and Container Instances sessions against the simulator.

Same rules as test_contract.py (status codes, LRO header kinds, body keys; polling URLs mapped from
the recorded ones to the simulator's, InProgress polls set per operation). What the recordings assume
already exists is created first: the resource groups, and for the database session its server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient

from .conftest import arm_call
from .test_contract import (
    ARM,
    COMPUTE_RECORDINGS,
    LRO_HEADERS,
    _compare_bodies,
    _headers,
    _in_progress_polls,
    _json,
    _load,
    _op_key,
)
from .test_contract import RECORDINGS as RECORDINGS_DIR

RECORDINGS = {
    "test_mgmt_sql.test_database.yaml": "westus",
    "test_mgmt_sql.test_server.yaml": "westus2",
    "test_mgmt_containerinstance.test_container_instance.yaml": "westus",
}
SUBSCRIPTION_PREFIX = "/subscriptions/00000000-0000-0000-0000-000000000000"


def _prepare(sim: SimulatorEndpoints, interactions: list[dict[str, Any]], location: str) -> None:
    paths = [urlsplit(i["request"]["uri"]).path for i in interactions]
    for group in {p.split("/")[4] for p in paths if "/resourceGroups/" in p}:
        arm_call(
            sim, "PUT", f"{SUBSCRIPTION_PREFIX}/resourcegroups/{group}?api-version=2021-04-01", {"location": location}
        )
    first = interactions[0]["request"]
    if first["method"] == "PUT" and "/databases/" in first["uri"]:  # the database session's server
        server = urlsplit(first["uri"]).path.split("/databases/")[0]
        body = {"location": location, "properties": {"administratorLogin": "a", "administratorLoginPassword": "P@ss1"}}
        status, _, _ = arm_call(sim, "PUT", f"{server}?api-version=2025-01-01", body)
        assert status == 202


def _same_item_first(recorded: dict[str, Any], body: Any) -> Any:
    """A subscription-wide list holds other tests' resources too: compare the recorded item with ours."""
    expected = _json(recorded["body"]["string"])
    if not (isinstance(body, dict) and isinstance(expected, dict) and expected.get("value") and body.get("value")):
        return body
    name = expected["value"][0].get("name")
    ordered = sorted(body["value"], key=lambda item: item.get("name") != name)
    return {**body, "value": ordered}


@pytest.mark.parametrize("recording", sorted(RECORDINGS))
def test_replay_recording(recording: str, sim: SimulatorEndpoints, admin: AdminClient) -> None:
    interactions = _load(recording)
    _prepare(sim, interactions, RECORDINGS[recording])
    mapped: dict[tuple[str, bool], str] = {}
    mismatches: list[str] = []
    for index, item in enumerate(interactions):
        request, recorded = item["request"], item["response"]
        uri: str = request["uri"]
        key = _op_key(uri)
        url = mapped.get(key) or sim.arm + uri[len(ARM) :]
        recorded_headers = _headers(recorded)
        if "azure-asyncoperation" in recorded_headers:
            polls = _in_progress_polls(interactions, recorded_headers["azure-asyncoperation"])
            admin.settings(lro_in_progress_polls=polls)
        status, headers, body = arm_call(sim, request["method"], url, _json(request.get("body")))
        headers = {k.lower(): v for k, v in headers.items()}
        label = f"#{index} {request['method']} {urlsplit(uri).path.split('/providers/')[-1]}"
        if status != recorded["status"]["code"]:
            mismatches.append(f"{label}: status {status}, recorded {recorded['status']['code']} ({body})")
            continue
        ours = sorted(h for h in LRO_HEADERS if h in headers)
        theirs = sorted(h for h in LRO_HEADERS if h in recorded_headers)
        if ours != theirs:
            mismatches.append(f"{label}: LRO headers {ours}, recorded {theirs}")
        for kind in theirs:
            if kind in headers:
                mapped[_op_key(recorded_headers[kind])] = headers[kind]
        mismatches.extend(_compare_bodies(label, _json(recorded["body"]["string"]), _same_item_first(recorded, body)))
    print(f"{recording}: {len(interactions)} interactions replayed, {len(mapped)} polling URLs mapped")
    assert len(mapped) >= 2
    assert not mismatches, "\n".join(mismatches)


def test_every_recording_is_replayed() -> None:
    """A recording added to ../shared must join one of the two contract tests."""
    if not RECORDINGS_DIR.is_dir():
        pytest.skip(f"the recordings are not here: {RECORDINGS_DIR} (../shared is absent)")
    present = {path.name for path in RECORDINGS_DIR.glob("*.yaml")}
    assert present == set(COMPUTE_RECORDINGS) | set(RECORDINGS) and len(present) == 6
