"""`bulwark sessions`, `bulwark session` and `bulwark points --catalog` against a catalog in Azurite."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from bulwark_local.azurite import Azurite

from shared.catalog.model import PointKind, ResourceResult, RestorePoint, Session, Status, TriggerKind, to_dict
from shared.catalog.table import AzureTableCatalog
from shared.cli.catalog_commands import POINTS_TABLE, SESSIONS_TABLE
from shared.cli.main import main
from shared.policy.azure_ids import ResourceKind

pytestmark = pytest.mark.azurite

SUBSCRIPTION = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/prod"
WEB = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web-1"
DB = f"{GROUP}/providers/Microsoft.Sql/servers/sql-1/databases/orders"
T0 = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Data:
    stack: Path
    vms: list[Session]
    """newest first"""
    sql: Session
    connection: str


@pytest.fixture(scope="module")
def catalog_data(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    """A catalog with sessions of two policies and points of a VM and a database; a stack file naming it.

    The catalog's tables are the app's (Azurite is per test session, so the data is this module's)."""
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    sessions = service.get_table_client(SESSIONS_TABLE)
    points = service.get_table_client(POINTS_TABLE)
    catalog = AzureTableCatalog(sessions, points)
    catalog.ensure_tables()
    made: list[Session] = []
    for day in range(3):
        started = T0 + dt.timedelta(days=day)
        session = Session(
            session_id=f"vms@{started:%Y%m%dT%H%M%SZ}",
            policy_id="vms",
            trigger=TriggerKind.SCHEDULE,
            started=started,
            status=Status.FAILED if day == 1 else Status.SUCCESS,
            ended=started + dt.timedelta(minutes=7, seconds=30),
            slot=started,
            image_backup=day == 2,
            reason="1 of 1 VMs failed" if day == 1 else "",
            resources=(
                ResourceResult(
                    WEB,
                    ResourceKind.VM,
                    Status.FAILED if day == 1 else Status.SUCCESS,
                    reason="snapshot of disk os failed: quota" if day == 1 else "",
                    started=started,
                    ended=started + dt.timedelta(minutes=7),
                    bytes_read=(day + 1) * 1024**3,
                    bytes_stored=(day + 1) * 1024**2,
                    snapshot_ids=(f"{GROUP}/providers/Microsoft.Compute/snapshots/web-1-os-{day}",),
                    point_ids=(f"img-{day}",) if day == 2 else (),
                ),
            ),
        )
        catalog.save_session(session)
        kind = PointKind.IMAGE if day == 2 else PointKind.SNAPSHOT
        catalog.add_point(RestorePoint(f"pt-{day}", WEB, kind, started, "vms", session.session_id, size=8 * 1024**3))
        made.append(session)
    sql = Session(
        session_id="sql@run-20261102T120000Z-abc123",
        policy_id="sql",
        trigger=TriggerKind.ON_DEMAND,
        started=T0 + dt.timedelta(days=1, hours=10),
        status=Status.SUCCESS,
        ended=T0 + dt.timedelta(days=1, hours=11),
        resources=(ResourceResult(DB, ResourceKind.SQL_DATABASE, Status.SUCCESS, bytes_read=5000),),
    )
    catalog.save_session(sql)
    catalog.add_point(RestorePoint("bacpac-1", DB, PointKind.BACPAC, sql.started, "sql", sql.session_id, size=5000))
    stack = tmp_path_factory.mktemp("catalog-cli") / "stack.json"
    stack.write_text(json.dumps({"storage_connection_string": azurite.connection_string}))
    yield Data(stack, made[::-1], sql, azurite.connection_string)
    sessions.close()
    points.close()


def bulwark(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    captured = capsys.readouterr()
    return int(ended.value.code or 0), captured.out, captured.err


@pytest.fixture(autouse=True)
def no_location_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BULWARK_LOCAL_STACK", "BULWARK_CATALOG_ENDPOINT", "BULWARK_CATALOG_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)


def test_sessions_of_a_policy_newest_first_with_filters(catalog_data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    stack = str(catalog_data.stack)
    newest, middle, oldest = catalog_data.vms
    code, out, _ = bulwark(capsys, "sessions", "--stack", stack, "--policy", "vms", "--json")
    assert code == 0
    assert json.loads(out) == [to_dict(newest), to_dict(middle), to_dict(oldest)]

    code, out, _ = bulwark(capsys, "sessions", "--stack", stack, "--policy", "vms", "--limit", "1", "--json")
    assert [s["session_id"] for s in json.loads(out)] == [newest.session_id]
    code, out, _ = bulwark(
        capsys, "sessions", "--stack", stack, "--policy", "vms", "--since", "2026-11-02", "--until", "2026-11-03T00:00Z"
    )
    assert code == 0 and middle.session_id in out and newest.session_id not in out and oldest.session_id not in out
    assert "Failed" in out and "7m30s" in out

    code, out, err = bulwark(capsys, "sessions", "--stack", stack, "--policy", "nothing-here")
    assert code == 0 and out == "" and "no sessions of policy 'nothing-here'" in err


def test_sessions_of_every_policy(catalog_data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = bulwark(capsys, "sessions", "--stack", str(catalog_data.stack), "--json")
    assert code == 0
    listed = [(s["policy_id"], s["started"]) for s in json.loads(out)]
    assert [policy for policy, _ in listed] == ["vms", "sql", "vms", "vms"]  # newest first across policies
    assert listed == sorted(listed, key=lambda item: item[1], reverse=True)

    code, out, _ = bulwark(capsys, "sessions", "--stack", str(catalog_data.stack))
    lines = out.splitlines()
    assert lines[0].startswith("STARTED (UTC)") and len(lines) == 5
    assert "sql@run-20261102T120000Z-abc123" in lines[2] and "on_demand" in lines[2]


def test_session_detail(catalog_data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    stack = str(catalog_data.stack)
    newest, middle, _ = catalog_data.vms
    code, out, _ = bulwark(capsys, "session", middle.session_id, "--stack", stack)
    assert code == 0
    assert f"session   {middle.session_id}" in out and "status    Failed: 1 of 1 VMs failed" in out
    assert "web-1" in out and WEB in out and "reason   snapshot of disk os failed: quota" in out
    assert "snapshot " + middle.resources[0].snapshot_ids[0] in out
    assert "read 2.0 GiB, stored 2.0 MiB" in out

    code, out, _ = bulwark(capsys, "session", newest.session_id, "--stack", stack)
    assert "point    img-2" in out and "image-level" in out

    code, out, _ = bulwark(capsys, "session", newest.session_id, "--stack", stack, "--json")
    assert json.loads(out) == to_dict(newest)

    code, _, err = bulwark(capsys, "session", "vms@no-such-session", "--stack", stack)
    assert code == 2 and "No backup session has the id 'vms@no-such-session'" in err
    code, _, err = bulwark(capsys, "session", "bad/id", "--stack", stack)
    assert code == 2 and "SESSION_ID" in err


def test_catalog_points(catalog_data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    stack = str(catalog_data.stack)
    code, out, _ = bulwark(capsys, "points", "--catalog", "--stack", stack, "--resource", WEB, "--json")
    assert code == 0 and [p["point_id"] for p in json.loads(out)] == ["pt-2", "pt-1", "pt-0"]
    code, out, _ = bulwark(capsys, "points", "--stack", stack, "--resource", WEB.upper(), "--kind", "image", "--json")
    assert [p["point_id"] for p in json.loads(out)] == ["pt-2"]  # --resource implies --catalog; ids ignore case

    code, out, _ = bulwark(capsys, "points", "--catalog", "--stack", stack, "--json")
    assert [p["point_id"] for p in json.loads(out)] == ["pt-2", "bacpac-1", "pt-1", "pt-0"]
    code, out, _ = bulwark(capsys, "points", "--stack", stack, "--policy", "sql")
    lines = out.splitlines()
    assert len(lines) == 2 and "bacpac" in lines[1] and "orders" in lines[1] and "4.9 KiB" in lines[1]
    code, out, _ = bulwark(capsys, "points", "--catalog", "--stack", stack, "--kind", "snapshot", "--limit", "1")
    assert len(out.splitlines()) == 2 and "pt-1" in out

    code, _, err = bulwark(capsys, "points", "--catalog", "--stack", stack, "--resource", "web-1")
    assert code == 2 and "--resource" in err


def test_catalog_location_from_the_environment_and_errors(
    catalog_data: Data, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = bulwark(capsys, "sessions")
    assert code == 2 and "no catalog given" in err and "--stack" in err
    code, _, err = bulwark(capsys, "sessions", "--stack", "/no/such/stack.json")
    assert code == 3 and "does not exist" in err
    code, _, err = bulwark(capsys, "sessions", "--table-endpoint", "account.table.core.windows.net")
    assert code == 2 and "is not a URL" in err
    code, _, err = bulwark(capsys, "sessions", "--stack", str(catalog_data.stack), "--policy", "Not_Valid")
    assert code == 2 and "--policy" in err

    monkeypatch.setenv("BULWARK_CATALOG_CONNECTION_STRING", catalog_data.connection)
    code, out, _ = bulwark(capsys, "sessions", "--policy", "sql", "--json")
    assert code == 0 and [s["session_id"] for s in json.loads(out)] == ["sql@run-20261102T120000Z-abc123"]
    monkeypatch.delenv("BULWARK_CATALOG_CONNECTION_STRING")
    monkeypatch.setenv("BULWARK_LOCAL_STACK", str(catalog_data.stack))
    code, out, _ = bulwark(capsys, "session", "sql@run-20261102T120000Z-abc123", "--json")
    assert code == 0 and json.loads(out)["policy_id"] == "sql"


def test_repository_points_still_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULWARK_PASSWORD", f"catalog cli {uuid.uuid4()}")
    repo = str(tmp_path / "repo")
    assert bulwark(capsys, "repo", "init", "--repo", repo)[0] == 0
    code, out, err = bulwark(capsys, "points", "--repo", repo)
    assert code == 0 and "no restore points yet" in err
    code, out, _ = bulwark(capsys, "points", "--repo", repo, "--json")
    assert code == 0 and json.loads(out) == []


def test_help_documents_the_choice_and_start_up_imports_no_azure_sdk() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "points", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--catalog" in help_text and "without --catalog, the points of the repository" in help_text
    probe = (
        "import sys, shared.cli.main as m; m.build_parser(); "
        "print(sorted(n for n in sys.modules if n.startswith(('azure.data', 'azure.identity'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
