"""Contract: replay the real recorded compute sessions against the simulator.

For each interaction of each recording (../shared/fixtures/azure-recordings), the simulator must give
the same status code, the same LRO header kinds (Azure-AsyncOperation, Location) and the same body
keys (top level exactly; below it every recorded key at every depth, lists by their first item).
Polling URLs are taken from the simulator's own headers, mapped from the recorded ones; before each
long-running request the simulator is told how many InProgress polls the recording saw. Every
interaction is replayed (the VM session's network calls too: the simulator keeps a minimal
Microsoft.Network).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # pinned in requirements-dev.txt: a missing parser fails, never skips the contract
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient

from tests.support.shared_fixtures import AZURE_RECORDINGS

from .conftest import arm_call

RECORDINGS = AZURE_RECORDINGS
COMPUTE_RECORDINGS = [
    "test_mgmt_compute_vm.test_compute_vm.yaml",
    "test_mgmt_managed_disks.test_create_snapshot.yaml",
    "test_mgmt_managed_disks.test_grant_access.yaml",
]
LRO_HEADERS = ("azure-asyncoperation", "location")
ARM = "https://management.azure.com"


def _load(name: str) -> list[dict[str, Any]]:
    if not RECORDINGS.is_dir():
        pytest.skip(f"the recordings are not here: {RECORDINGS} (../shared is absent)")
    interactions: list[dict[str, Any]] = yaml.safe_load((RECORDINGS / name).read_text())["interactions"]
    return interactions


def _headers(response: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in response["headers"].items():
        out[key.lower()] = value[0] if isinstance(value, list) else value
    return out


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        # The recorder stored one body as a Python bytes repr (see SOURCES.md); the JSON is inside it.
        return json.loads(text[text.index("{") : text.rindex("}") + 1].replace("\\'", "'"))


def _op_key(url: str) -> tuple[str, bool]:
    """An operation URL without host and query, plus whether it is the monitor (Location) URL."""
    parts = urlsplit(url)
    return parts.path.lower(), "monitor=true" in parts.query


def _in_progress_polls(interactions: list[dict[str, Any]], async_url: str) -> int:
    key = _op_key(async_url)
    count = 0
    for item in interactions:
        if _op_key(item["request"]["uri"]) == key:
            body = _json(item["response"]["body"]["string"])
            if isinstance(body, dict) and body.get("status") == "InProgress":
                count += 1
    return count


@pytest.mark.parametrize("recording", COMPUTE_RECORDINGS)
def test_replay_recording(recording: str, sim: SimulatorEndpoints, admin: AdminClient) -> None:
    interactions = _load(recording)
    subscription_prefix = "/subscriptions/00000000-0000-0000-0000-000000000000"
    groups = {
        urlsplit(i["request"]["uri"]).path.split("/")[4]
        for i in interactions
        if "/resourceGroups/" in i["request"]["uri"]
    }
    for group in groups:
        arm_call(
            sim, "PUT", f"{subscription_prefix}/resourcegroups/{group}?api-version=2021-04-01", {"location": "westus"}
        )

    mapped: dict[tuple[str, bool], str] = {}
    checked = 0
    mismatches: list[str] = []
    for index, item in enumerate(interactions):
        request, recorded = item["request"], item["response"]
        uri: str = request["uri"]
        key = _op_key(uri)
        polling = "/operations/" in key[0] or "/diskoperations/" in key[0]
        url = mapped[key] if polling else sim.arm + uri[len(ARM) :]
        recorded_headers = _headers(recorded)
        if "azure-asyncoperation" in recorded_headers:
            admin.settings(
                lro_in_progress_polls=_in_progress_polls(interactions, recorded_headers["azure-asyncoperation"])
            )
        body = _json(request.get("body"))
        status, headers, response_body = arm_call(sim, request["method"], url, body)
        headers = {k.lower(): v for k, v in headers.items()}
        label = f"#{index} {request['method']} {urlsplit(uri).path.split('/providers/')[-1]}"
        checked += 1

        if status != recorded["status"]["code"]:
            mismatches.append(f"{label}: status {status}, recorded {recorded['status']['code']} ({response_body})")
            continue
        ours_kinds = sorted(h for h in LRO_HEADERS if h in headers)
        recorded_kinds = sorted(h for h in LRO_HEADERS if h in recorded_headers)
        if ours_kinds != recorded_kinds:
            mismatches.append(f"{label}: LRO headers {ours_kinds}, recorded {recorded_kinds}")
        for kind in recorded_kinds:
            if kind in headers:
                mapped[_op_key(recorded_headers[kind])] = headers[kind]
        mismatches.extend(_compare_bodies(label, _json(recorded["body"]["string"]), response_body))
    print(f"{recording}: {checked} interactions replayed")
    assert checked == len(interactions)
    assert not mismatches, "\n".join(mismatches)


def _compare_bodies(label: str, recorded: Any, ours: Any, path: str = "") -> list[str]:
    """Body keys: exactly the recorded ones at the top; below it, every recorded key at every depth
    (Azure adds keys over API versions, so more is fine there). A non-empty recorded list must be
    non-empty here, and its first item is compared the same way."""
    where = f"{label}{path}"
    if recorded is None or ours is None:
        return [] if (recorded is None) == (ours is None) else [f"{where}: body {ours!r}, recorded {recorded!r}"]
    if isinstance(recorded, dict):
        if not isinstance(ours, dict):
            return [f"{where}: {type(ours).__name__}, recorded an object"]
        problems = []
        if not path and set(recorded) != set(ours):
            problems.append(f"{where}: keys {sorted(ours)}, recorded {sorted(recorded)}")
        elif path and set(recorded) - set(ours):
            problems.append(f"{where}: lacks {sorted(set(recorded) - set(ours))}")
        for key in recorded.keys() & ours.keys():
            problems.extend(_compare_bodies(label, recorded[key], ours[key], f"{path}.{key}"))
        return problems
    if isinstance(recorded, list):
        if not isinstance(ours, list):
            return [f"{where}: {type(ours).__name__}, recorded a list"]
        if recorded and not ours:
            return [f"{where}: empty list, recorded {len(recorded)} items"]
        return _compare_bodies(label, recorded[0], ours[0], f"{path}[0]") if recorded else []
    return []
