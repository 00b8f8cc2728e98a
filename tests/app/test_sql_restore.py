"""SQL restore and BACPAC browsing end to end: the unmodified function app under the local runtime,
the local stack as Azure (the simulator's Microsoft.Sql imports from Azurite), ``bacpac-restore``
workers as simulated Container Instances.

The repository holds AdventureWorksLT.bacpac (../shared/fixtures) as a BACPAC point, which the
catalog records as a point of database ``sales``. Through the HTTP API:

1. restore it as ``aw-restored``: the database exists with AdventureWorksLT's tables and rows, the
   staging blob is gone;
2. the same name again without confirmation: 400 naming the field, nothing started or created;
3. ``swap_with_original`` without ``confirm``: 400; with it: the restored database is ``sales``, the
   old one ``sales-old-<time>``;
4. a damaged point (a repository whose pack was overwritten): the restore fails with the reason,
   no database and no staging blob are left;
5. browse: the point's tables with row counts that add up to Origin.xml's total; unknown points 404.

Also: the BACPAC the worker rebuilds equals the fixture member by member; no secret in history,
custom status, HTTP answers or logs; the determinism check passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bulwark_local.runtime import LocalFunctionsHost
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.bacpac_blobs import BlobBacpacStaging
from shared.azure.clients import AzureClients
from shared.catalog.model import PointKind
from shared.core.errors import AzureResourceNotFoundError
from shared.services.bacpac_restore import rebuild_bacpac
from shared.storage.location import EMULATOR_KEY
from tests.app.harness import (
    KEY,
    assert_no_secrets,
    call,
    determinism_check,
    policy_document,
    running_app,
    store_policy,
)
from tests.app.points import BULWARK, record_point, store_bacpac
from tests.app.test_sql_backup_session import make_database, make_server
from tests.fileset.bacpacs import copy_with
from tests.support.shared_fixtures import ADVENTURE_WORKS_BACPAC
from tests.worker.estate import PASSPHRASE, make_repository, open_repository, put_resource_group

SQL_PASSWORD = "Sql-Restore-Passw0rd-for-tests!"
POINT = "bak-restore-test-aw"


@dataclass
class Scenario:
    stack: Stack
    work: Path
    repository: str
    point_id: str
    server: str
    sales: str
    runtime_state: Path
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    cli: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    http_bodies: list[bytes] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


def _store_cut_bacpac(location: str, work: Path) -> str:
    """AdventureWorksLT with SalesOrderHeader's data cut mid-row: a valid package (Origin.xml only
    checksums model.xml) that the import service fails on half-way, after creating the database."""
    member = "Data/SalesLT.SalesOrderHeader/TableData-000-00000.BCP"
    with zipfile.ZipFile(ADVENTURE_WORKS_BACPAC) as original:
        cut = original.read(member)[:3001]
    path = copy_with(ADVENTURE_WORKS_BACPAC, work / "cut.bacpac", {member: cut})
    return store_bacpac(location, path, "adventureworks-cut")


def _damage(location: str) -> None:
    """Overwrite the middle of every pack: a chunk fails its authentication on restore."""
    for pack in (Path(location) / "packs").rglob("*"):
        if pack.is_file():
            data = bytearray(pack.read_bytes())
            middle = len(data) // 2
            data[middle : middle + 64] = bytes(64)
            pack.chmod(0o644)
            pack.write_bytes(bytes(data))


def _post(host: LocalFunctionsHost, scenario: Scenario, label: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, raw = call(f"{host.base_url}/api/restores/sql", "POST", body)
    scenario.http_bodies.append(raw)
    answer = (status, json.loads(raw))
    scenario.answers[label] = answer
    return answer


def _restore(host: LocalFunctionsHost, scenario: Scenario, label: str, body: dict[str, Any]) -> None:
    """Start a restore that must be accepted, and wait for it to complete."""
    status, answer = _post(host, scenario, label, body)
    assert status == 202, answer
    _wait(scenario, label, answer)


def _wait(scenario: Scenario, label: str, answer: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, raw = call(answer["statusQueryGetUri"], key=None)
        scenario.http_bodies.append(raw)
        assert status in (200, 202), raw
        document: dict[str, Any] = json.loads(raw)
        if document["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            assert document["runtimeStatus"] == "Completed", document
            scenario.outputs[label] = document
            return document
        assert time.monotonic() < deadline, document
        time.sleep(0.5)


@pytest.fixture(scope="module")
def scenario(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    if not ADVENTURE_WORKS_BACPAC.exists():
        pytest.skip(f"the AdventureWorksLT fixture is not there ({ADVENTURE_WORKS_BACPAC}): ../shared is absent")
    work = tmp_path_factory.mktemp("sqlrestore")
    repository, secret = make_repository(work)
    point_id = store_bacpac(repository, ADVENTURE_WORKS_BACPAC, "adventureworks")
    cut_point = _store_cut_bacpac(repository, work)
    damaged_root = work / "damaged"
    damaged_root.mkdir()
    damaged, damaged_secret = make_repository(damaged_root)
    damaged_point = store_bacpac(damaged, ADVENTURE_WORKS_BACPAC, "adventureworks")
    _damage(damaged)
    password = work / "sql.password"
    password.write_text(SQL_PASSWORD + "\n", encoding="utf-8")

    suffix = uuid.uuid4().hex[:6]
    group = f"restore-{suffix}"
    put_resource_group(stack, group)
    sdk = clients.sql_client()
    server = make_server(sdk, group, f"rsrv-{suffix}", stack.location, SQL_PASSWORD)
    sales = make_database(sdk, admin, group, server.rsplit("/", 1)[-1], "sales", "tiny", stack.location)

    policy = policy_document(stack, group, repository, secret, "restore-policy")
    policy["scope"] = {"kinds": ["sql_database"], "resources": [sales]}
    policy["sql"] = {"retention": {"days": 7}, "login": {"file": str(password)}}
    del policy["snapshots"], policy["image_backup"]
    store_policy(stack, policy)
    record_point(stack, POINT, sales, PointKind.BACPAC, policy_id="restore-policy", repository_point_id=point_id)

    built = Scenario(stack, work, repository, point_id, server, sales, work / "runtime")
    with running_app(stack, work) as (host, book):
        base = {"point": POINT, "server": server}
        _restore(host, built, "new", {**base, "name": "aw-restored"})
        _post(host, built, "taken", {**base, "name": "aw-restored"})
        _post(host, built, "unconfirmed swap", {**base, "name": "sales-new", "swap_with_original": True})
        _restore(host, built, "swap", {**base, "name": "sales-new", "swap_with_original": True, "confirm": True})

        def naming_its_repository(point: str, name: str, location: str, passphrase: Path) -> dict[str, Any]:
            """A request that names the repository and login itself instead of taking the policy's."""
            own = {"location": location, "passphrase": {"file": str(passphrase)}}
            return {"point": point, "server": server, "name": name, "repository": own, "login": {"file": str(password)}}

        _restore(host, built, "damaged", naming_its_repository(damaged_point, "aw-damaged", damaged, damaged_secret))
        _restore(host, built, "half", naming_its_repository(cut_point, "aw-half", repository, secret))
        _post(host, built, "unknown", {**base, "point": "bak-no-such-point", "name": "x"})
        _post(host, built, "bad body", {"point": 7, "server": server, "confirm": "yes", "password": "x"})
        for label, name in (("cli", "aw-cli"), ("cli taken", "aw-cli")):
            built.cli[label] = subprocess.run(
                [BULWARK, "restore", "sql", POINT, "--server", server, "--name", name, "--app", host.base_url],
                env={**os.environ, "BULWARK_FUNCTION_KEY": KEY},
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
        for label, path in (("contents", f"points/{POINT}/contents"), ("missing", "points/bak-none/contents")):
            status, raw = call(f"{host.base_url}/api/{path}")
            built.http_bodies.append(raw)
            built.answers[label] = (status, json.loads(raw))
        built.logs = book.lines
    yield built


def _tables(clients: AzureClients, admin: AdminClient, database_id: str) -> dict[str, int | None]:
    catalog = admin.sql_catalog(clients.sql().get_database(database_id).id)
    return {f"{t['schema']}.{t['name']}": t["rows"] for t in catalog["tables"]}


def test_the_rebuilt_bacpac_equals_the_fixture_member_by_member(scenario: Scenario, tmp_path: Path) -> None:
    repo = open_repository(scenario.repository)
    target = tmp_path / "rebuilt.bacpac"
    rebuild_bacpac(repo, repo.load_point(scenario.point_id), target)
    with zipfile.ZipFile(target) as rebuilt, zipfile.ZipFile(ADVENTURE_WORKS_BACPAC) as original:
        assert rebuilt.namelist() == original.namelist()
        for name in original.namelist():
            assert rebuilt.read(name) == original.read(name), name


def test_a_point_restores_into_a_new_database(scenario: Scenario, clients: AzureClients, admin: AdminClient) -> None:
    output = scenario.outputs["new"]["output"]
    assert output["status"] == "Success", output
    assert output["name"] == "aw-restored" and output["repository_point_id"] == scenario.point_id
    assert output["database_id"].lower() == f"{scenario.server}/databases/aw-restored".lower()
    tables = _tables(clients, admin, output["database_id"])
    # the simulator counts rows of tables without decimal columns only
    assert tables["SalesLT.Address"] == 450 and tables["SalesLT.Customer"] == 847, tables
    assert scenario.outputs["new"]["customStatus"]["phase"] == "done: Success"


def test_an_existing_name_without_confirmation_is_refused_and_nothing_is_made(
    scenario: Scenario, clients: AzureClients
) -> None:
    status, answer = scenario.answers["taken"]
    assert status == 400, answer
    [problem] = answer["error"]["problems"]
    assert problem["path"] == "name" and "exists" in problem["message"] and "confirm" in problem["fix"], problem
    status, answer = scenario.answers["unconfirmed swap"]
    assert status == 400 and answer["error"]["problems"][0]["path"] == "confirm", answer
    names = sorted(d.name for d in clients.sql().list_databases(scenario.server))
    assert {"aw-restored", "sales"} <= set(names) and not any(n.startswith("sales-new") for n in names), names


def test_swap_with_original_puts_the_restored_database_under_the_original_name(
    scenario: Scenario, clients: AzureClients, admin: AdminClient
) -> None:
    output = scenario.outputs["swap"]["output"]
    assert output["status"] == "Success", output
    assert output["name"] == "sales" and output["database_id"].lower() == scenario.sales.lower()
    assert output["aside_id"].rsplit("/", 1)[-1].startswith("sales-old-"), output
    assert _tables(clients, admin, scenario.sales)["SalesLT.Customer"] == 847  # the restored one
    aside = _tables(clients, admin, output["aside_id"])
    assert "SalesLT.Product" not in aside and aside  # the original, renamed aside


def test_a_damaged_point_fails_clearly_and_leaves_nothing(scenario: Scenario, clients: AzureClients) -> None:
    output = scenario.outputs["damaged"]["output"]
    assert output["status"] == "Failed", output
    assert "rebuilding the BACPAC from the repository failed" in output["reasons"][0], output
    with pytest.raises(AzureResourceNotFoundError):
        clients.sql().get_database(f"{scenario.server}/databases/aw-damaged")
    staging = BlobBacpacStaging(scenario.stack.storage_connection_string)
    try:
        assert [n for n in staging.names() if n.startswith("restore/")] == []
    finally:
        staging.close()
    assert any("cleaned up" in line for line in scenario.logs)


def test_a_failed_import_deletes_the_half_imported_database(scenario: Scenario, clients: AzureClients) -> None:
    output = scenario.outputs["half"]["output"]
    assert output["status"] == "Failed", output
    assert "the import into 'aw-half' failed" in output["reasons"][0] and "SalesOrderHeader" in output["reasons"][0]
    with pytest.raises(AzureResourceNotFoundError):
        clients.sql().get_database(f"{scenario.server}/databases/aw-half")
    assert any("cleaned up" in line and "databases/aw-half" in line for line in scenario.logs)


def test_bad_requests_get_field_level_400s_and_unknown_points_404(scenario: Scenario) -> None:
    status, answer = scenario.answers["unknown"]
    assert status == 404 and "bak-no-such-point" in answer["error"]["message"], answer
    status, answer = scenario.answers["bad body"]
    assert status == 400, answer
    paths = {p["path"] for p in answer["error"]["problems"]}
    assert paths == {"password", "point", "name", "confirm"}, answer
    assert scenario.answers["missing"][0] == 404


def test_the_cli_restores_through_the_app_and_refuses_a_taken_name(scenario: Scenario, clients: AzureClients) -> None:
    done = scenario.cli["cli"]
    assert done.returncode == 0, done.stderr
    assert "restored into" in done.stderr and "done: Success" in done.stderr, done.stderr
    assert clients.sql().get_database(f"{scenario.server}/databases/aw-cli").name == "aw-cli"
    refused = scenario.cli["cli taken"]
    assert refused.returncode == 2 and "exists" in refused.stderr and "--yes" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_browse_lists_the_tables_with_row_counts(scenario: Scenario) -> None:
    status, answer = scenario.answers["contents"]
    assert status == 200, answer
    tables = {f"{t['schema']}.{t['name']}": t for t in answer["tables"]}
    assert len(tables) == 12 and answer["total_rows"] == 4277
    assert tables["SalesLT.Address"]["rows"] == 450 and tables["dbo.ErrorLog"]["rows"] == 0
    assert sum(t["rows"] for t in tables.values()) == 4277
    assert answer["point"]["repository_point_id"] == scenario.point_id


def test_no_secret_in_history_status_http_or_logs(scenario: Scenario) -> None:
    assert_no_secrets(
        runtime_state=scenario.runtime_state,
        http_bodies=scenario.http_bodies,
        logs=scenario.logs,
        stack_state=Path(scenario.stack.state_dir),
        secrets=[PASSPHRASE, SQL_PASSWORD, EMULATOR_KEY],
        worker_marker="rebuilt point",
    )


def test_the_restore_orchestrator_passes_the_determinism_check(scenario: Scenario) -> None:
    report = determinism_check(scenario.runtime_state)
    replayed = int(report.split(" histories replayed")[0].split()[-1])
    assert replayed >= 4 and "0 findings" in report, report  # the restores' own histories replay the same
