"""Reports through the running app (HTTP) and the CLI, over a catalog in the local stack's Azurite.

Ten days of a policy's sessions and points (tests/report/history.py, ending now) are written to the
app's tables; then the unmodified function app serves the report pages and the cost estimate, and
``bulwark report`` / ``bulwark status`` read the same tables through ``--stack``.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from azure.data.tables import TableClient
from bulwark_local.runtime import LocalFunctionsHost
from bulwark_local.stack import Stack

from shared.catalog.table import AzureTableCatalog
from shared.policy.table_store import AzureTablePolicyStore
from shared.wiring import POINTS_TABLE, POLICIES_TABLE, SESSIONS_TABLE
from tests.app.harness import KEY, call, running_app
from tests.report.history import POLICY_ID, History, build_history

ROOT = Path(__file__).resolve().parents[2]
# The SDK warns "Potential duplicate Task completion" when it buffers an early completion (as in tests/app).
pytestmark = pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")


@pytest.fixture(scope="module")
def history(stack: Stack) -> History:
    built = build_history(now=dt.datetime.now(dt.UTC))
    connection = stack.storage_connection_string
    with (
        TableClient.from_connection_string(connection, table_name=SESSIONS_TABLE) as sessions,
        TableClient.from_connection_string(connection, table_name=POINTS_TABLE) as points,
        TableClient.from_connection_string(connection, table_name=POLICIES_TABLE) as policies,
    ):
        catalog = AzureTableCatalog(sessions, points)
        catalog.ensure_tables()
        store = AzureTablePolicyStore(policies)
        store.ensure_table()
        store.create(built.policy)
        for session in built.sessions:
            catalog.save_session(session)
        for resource_id in {r.resource_id for s in built.sessions for r in s.resources}:
            for point in built.catalog.list_points(resource_id):
                catalog.add_point(point)
    return built


@pytest.fixture(scope="module")
def app(stack: Stack, history: History, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFunctionsHost]:
    with running_app(stack, tmp_path_factory.mktemp("reports")) as (host, _):
        yield host


def _get(host: LocalFunctionsHost, path: str) -> tuple[int, bytes]:
    return call(f"{host.base_url}/api/{path}")


def test_the_session_report_is_served_as_html(app: LocalFunctionsHost, history: History) -> None:
    session = history.sessions[-1]
    status, body = _get(app, f"reports/sessions/{quote(session.session_id)}")
    assert status == 200, body[:500]
    page = body.decode()
    assert page.startswith("<!DOCTYPE html>") and f"Session {session.session_id}" in page
    assert "RPO compliance" in page and "Estimated monthly cost" in page and "quota exceeded" in page


def test_the_policy_report_and_cost_are_served(app: LocalFunctionsHost, history: History) -> None:
    status, body = _get(app, f"reports/policies/{POLICY_ID}")
    assert status == 200 and b"Policy prod-vms" in body
    query = f"tier=cool&source_region=westeurope&code={KEY}"  # the key as a browser sends it
    status, body = call(f"{app.base_url}/api/policies/{POLICY_ID}/cost?{query}", key=None)
    assert status == 200, body
    estimate = json.loads(body)
    assert estimate["tier"] == "cool" and estimate["currency"] == "USD" and estimate["monthly_total"] > 0
    transfer = next(line for line in estimate["lines"] if line["item"] == "cross-region transfer")
    assert transfer["monthly"] == 0  # the policy's repository is in westeurope too


def test_bad_requests_name_the_field_and_unknown_ids_are_404(app: LocalFunctionsHost) -> None:
    status, body = _get(app, f"policies/{POLICY_ID}/cost?tier=archive")
    assert status == 400 and "'tier'" in json.loads(body)["error"]["message"]
    status, body = _get(app, f"policies/{POLICY_ID}/cost?region=x")
    assert status == 400 and "source_region" in json.loads(body)["error"]["hint"]
    status, body = _get(app, f"policies/{POLICY_ID}/cost?source_region=Not%20A%20Region")
    assert status == 400 and "source_region" in json.loads(body)["error"]["message"]
    assert _get(app, "reports/sessions/prod-vms@nothing")[0] == 404
    assert _get(app, "reports/policies/no-such-policy")[0] == 404
    assert _get(app, "policies/no-such-policy/cost")[0] == 404


def _bulwark(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", *args, "--stack", str(Path(stack.state_dir) / "stack.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_writes_reports_and_prints_status(stack: Stack, history: History, tmp_path: Path) -> None:
    out = tmp_path / "session.html"
    done = _bulwark(stack, "report", "--session", history.sessions[-1].session_id, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "Estimated monthly cost" in out.read_text() and [p.name for p in tmp_path.iterdir()] == ["session.html"]
    done = _bulwark(stack, "report", "--policy", POLICY_ID, "--out", str(tmp_path / "policy.html"))
    assert done.returncode == 0 and "Policy prod-vms" in (tmp_path / "policy.html").read_text()
    done = _bulwark(stack, "status", "--policy", POLICY_ID)
    assert done.returncode == 0, done.stderr
    assert "policy prod-vms" in done.stdout and "last session   Failed" in done.stdout
    assert "missed       web-2 (snapshot)" in done.stdout and "USD a month" in done.stdout
    everything = _bulwark(stack, "status")
    assert everything.returncode == 0 and "policy prod-vms" in everything.stdout


def test_the_cli_refuses_bad_input_in_one_line(stack: Stack, tmp_path: Path) -> None:
    done = _bulwark(stack, "report", "--policy", "Bad Id!")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--policy" in done.stderr
    done = _bulwark(stack, "report", "--policy", "no-such-policy", "--out", str(tmp_path / "x.html"))
    assert done.returncode != 0 and done.stderr.startswith("bulwark: error:") and not (tmp_path / "x.html").exists()
