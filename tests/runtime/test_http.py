"""HTTP triggers and the management API, driven over real HTTP with the SDK's own client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bulwark_local.runtime import LocalFunctionsHost, ManualClock, RuntimeStatus

from .conftest import KEY

MakeHost = Callable[..., LocalFunctionsHost]


def _call(
    url: str, method: str = "GET", body: Any = None, *, key: str | None = KEY, raw: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, method=method, data=data)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("x-functions-key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_routes_methods_and_keys(make_host: MakeHost) -> None:
    host = make_host()
    base = host.base_url
    assert _call(f"{base}/api/ping?who=tests", key=None)[::2] == (200, b"pong tests")
    assert _call(f"{base}/api/files/reports/2024/summary.txt")[::2] == (200, b"reports/2024/summary.txt")
    assert _call(f"{base}/api/files/x", key=None)[0] == 401  # function level: key required
    assert _call(f"{base}/api/files/x", key="wrong")[0] == 401
    assert _call(f"{base}/api/files/x?code={KEY}", key=None)[0] == 200  # key in the query
    assert _call(f"{base}/api/backups/p1", "DELETE")[0] == 405
    assert _call(f"{base}/api/nothing/here")[0] == 404
    assert _call(f"{base}/files/x")[0] == 404  # routes live under the api/ prefix
    assert _call(f"{base}/runtime/webhooks/durabletask/instances/x", key=None)[0] == 401
    assert _call(f"{base}/admin/host/ping", key=None)[0] == 200


def test_start_poll_and_raise_event_through_the_real_client(make_host: MakeHost, clock: ManualClock) -> None:
    host = make_host()
    job = {"resources": ["vm1", "vm2"], "cooldown_seconds": 10, "wait_for_approval": True}
    status, headers, body = _call(f"{host.base_url}/api/backups/gold?instance=web-1", "POST", job)
    assert status == 202
    links = json.loads(body)
    assert links["id"] == "web-1"
    assert links["statusQueryGetUri"].startswith(f"{host.base_url}/runtime/webhooks/durabletask/instances/web-1?")
    assert headers["Location"] == links["statusQueryGetUri"]

    # Starting the same id while it runs is a 409 from the extension: the client raises.
    assert _call(f"{host.base_url}/api/backups/gold?instance=web-1", "POST", job)[0] == 500

    status, _, body = _call(links["statusQueryGetUri"], key=None)
    assert status == 202 and json.loads(body)["runtimeStatus"] in ("Pending", "Running")
    for _ in range(10):
        host.engine.wait_until_idle(timeout=10)
        record = host.engine.get_instance("web-1")
        assert record is not None
        if json.loads(record.custom_status or "{}").get("phase") == "awaiting-approval":
            break
        clock.advance(timedelta(seconds=5))
    status, _, _ = _call(f"{host.base_url}/api/backups/web-1/approve", "POST", {"by": "carol"})
    assert status == 202
    record = host.wait_for_completion("web-1")
    assert record.status is RuntimeStatus.COMPLETED
    # The Python client JSON-encodes event data before posting it as JSON, so the orchestrator
    # receives a string (azure-functions-durable-python#295); the runtime reproduces that.
    assert json.loads(json.loads(record.output or "")["approval"]) == {"by": "carol"}

    status, _, body = _call(links["statusQueryGetUri"] + "&showHistory=true&showHistoryOutput=true", key=None)
    payload = json.loads(body)
    assert status == 200 and payload["runtimeStatus"] == "Completed"
    assert payload["output"]["snapshots"] == ["snap-vm1", "snap-vm2"]
    kinds = [row["EventType"] for row in payload["historyEvents"]]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionCompleted"
    assert "TaskScheduled" not in kinds and "OrchestratorStarted" not in kinds

    status, _, body = _call(f"{host.base_url}/api/backups/web-1/status")
    shown = json.loads(body)
    assert status == 200 and shown["runtimeStatus"] == "Completed" and shown["customStatus"] == {"phase": "done"}
    assert shown["historyEvents"][1]["FunctionName"] == "snapshot_resource"

    status, _, body = _call(f"{host.base_url}/api/backups?status=Completed")
    assert status == 200 and {"id": "web-1", "status": "Completed"} in json.loads(body)
    assert _call(f"{host.base_url}/api/backups/unknown/status")[0] == 404

    purge = links["purgeHistoryDeleteUri"]
    assert _call(purge, "DELETE", key=None)[0] == 200
    assert _call(links["statusQueryGetUri"], key=None)[0] == 404


def test_management_api_answers_like_the_extension(make_host: MakeHost) -> None:
    host = make_host()
    base = f"{host.base_url}/runtime/webhooks/durabletask"
    status, _, body = _call(f"{base}/orchestrators/countdown_orchestrator/mgmt-1", "POST", "5")
    assert status == 202 and json.loads(body)["id"] == "mgmt-1"
    assert _call(f"{base}/orchestrators/countdown_orchestrator/mgmt-1", "POST", "5")[0] == 409
    status, _, body = _call(f"{base}/orchestrators/nope", "POST", None)
    assert status == 400 and "doesn't exist" in json.loads(body)["Message"]
    assert _call(f"{base}/orchestrators/countdown_orchestrator", "POST", raw=b"{not json")[0] == 400
    assert _call(f"{base}/instances/mgmt-1", "DELETE")[0] == 412  # not terminal yet
    assert _call(f"{base}/instances/mgmt-1/terminate?reason=stop", "POST")[0] == 202
    host.wait_for_completion("mgmt-1")
    assert _call(f"{base}/instances/mgmt-1/terminate?reason=again", "POST")[0] == 410
    assert _call(f"{base}/instances/mgmt-1/raiseEvent/go", "POST", 1)[0] == 410
    assert _call(f"{base}/instances/missing/raiseEvent/go", "POST", 1)[0] == 404
    status, _, body = _call(f"{base}/instances/mgmt-1")
    assert status == 200 and json.loads(body)["runtimeStatus"] == "Terminated"
    assert json.loads(body)["output"] == "stop"
