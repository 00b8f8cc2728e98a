"""The HTTP API through the local runtime and stack: policy CRUD with ETags, the catalog's sessions
and restore points, session detail, the OpenAPI description, and malformed requests (each a 4xx whose
problems name the field and the fix, and nothing stored).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from azure.data.tables import TableClient
from bulwark_local.runtime import LocalFunctionsHost
from bulwark_local.stack import Stack

from functions.triggers.openapi import openapi_document
from shared.catalog.model import (
    PointKind,
    ResourceResult,
    RestorePoint,
    Session,
    Status,
    TriggerKind,
)
from shared.catalog.table import AzureTableCatalog
from shared.policy.azure_ids import ResourceKind
from shared.wiring import POINTS_TABLE, SESSIONS_TABLE
from tests.app.harness import KEY, policy_document, running_app, wait_session
from tests.worker.estate import put_resource_group

EMPTY_GROUP = "api-empty"
CATALOG_POLICY = "api-catalog"
T0 = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalFunctionsHost, dict[str, Any]]]:
    work = tmp_path_factory.mktemp("http-api")
    put_resource_group(stack, EMPTY_GROUP)
    secret = work / "secret"
    secret.write_text("not used: the group has no VMs\n")
    base = policy_document(stack, EMPTY_GROUP, str(work / "repo"), secret, "api-base")
    with running_app(stack, work) as (host, _):
        yield host, base


def send(
    url: str,
    method: str = "GET",
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """A request with the function key: (status, headers, parsed JSON body or None)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, method=method, data=data)
    request.add_header("x-functions-key", KEY)
    for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, answer_headers, text = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, text = error.code, dict(error.headers), error.read()
    return status, answer_headers, json.loads(text) if text else None


def policy_ids(host: LocalFunctionsHost) -> list[tuple[str, str]]:
    status, _, listing = send(f"{host.base_url}/api/policies")
    assert status == 200, listing
    assert listing["count"] == len(listing["policies"])
    conforms(listing, "PolicyList")
    return [(item["policy"]["id"], item["etag"]) for item in listing["policies"]]


def with_changes(base: dict[str, Any], policy_id: str, **changes: Any) -> dict[str, Any]:
    """``base`` under ``policy_id``, with ``a__b=value`` setting ``a.b`` (``...`` removes it)."""
    document = copy.deepcopy(base)
    document["id"] = policy_id
    for name, value in changes.items():
        *parents, last = name.split("__")
        target = document
        for part in parents:
            target = target.setdefault(part, {})
        if value is ...:
            target.pop(last, None)
        else:
            target[last] = value
    return document


def conforms(body: Any, schema: str) -> None:
    """``body`` is what the OpenAPI description says the API answers (``components.schemas[schema]``)."""
    jsonschema = pytest.importorskip("jsonschema")
    root = {"$ref": f"#/components/schemas/{schema}", "components": openapi_document()["components"]}
    jsonschema.Draft202012Validator(root).validate(body)


def assert_error(status: int, body: Any, expected: int, field: str | None) -> None:
    assert status == expected, body
    conforms(body, "Error")
    error = body["error"]
    assert error["code"] and error["message"] and error["hint"], body
    assert body["code"] == error["code"]  # the first version's fields, kept for its clients
    if field is not None:
        paths = [problem["path"] for problem in error["problems"]]
        assert any(path == field or path.startswith((field + ".", field + "[")) for path in paths), (
            field,
            error["problems"],
        )
        assert all(problem["message"] and problem["fix"] for problem in error["problems"]), error["problems"]


# -- policies ----------------------------------------------------------------------------------------


def test_policy_crud_with_etags(api: tuple[LocalFunctionsHost, dict[str, Any]]) -> None:
    host, base = api
    url = f"{host.base_url}/api/policies"
    document = with_changes(base, "api-crud")

    status, headers, created = send(url, "POST", document)
    assert status == 201, created
    assert created["id"] == "api-crud" and created["snapshots"] == {"keep": 1}
    conforms(created, "Policy")
    assert headers["Location"] == "/api/policies/api-crud"
    first = headers["ETag"]

    status, headers, read = send(f"{url}/api-crud")
    assert status == 200 and read == created and headers["ETag"] == first
    assert ("api-crud", first) in policy_ids(host)

    status, _, body = send(url, "POST", document)
    assert_error(status, body, 409, None)
    assert body["error"]["code"] == "policy_exists"

    changed = with_changes(base, "api-crud", snapshots={"keep": 3})
    status, _, body = send(f"{url}/api-crud", "PUT", changed)
    assert_error(status, body, 428, None)

    status, headers, updated = send(f"{url}/api-crud", "PUT", changed, headers={"If-Match": first})
    assert status == 200 and updated["snapshots"] == {"keep": 3}, updated
    second = headers["ETag"]
    assert second != first

    stale = with_changes(base, "api-crud", snapshots={"keep": 5})
    status, _, body = send(f"{url}/api-crud", "PUT", stale, headers={"If-Match": first})
    assert_error(status, body, 412, None)
    assert body["error"]["code"] == "policy_conflict"
    assert send(f"{url}/api-crud")[2]["snapshots"] == {"keep": 3}

    without_id = {k: v for k, v in stale.items() if k != "id"}  # the id comes from the URL
    status, headers, updated = send(f"{url}/api-crud", "PUT", without_id, headers={"If-Match": "*"})
    assert status == 200 and updated["snapshots"] == {"keep": 5} and updated["id"] == "api-crud", updated
    third = headers["ETag"]

    status, _, body = send(f"{url}/api-crud", "DELETE", headers={"If-Match": second})
    assert_error(status, body, 412, None)
    status, _, body = send(f"{url}/api-crud", "DELETE", headers={"If-Match": third})
    assert status == 204 and body is None
    for method in ("GET", "DELETE"):
        status, _, body = send(f"{url}/api-crud", method)
        assert_error(status, body, 404, None)
    status, _, body = send(f"{url}/api-crud", "PUT", changed, headers={"If-Match": "*"})
    assert_error(status, body, 404, None)
    assert "api-crud" not in [policy_id for policy_id, _ in policy_ids(host)]


def test_malformed_policies_and_requests_are_refused_and_nothing_is_stored(
    api: tuple[LocalFunctionsHost, dict[str, Any]],
) -> None:
    host, base = api
    url = f"{host.base_url}/api/policies"
    status, _, _ = send(url, "POST", with_changes(base, "api-kept"))
    assert status == 201
    kept = send(f"{url}/api-kept")[2]
    before = policy_ids(host)
    bad = "api-bad"
    image_on = {"enabled": True}
    group = base["scope"]["resource_groups"][0]
    # (method, url, body, raw body, extra headers, expected status, the field the problems must name)
    cases: list[tuple[str, str, Any, bytes | None, dict[str, str], int, str | None]] = [
        ("POST", url, None, b"{not json", {}, 400, ""),
        ("POST", url, None, b"", {}, 400, ""),
        ("POST", url, None, b"   ", {}, 400, ""),
        ("POST", url, None, b"[1, 2]", {}, 400, ""),
        ("POST", url, None, b'"a policy"', {}, 400, ""),
        ("POST", url, None, b"\xff\xfe{}", {}, 400, ""),
        ("POST", url, with_changes(base, bad), None, {"Content-Type": "text/plain"}, 415, None),
        ("POST", url, with_changes(base, bad), None, {"Content-Type": "application/x-www-form-urlencoded"}, 415, None),
        ("POST", url, with_changes(base, bad, id=...), None, {}, 400, "id"),
        ("POST", url, with_changes(base, "Bad_Policy"), None, {}, 400, "id"),
        ("POST", url, with_changes(base, bad, id=7), None, {}, 400, "id"),
        ("POST", url, with_changes(base, bad, scope=...), None, {}, 400, "scope"),
        ("POST", url, with_changes(base, bad, scope={}), None, {}, 400, "scope"),
        ("POST", url, with_changes(base, bad, scope__resource_groups=["nope"]), None, {}, 400, "scope.resource_groups"),
        ("POST", url, with_changes(base, bad, scope__resource_groups=group), None, {}, 400, "scope.resource_groups"),
        ("POST", url, with_changes(base, bad, scope__exclusions={"x": 1}), None, {}, 400, "scope.exclusions"),
        ("POST", url, with_changes(base, bad, schedule__time_zone="Mars/Olympus"), None, {}, 400, "schedule.time_zone"),
        ("POST", url, with_changes(base, bad, schedule__daily={"times": ["25:00"]}), None, {}, 400, "schedule.daily"),
        ("POST", url, with_changes(base, bad, schedule={"time_zone": "UTC"}), None, {}, 400, "schedule"),
        (
            "POST",
            url,
            with_changes(base, bad, schedule={"time_zone": "UTC", "weekly": {"weekday": "funday", "time": "01:00"}}),
            None,
            {},
            400,
            "schedule.weekly.weekday",
        ),
        (
            "POST",
            url,
            with_changes(base, bad, schedule={"time_zone": "UTC", "monthly": {"day": 32, "time": "01:00"}}),
            None,
            {},
            400,
            "schedule.monthly.day",
        ),
        ("POST", url, with_changes(base, bad, snapshots__keep=0), None, {}, 400, "snapshots.keep"),
        ("POST", url, with_changes(base, bad, snapshots__keep=501), None, {}, 400, "snapshots.keep"),
        ("POST", url, with_changes(base, bad, snapshots__keep="seven"), None, {}, 400, "snapshots.keep"),
        ("POST", url, with_changes(base, bad, image_backup=image_on), None, {}, 400, "image_backup"),
        ("POST", url, with_changes(base, bad, image_backup__retention={"days": -1}), None, {}, 400, "image_backup"),
        ("POST", url, with_changes(base, bad, repository=...), None, {}, 400, "repository"),
        ("POST", url, with_changes(base, bad, repository__location=""), None, {}, 400, "repository.location"),
        ("POST", url, with_changes(base, bad, repository__region="mars-central"), None, {}, 400, "repository.region"),
        ("POST", url, with_changes(base, bad, encryption__passphrase={}), None, {}, 400, "encryption.passphrase"),
        (
            "POST",
            url,
            with_changes(base, bad, encryption__passphrase={"value": "hunter2-not-a-reference"}),
            None,
            {},
            400,
            "encryption.passphrase",
        ),
        ("POST", url, with_changes(base, bad, concurrency__resources_in_flight=0), None, {}, 400, "concurrency"),
        ("POST", url, with_changes(base, bad, concurrency__resources_in_flight="2"), None, {}, 400, "concurrency"),
        ("POST", url, with_changes(base, bad, workers={"placement": "moon"}), None, {}, 400, "workers.placement"),
        ("POST", url, with_changes(base, bad, enabled="yes"), None, {}, 400, "enabled"),
        ("POST", url, with_changes(base, bad, colour="blue"), None, {}, 400, "colour"),
        # updates: a bad body leaves the stored policy as it was
        ("PUT", f"{url}/api-kept", with_changes(base, "api-other"), None, {"If-Match": "*"}, 400, "id"),
        (
            "PUT",
            f"{url}/api-kept",
            with_changes(base, "api-kept", snapshots__keep=0),
            None,
            {"If-Match": "*"},
            400,
            "snapshots.keep",
        ),
        ("PUT", f"{url}/api-kept", None, b"{", {"If-Match": "*"}, 400, ""),
        (
            "PUT",
            f"{url}/api-kept",
            with_changes(base, "api-kept"),
            None,
            {"Content-Type": "text/csv", "If-Match": "*"},
            415,
            None,
        ),
        ("PUT", f"{url}/Bad_Id", with_changes(base, "api-kept"), None, {"If-Match": "*"}, 400, None),
        ("PUT", f"{url}/api-missing", with_changes(base, "api-missing"), None, {"If-Match": "*"}, 404, None),
        (
            "PUT",
            f"{url}/api-kept",
            with_changes(base, "api-kept", snapshots={"keep": 2}),
            None,
            {"If-Match": 'W/"stale"'},
            412,
            None,
        ),
        # queries
        ("GET", f"{url}/Bad_Id", None, None, {}, 400, "{policy_id}"),
        ("GET", f"{url}?colour=blue", None, None, {}, 400, "colour"),
        ("DELETE", f"{url}/api-missing", None, None, {}, 404, None),
        ("GET", f"{host.base_url}/api/sessions?limit=0", None, None, {}, 400, "limit"),
        ("GET", f"{host.base_url}/api/sessions?limit=ten", None, None, {}, 400, "limit"),
        ("GET", f"{host.base_url}/api/sessions?since=yesterday", None, None, {}, 400, "since"),
        ("GET", f"{host.base_url}/api/sessions?since=2026-11-01T00:00:00", None, None, {}, 400, "since"),
        (
            "GET",
            f"{host.base_url}/api/sessions?since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z",
            None,
            None,
            {},
            400,
            "until",
        ),
        ("GET", f"{host.base_url}/api/sessions?policy=Not_A_Policy", None, None, {}, 400, "policy"),
        ("GET", f"{host.base_url}/api/sessions?policy=api-kept&sort=asc", None, None, {}, 400, "sort"),
        ("GET", f"{host.base_url}/api/sessions?policy=no-such-policy", None, None, {}, 404, None),
        ("GET", f"{host.base_url}/api/points", None, None, {}, 400, "resource"),
        ("GET", f"{host.base_url}/api/points?resource=/not/an/id", None, None, {}, 400, "resource"),
        (
            "GET",
            f"{host.base_url}/api/points?resource={quote(group)}%2Fproviders%2FMicrosoft.Compute%2FvirtualMachines%2Fvm&kind=tape",
            None,
            None,
            {},
            400,
            "kind",
        ),
        ("GET", f"{host.base_url}/api/sessions/no-such-session", None, None, {}, 404, None),
        ("POST", f"{url}/no-such-policy/run", None, None, {}, 404, None),
        ("POST", f"{url}/api-kept/run", None, b"image_level=true", {"Content-Type": "text/plain"}, 415, None),
        ("POST", f"{url}/api-kept/run", {"image_level": "yes"}, None, {}, 400, None),
    ]
    assert len(cases) >= 30
    for method, target, body, raw, headers, expected, field in cases:
        status, _, answer = send(target, method, body, raw=raw, headers=headers)
        try:
            assert_error(status, answer, expected, field)
        except AssertionError as exc:
            raise AssertionError(f"{method} {target} {body or raw!r} {headers}: {exc}") from exc
    assert policy_ids(host) == before, "a refused request changed the stored policies"
    assert send(f"{url}/api-kept")[2] == kept
    assert send(f"{url}/{bad}")[0] == 404


# -- the catalog -------------------------------------------------------------------------------------


def vm_id(stack: Stack, name: str) -> str:
    group = f"/subscriptions/{stack.subscription_id}/resourceGroups/{EMPTY_GROUP}"
    return f"{group}/providers/Microsoft.Compute/virtualMachines/{name}"


def catalog_of(stack: Stack) -> AzureTableCatalog:
    sessions = TableClient.from_connection_string(stack.storage_connection_string, SESSIONS_TABLE)
    points = TableClient.from_connection_string(stack.storage_connection_string, POINTS_TABLE)
    catalog = AzureTableCatalog(sessions, points)
    catalog.ensure_tables()
    return catalog


def fill_catalog(stack: Stack) -> list[Session]:
    """Three sessions of CATALOG_POLICY a day apart (newest first) and points of one VM."""
    catalog = catalog_of(stack)
    vm = vm_id(stack, "web-1")
    sessions = []
    for day in range(3):
        started = T0 + dt.timedelta(days=day)
        session_id = f"{CATALOG_POLICY}@{started:%Y%m%dT%H%M%SZ}"
        session = Session(
            session_id=session_id,
            policy_id=CATALOG_POLICY,
            trigger=TriggerKind.SCHEDULE,
            started=started,
            status=Status.SUCCESS if day != 1 else Status.WARNING,
            ended=started + dt.timedelta(minutes=5),
            slot=started,
            image_backup=day == 2,
            resources=(
                ResourceResult(
                    vm, ResourceKind.VM, Status.SUCCESS, bytes_read=1000 * (day + 1), snapshot_ids=(f"s{day}",)
                ),
            ),
        )
        catalog.save_session(session)
        kind = PointKind.IMAGE if day == 2 else PointKind.SNAPSHOT
        catalog.add_point(
            RestorePoint(f"p{day}", vm, kind, started, CATALOG_POLICY, session_id, size=4096, snapshot_ids=(f"s{day}",))
        )
        sessions.append(session)
    return sessions[::-1]


def test_sessions_and_points_come_from_the_catalog(
    api: tuple[LocalFunctionsHost, dict[str, Any]], stack: Stack
) -> None:
    host, _ = api
    newest, middle, oldest = fill_catalog(stack)
    base = f"{host.base_url}/api/sessions"

    status, _, listing = send(f"{base}?policy={CATALOG_POLICY}")
    assert status == 200 and listing["count"] == 3, listing
    assert [s["session_id"] for s in listing["sessions"]] == [newest.session_id, middle.session_id, oldest.session_id]
    assert listing["sessions"][1]["status"] == "Warning"
    assert listing["sessions"][0]["resources"][0]["bytes_read"] == 3000
    conforms(listing, "SessionList")

    since, until = quote((T0 + dt.timedelta(hours=1)).isoformat()), quote((T0 + dt.timedelta(days=2)).isoformat())
    status, _, listing = send(f"{base}?policy={CATALOG_POLICY}&since={since}&until={until}")
    assert status == 200 and [s["session_id"] for s in listing["sessions"]] == [middle.session_id]
    status, _, listing = send(f"{base}?policy={CATALOG_POLICY}&limit=2")
    assert [s["session_id"] for s in listing["sessions"]] == [newest.session_id, middle.session_id]

    status, _, detail = send(f"{base}/{quote(oldest.session_id)}")
    assert status == 200, detail
    assert detail["runtime_status"] is None  # no orchestration: only the catalog knows it
    conforms(detail, "SessionDetail")
    assert detail["catalog"]["session_id"] == oldest.session_id and detail["catalog"]["status"] == "Success"

    vm = quote(vm_id(stack, "web-1"), safe="")
    status, _, points = send(f"{host.base_url}/api/points?resource={vm}")
    assert status == 200 and [p["point_id"] for p in points["points"]] == ["p2", "p1", "p0"], points
    conforms(points, "PointList")
    status, _, points = send(f"{host.base_url}/api/points?resource={vm}&kind=image")
    assert [p["point_id"] for p in points["points"]] == ["p2"] and points["points"][0]["kind"] == "image"
    status, _, points = send(f"{host.base_url}/api/points?resource={vm.upper().replace('%2F', '%2F')}&limit=1")
    assert status == 200 and [p["point_id"] for p in points["points"]] == ["p2"]  # ARM ids ignore case
    status, _, points = send(f"{host.base_url}/api/points?resource={quote(vm_id(stack, 'other'), safe='')}")
    assert status == 200 and points == {"points": [], "count": 0}


def test_a_run_shows_live_status_then_the_catalog_record(api: tuple[LocalFunctionsHost, dict[str, Any]]) -> None:
    host, base = api
    document = with_changes(base, "api-run", image_backup={"enabled": False})
    document.pop("image_backup")
    status, _, created = send(f"{host.base_url}/api/policies", "POST", document)
    assert status == 201, created

    status, _, started = send(f"{host.base_url}/api/policies/api-run/run", "POST")
    assert status == 202 and started["id"].startswith("api-run@run-"), started
    conforms(started, "CheckStatus")
    finished = wait_session(host, started["id"])
    assert finished["runtime_status"] == "Completed"
    assert finished["output"]["status"] == "Warning"  # the group has no VMs
    assert finished["catalog"]["session_id"] == started["id"]
    assert finished["catalog"]["status"] == "Warning" and finished["catalog"]["trigger"] == "on_demand"
    conforms(finished, "SessionDetail")

    status, _, listing = send(f"{host.base_url}/api/sessions?policy=api-run")
    assert status == 200 and [s["session_id"] for s in listing["sessions"]] == [started["id"]]
    status, _, everything = send(f"{host.base_url}/api/sessions?limit=1000")
    assert status == 200 and started["id"] in {s["session_id"] for s in everything["sessions"]}


# -- the description ---------------------------------------------------------------------------------


def test_openapi_describes_every_route_and_is_valid(api: tuple[LocalFunctionsHost, dict[str, Any]]) -> None:
    host, _ = api
    validator = pytest.importorskip("openapi_spec_validator")
    status, _, document = send(f"{host.base_url}/api/openapi.json")
    assert status == 200 and document == openapi_document()
    validator.validate(document)
    assert document["openapi"].startswith("3.1")
    for schema in ("Policy", "Schedule", "Session", "ResourceResult", "RestorePoint", "Error", "Problem"):
        assert schema in document["components"]["schemas"], schema
    operations = {
        (path, method) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    assert operations == {
        ("/policies", "get"),
        ("/policies", "post"),
        ("/policies/{policy_id}", "get"),
        ("/policies/{policy_id}", "put"),
        ("/policies/{policy_id}", "delete"),
        ("/policies/{policy_id}/run", "post"),
        ("/sessions", "get"),
        ("/sessions/{session_id}", "get"),
        ("/points", "get"),
        ("/points/{point_id}/contents", "get"),
        ("/points/{point_id}/files", "get"),
        ("/points/{point_id}/files/download", "get"),
        ("/restores/sql", "post"),
        ("/restores/vm", "post"),
        ("/restores/disk", "post"),
        ("/restores/{instance_id}", "get"),
        ("/reports/sessions/{instance_id}", "get"),
        ("/reports/policies/{policy_id}", "get"),
        ("/policies/{policy_id}/cost", "get"),
        ("/reports/sessions/{instance_id}", "get"),
        ("/reports/policies/{policy_id}", "get"),
        ("/policies/{policy_id}/cost", "get"),
        ("/openapi.json", "get"),
    }
    routes = {(f.route, m.lower()) for f in host.functions.http for m in f.methods or ()}
    described = {(path.strip("/").replace("{session_id}", "{instance_id}"), method) for path, method in operations}
    assert routes == described
