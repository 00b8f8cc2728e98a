"""The SQL (BACPAC) slice end to end: the unmodified function app under the local runtime, the local
stack as Azure (the simulator's Microsoft.Sql exports into Azurite), workers as simulated Container
Instances running ``shared.worker`` with job kind ``bacpac-backup``.

Sessions (on demand, snapshot-only for the VM so the test stays fast):

1. ``mixed``: one VM and two databases, direct export -> two BACPAC points;
2. ``mixed`` again after ``sql change`` of one table of ``sales`` -> only that table's chunks are new;
3. ``staged``: ``sales`` via a staging server -> a BACPAC point; the copy and the staging blob are gone;
4. ``broken-staging``: ``hr`` refused by the pre-flight (external references), ``sales`` copied to a
   staging server whose admin password is not the policy's -> the export fails; both Failed with
   reasons, and the staging copy and BACPAC are deleted anyway;
5. ``firewalled``: ``hr`` behind a firewall (direct) -> Failed with the firewall reason.

Every BACPAC point restores (``bulwark restore-bacpac``) with every member identical to the export
(Origin.xml up to its export identity and time); nothing secret reaches history, inputs, outputs,
custom status, HTTP answers or logs; the determinism check passes.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient
from azure.mgmt.sql import SqlManagementClient
from azure.mgmt.sql import models as sm
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas
from bulwark_local.runtime import LocalFunctionsHost
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.bacpac_blobs import BlobBacpacStaging
from shared.azure.clients import AzureClients
from shared.azure.model import STAGING_CONTAINER, BacpacLocation, SasUrl, Secret, SqlLogin
from shared.catalog.model import PointKind
from shared.catalog.table import AzureTableCatalog
from shared.services.worker_jobs import job_id_for
from shared.storage.location import EMULATOR_ACCOUNT as _EMULATOR_ACCOUNT
from shared.storage.location import EMULATOR_KEY as _EMULATOR_KEY
from shared.wiring import POINTS_TABLE, SESSIONS_TABLE
from shared.worker.table_status import DEFAULT_TABLE
from tests.app.harness import (
    assert_no_secrets,
    call,
    determinism_check,
    policy_document,
    running_app,
    store_policy,
    wait_session,
)
from tests.worker.estate import PASSPHRASE, make_estate, make_repository, open_repository, put_resource_group

REPO_ROOT = Path(__file__).resolve().parents[2]
SQL_PASSWORD = "Sql-Admin-Passw0rd-for-tests!"
OTHER_PASSWORD = "Another-Staging-Passw0rd!"
ADMIN = "bulwarkadmin"
CHANGED_TABLE = "dbo.Customers"
BULWARK = str(Path(sys.executable).parent / "bulwark")
CHECK = (sys.executable, "-m", "bulwark_local.runtime.check", "--app", "function_app")


@dataclass
class Scenario:
    stack: Stack
    repository: str
    secret: Path
    work: Path
    vm_id: str
    databases: dict[str, str]
    staging: str
    bad_staging: str
    runtime_state: Path
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    exports: dict[str, bytes] = field(default_factory=dict)
    """A fresh export of each (database, session) right after the session: the reference BACPAC."""
    http_bodies: list[bytes] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


def make_server(sdk: SqlManagementClient, group: str, name: str, location: str, password: str) -> str:
    body = sm.Server(
        location=location,
        properties=sm.ServerProperties(administrator_login=ADMIN, administrator_login_password=password),
    )
    return str(sdk.servers.begin_create_or_update(group, name, body).result().id)


def make_database(
    sdk: SqlManagementClient, admin: AdminClient, group: str, server: str, name: str, preset: str, location: str
) -> str:
    database = sdk.databases.begin_create_or_update(
        group, server, name, sm.Database(location=location, tags={})
    ).result()
    admin.sql_populate(str(database.id), preset=preset)
    return str(database.id)


def export_reference(stack: Stack, clients: AzureClients, database_id: str, name: str) -> bytes:
    """Export ``database_id`` now (as the session did) and return the BACPAC's bytes."""
    with BlobServiceClient.from_connection_string(stack.storage_connection_string) as service:
        container = service.get_container_client("reference-exports")
        if not container.exists():
            container.create_container()
        token = generate_blob_sas(
            _EMULATOR_ACCOUNT,
            "reference-exports",
            name,
            account_key=_EMULATOR_KEY,
            permission=BlobSasPermissions(read=True, write=True, create=True),
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        )
        url = f"{str(service.url).rstrip('/')}/reference-exports/{name}?{token}"
        clients.sql().export_database(
            database_id, destination=BacpacLocation.from_sas(SasUrl(url)), login=SqlLogin(ADMIN, Secret(SQL_PASSWORD))
        )
        data: bytes = container.get_blob_client(name).download_blob().readall()
        container.get_blob_client(name).delete_blob()
    return data


def run(host: LocalFunctionsHost, scenario: Scenario, policy: str) -> dict[str, Any]:
    status, raw = call(f"{host.base_url}/api/policies/{policy}/run", "POST", {"image_level": False})
    scenario.http_bodies.append(raw)
    assert status == 202, raw
    document = wait_session(host, json.loads(raw)["id"], timeout=180)
    scenario.http_bodies.append(json.dumps(document).encode())
    assert document["runtime_status"] == "Completed", document
    output: dict[str, Any] = document["output"]
    output["custom_status"] = document["custom_status"]
    scenario.outputs.setdefault(policy, []).append(output)
    return output


def sql_policy(
    stack: Stack, repository: str, secret: Path, policy_id: str, resources: list[str], **sql: Any
) -> dict[str, Any]:
    document = policy_document(stack, "unused", repository, secret, policy_id)
    document["scope"] = {"kinds": ["sql_database"], "resources": resources}
    document["sql"] = {"retention": {"days": 7}, "login": {"file": str(secret.parent / "sql.password")}, **sql}
    del document["snapshots"], document["image_backup"]
    return document


@pytest.fixture(scope="module")
def scenario(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    work = tmp_path_factory.mktemp("sqlapp")
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    repository, secret = make_repository(work)
    (work / "sql.password").write_text(SQL_PASSWORD + "\n", encoding="utf-8")
    sdk = clients.sql_client()
    suffix = uuid.uuid4().hex[:6]
    group, staging_group = f"sql-{suffix}", f"stage-{suffix}"
    put_resource_group(stack, group)
    put_resource_group(stack, staging_group)
    other = "westeurope" if stack.location.replace(" ", "").lower() == "northeurope" else "northeurope"
    server = make_server(sdk, group, f"sqlsrv-{suffix}", stack.location, SQL_PASSWORD)
    staging = make_server(sdk, staging_group, f"stage-{suffix}", other, SQL_PASSWORD)
    bad_staging = make_server(sdk, staging_group, f"stagebad-{suffix}", other, OTHER_PASSWORD)
    server_name = server.rsplit("/", 1)[-1]
    databases = {
        "sales": make_database(sdk, admin, group, server_name, "sales", "sales", stack.location),
        "hr": make_database(sdk, admin, group, server_name, "hr", "tiny", stack.location),
    }
    mixed = policy_document(stack, estate.vm.resource_group, repository, secret, "mixed")
    mixed["scope"] = {"kinds": ["vm", "sql_database"], "resources": [estate.vm.id, *databases.values()]}
    mixed["sql"] = {"retention": {"days": 7}, "login": {"file": str(work / "sql.password")}}
    store_policy(stack, mixed)
    stage = {"mode": "staging", "staging_region": other}
    store_policy(
        stack, sql_policy(stack, repository, secret, "staged", [databases["sales"]], staging_server=staging, **stage)
    )
    broken = sql_policy(
        stack, repository, secret, "broken-staging", list(databases.values()), staging_server=bad_staging
    )
    broken["sql"].update(stage)
    store_policy(stack, broken)
    store_policy(stack, sql_policy(stack, repository, secret, "firewalled", [databases["hr"]]))
    built = Scenario(stack, repository, secret, work, estate.vm.id, databases, staging, bad_staging, work / "runtime")
    with running_app(stack, work) as (host, book):
        for number in (1, 2):
            if number == 2:
                admin.sql_change(databases["sales"], table=CHANGED_TABLE, rows=20)
            output = run(host, built, "mixed")
            for name, database_id in databases.items():
                built.exports[f"{name}@{output['session_id']}"] = export_reference(
                    stack, clients, database_id, f"{name}-{number}.bacpac"
                )
        output = run(host, built, "staged")
        built.exports[f"sales@{output['session_id']}"] = export_reference(
            stack, clients, databases["sales"], "sales-3.bacpac"
        )
        admin.sql_fail(databases["hr"], "external-references")
        run(host, built, "broken-staging")
        admin.sql_fail(databases["hr"], "none")
        admin.sql_fail(databases["hr"], "firewall")
        run(host, built, "firewalled")
        admin.sql_fail(databases["hr"], "none")
        built.logs = book.lines
    yield built


def resources_of(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in output["resources"]}


def worker_result(stack: Stack, session_id: str, database_id: str) -> dict[str, Any]:
    with TableClient.from_connection_string(stack.storage_connection_string, table_name=DEFAULT_TABLE) as table:
        entity = table.get_entity("job", job_id_for(session_id, database_id))
    assert entity["state"] == "succeeded", dict(entity)
    result: dict[str, Any] = json.loads(entity["result"])
    return result


def test_a_policy_with_a_vm_and_two_databases_backs_up_all_three(scenario: Scenario) -> None:
    for output in scenario.outputs["mixed"]:
        assert output["status"] == "Success", output
        found = resources_of(output)
        assert set(found) == {"web", "sales", "hr"}
        assert found["web"]["resource_id"] == scenario.vm_id
        for name in ("sales", "hr"):
            resource = found[name]
            assert resource["status"] == "Success" and resource["reasons"] == [], resource
            [disk] = resource["disks"]
            assert disk["disk_id"] == scenario.databases[name] and disk["point_id"]
            assert disk["snapshot_id"] == scenario.databases[name]  # direct: the source itself was exported
            assert disk["bytes_read"] > 0
        custom = output["custom_status"]
        assert custom["phase"] == "done: Success" and custom["resources_done"] == custom["resources_total"] == 3


def test_the_second_session_stores_only_the_changed_tables_chunks(scenario: Scenario) -> None:
    first, second = scenario.outputs["mixed"]
    sales = scenario.databases["sales"]
    full = worker_result(scenario.stack, first["session_id"], sales)
    again = worker_result(scenario.stack, second["session_id"], sales)
    assert full["chunks_new"] > 0 and full["bytes_new"] > 1_000_000, full
    assert again["bytes_read"] >= full["bytes_read"] * 0.9  # the whole BACPAC is read...
    # ...but only the changed table (and the export's own metadata: Origin.xml) is new
    reference = zipfile.ZipFile(io.BytesIO(scenario.exports[f"sales@{second['session_id']}"]))
    changed = sum(i.file_size for i in reference.infolist() if i.filename.startswith(f"Data/{CHANGED_TABLE}/"))
    origin = reference.getinfo("Origin.xml").file_size
    assert 0 < again["bytes_new"] <= changed + origin, (again, changed)
    assert again["chunks_new"] < again["chunks"] / 2, again
    hr = worker_result(scenario.stack, second["session_id"], scenario.databases["hr"])
    assert (
        hr["bytes_new"]
        <= zipfile.ZipFile(io.BytesIO(scenario.exports[f"hr@{second['session_id']}"])).getinfo("Origin.xml").file_size
    )


def test_staging_mode_exports_a_copy_and_deletes_it(scenario: Scenario, clients: AzureClients) -> None:
    [output] = scenario.outputs["staged"]
    assert output["status"] == "Success", output
    [resource] = output["resources"]
    [disk] = resource["disks"]
    assert disk["point_id"] and disk["snapshot_id"].lower().startswith(scenario.staging.lower() + "/databases/")
    assert clients.sql().list_databases(scenario.staging) == []  # the copy is gone
    worker = worker_result(scenario.stack, output["session_id"], scenario.databases["sales"])
    assert worker["kind"] == "bacpac" and worker["database_id"] == scenario.databases["sales"]


def test_every_bacpac_point_restores_with_the_exported_members(scenario: Scenario) -> None:
    repo = open_repository(scenario.repository)
    bacpacs = [p for p in repo.list_points() if p.kind == "bacpac"]
    outputs = [*scenario.outputs["mixed"], *scenario.outputs["staged"]]
    made = [(o["session_id"], r) for o in outputs for r in o["resources"] if r["name"] in ("sales", "hr")]
    assert len(bacpacs) == len(made) == 5
    password_file = ("--password-file", str(scenario.secret))
    for session_id, resource in made:
        point_id = resource["disks"][0]["point_id"]
        target = scenario.work / f"{point_id}.bacpac"
        done = subprocess.run(
            [BULWARK, "restore-bacpac", point_id, str(target), *("--repo", scenario.repository), *password_file],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        restored = zipfile.ZipFile(target)
        reference = zipfile.ZipFile(io.BytesIO(scenario.exports[f"{resource['name']}@{session_id}"]))
        assert restored.namelist() == reference.namelist()
        for name in reference.namelist():
            mine, theirs = restored.read(name), reference.read(name)
            if name == "Origin.xml":  # each export has its own identity and time
                mine, theirs = _timeless(mine), _timeless(theirs)
            if name == "DacMetadata.xml":  # an export of a staging copy carries the copy's name
                copy_name = resource["disks"][0]["snapshot_id"].rsplit("/", 1)[-1]
                mine = mine.replace(copy_name.encode(), resource["name"].encode())
            assert mine == theirs, f"{name} of {point_id} differs from the export"
        point = repo.load_point(point_id)
        assert point.source == resource["resource_id"] and point.tags["session"] == session_id


def _timeless(origin: bytes) -> bytes:
    return re.sub(rb"<(Identity|Start|End)>[^<]*</\1>", rb"<\1/>", origin)


def test_catalog_holds_bacpac_points(scenario: Scenario) -> None:
    connection = scenario.stack.storage_connection_string
    with (
        TableClient.from_connection_string(connection, table_name=SESSIONS_TABLE) as sessions,
        TableClient.from_connection_string(connection, table_name=POINTS_TABLE) as points,
    ):
        catalog = AzureTableCatalog(sessions, points)
        recorded = catalog.list_points(scenario.databases["sales"], kind=PointKind.BACPAC)
    sessions_with_points = [o["session_id"] for o in (*scenario.outputs["mixed"], *scenario.outputs["staged"])]
    assert sorted(p.session_id for p in recorded) == sorted(sessions_with_points)
    assert all(p.repository_point_id for p in recorded)


def test_failed_exports_fail_the_database_with_the_reason_and_clean_up(
    scenario: Scenario, clients: AzureClients
) -> None:
    [broken] = scenario.outputs["broken-staging"]
    assert broken["status"] == "Failed"
    found = resources_of(broken)
    hr, sales = found["hr"], found["sales"]
    assert hr["status"] == "Failed" and "cannot be exported to a BACPAC" in hr["reasons"][0]
    assert "SQL71562" in hr["reasons"][0], hr
    assert hr["disks"][0]["snapshot_id"] is None  # refused before any copy was made
    assert sales["status"] == "Failed" and "sign in" in sales["reasons"][0], sales
    copy_id = sales["disks"][0]["snapshot_id"]
    assert copy_id and copy_id.lower().startswith(scenario.bad_staging.lower())  # the copy was made...
    assert clients.sql().list_databases(scenario.bad_staging) == []  # ...and deleted after the failure
    [firewalled] = scenario.outputs["firewalled"]
    [resource] = firewalled["resources"]
    assert firewalled["status"] == "Failed" and resource["status"] == "Failed"
    assert "firewall" in resource["reasons"][0], resource
    staging = BlobBacpacStaging(scenario.stack.storage_connection_string, STAGING_CONTAINER)
    try:
        assert staging.names() == []  # no staging BACPAC is left, from any session
    finally:
        staging.close()
    assert any("cleaned up sales" in line for line in scenario.logs)


def test_no_secret_in_history_status_outputs_http_or_logs(scenario: Scenario) -> None:
    assert_no_secrets(
        runtime_state=scenario.runtime_state,
        http_bodies=scenario.http_bodies,
        logs=scenario.logs,
        stack_state=Path(scenario.stack.state_dir),
        secrets=[PASSPHRASE, SQL_PASSWORD, OTHER_PASSWORD, _EMULATOR_KEY],
    )


def test_every_orchestrator_passes_the_determinism_check(scenario: Scenario) -> None:
    report = determinism_check(scenario.runtime_state)
    scanned = int(report.split(" orchestrators scanned")[0].split()[-1])  # every registered one (restores too)
    assert scanned >= 3 and "0 findings" in report, report
