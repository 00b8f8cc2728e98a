"""The SQL adapter against the simulator's Microsoft.Sql; BACPACs land in Azurite."""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from azure.mgmt.sql import SqlManagementClient
from azure.mgmt.sql import models as sm
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas
from bulwark_local.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient

from shared.azure.clients import AzureClients
from shared.azure.model import (
    BacpacLocation,
    ExportResult,
    ImportExportOperation,
    SasUrl,
    Secret,
    Selection,
    SqlDatabaseInfo,
    SqlLogin,
)
from shared.azure.sql import AzureSql
from shared.azure.sql_catalog import DbApiCatalogProbe, SimulatorCatalogProbe
from shared.core.errors import (
    AzureAuthError,
    AzureResourceNotFoundError,
    ResourceGroupNotFoundError,
    SourceError,
    SqlExportFailedError,
    SqlExportRefusedError,
    UsageError,
)

from .conftest import LOCATION, SUBSCRIPTION, make_group

LOGIN = SqlLogin("bulwarkadmin", Secret("Sim-Passw0rd!"))
STAGING_LOCATION = "northeurope"


@pytest.fixture(scope="module")
def sql(clients: AzureClients) -> AzureSql:
    return clients.sql()


@pytest.fixture(scope="module")
def sql_sdk(clients: AzureClients) -> SqlManagementClient:
    return clients.sql_client()


@pytest.fixture(scope="module")
def container(azurite: Azurite) -> Iterator[str]:
    name = f"bacpacs-{uuid.uuid4().hex[:6]}"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.create_container(name)
    yield name


@pytest.fixture(scope="module")
def probe(sim: SimulatorEndpoints) -> SimulatorCatalogProbe:
    return SimulatorCatalogProbe(sim.admin, sim.ca_bundle)


def bacpac_location(azurite: Azurite, container: str, name: str) -> BacpacLocation:
    token = generate_blob_sas(
        ACCOUNT_NAME,
        container,
        name,
        account_key=ACCOUNT_KEY,
        permission=BlobSasPermissions(read=True, write=True, create=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    return BacpacLocation.from_sas(SasUrl(f"{azurite.blob_endpoint}/{container}/{name}?{token}"))


def make_server(sdk: SqlManagementClient, group: str, name: str, location: str = LOCATION, **tags: str) -> str:
    body = sm.Server(
        location=location,
        tags=tags,
        properties=sm.ServerProperties(
            administrator_login=LOGIN.login, administrator_login_password=LOGIN.password.reveal()
        ),
    )
    return str(sdk.servers.begin_create_or_update(group, name, body).result().id)


def make_database(sdk: SqlManagementClient, admin: AdminClient, group: str, server: str, name: str, **tags: str) -> str:
    body = sm.Database(location=LOCATION, tags=tags)
    database = sdk.databases.begin_create_or_update(group, server, name, body).result()
    admin.sql_populate(database.id, preset="tiny")
    return str(database.id)


@pytest.fixture(scope="module")
def estate(sim: SimulatorEndpoints, sql_sdk: SqlManagementClient, admin: AdminClient) -> dict[str, Any]:
    """A server with two user databases (and master), a staging server in another region."""
    group, staging_group = make_group(sim, "sql"), make_group(sim, "staging")
    suffix = uuid.uuid4().hex[:6]
    server = make_server(sql_sdk, group, f"sql-{suffix}", team="data")
    staging = make_server(sql_sdk, staging_group, f"stage-{suffix}", STAGING_LOCATION)
    server_name = server.rsplit("/", 1)[-1]
    sales = make_database(sql_sdk, admin, group, server_name, "sales", tier="gold")
    hr = make_database(sql_sdk, admin, group, server_name, "hr", backup="off")
    return {"group": group, "server": server, "staging": staging, "sales": sales, "hr": hr}


def test_discovery_skips_master_and_honours_selection(sql: AzureSql, estate: dict[str, Any]) -> None:
    assert [d.name for d in sql.list_databases(estate["server"])] == ["hr", "sales"]
    with_system = sql.list_databases(estate["server"], include_system=True)
    assert [(d.name, d.is_system) for d in with_system] == [("hr", False), ("master", True), ("sales", False)]
    sales = sql.get_database(estate["sales"])
    assert sales.server_id.lower() == estate["server"].lower() and sales.location == LOCATION
    assert sales.status == "Online" and sales.tags == {"tier": "gold"} and not sales.is_system

    def names(selection: Selection) -> list[str]:
        return [d.name for d in sql.discover(selection)]

    group = estate["group"]
    assert names(Selection(resource_groups=(group,))) == ["hr", "sales"]
    assert names(Selection(resource_groups=(group,), exclude_tags={"backup": "off"})) == ["sales"]
    assert names(Selection(resource_groups=(group,), tags={"tier": "gold"})) == ["sales"]
    assert names(Selection(resource_groups=(group,), tags={"team": "data"})) == ["hr", "sales"]  # server tags
    assert names(Selection(vm_ids=(estate["server"],))) == ["hr", "sales"]
    assert names(Selection(vm_ids=(estate["hr"],))) == ["hr"]
    assert names(Selection(vm_ids=(estate["server"],), exclude_ids=(estate["hr"],))) == ["sales"]
    with pytest.raises(UsageError, match="system database"):
        sql.discover(Selection(vm_ids=(f"{estate['server']}/databases/master",)))


def test_unknown_ids_and_groups_are_typed(sql: AzureSql, estate: dict[str, Any]) -> None:
    with pytest.raises(ResourceGroupNotFoundError, match="nope-group") as no_group:
        sql.list_servers("nope-group")
    assert "az group create" in str(no_group.value) and no_group.value.hint  # says what to do
    with pytest.raises(AzureResourceNotFoundError, match="ghost") as no_database:
        sql.get_database(f"{estate['server']}/databases/ghost")
    assert not isinstance(no_database.value, ResourceGroupNotFoundError)
    assert "check the id" in str(no_database.value) and "az resource show" in (no_database.value.hint or "")
    with pytest.raises(AzureResourceNotFoundError) as no_server:
        sql.get_server(estate["server"] + "x")
    assert "check the id" in str(no_server.value)


def test_preflight_refuses_what_bacpac_cannot_export(
    sql: AzureSql, estate: dict[str, Any], admin: AdminClient, probe: SimulatorCatalogProbe
) -> None:
    hr = sql.get_database(estate["hr"])
    size = sql.preflight_export(hr, probe.probe(hr))
    assert size is not None and size > 0
    admin.sql_set_catalog(
        hr.id,
        externalReferences=[
            {"referencingObject": "[dbo].[vArchive]", "referencingType": "VIEW", "referencedServer": None,
             "referencedDatabase": "ArchiveDb", "referencedSchema": "dbo", "referencedEntity": "Orders"}
        ],
        unsupportedPrincipals=[
            {"name": "CONTOSO\\ops", "type": "WINDOWS_GROUP", "authenticationType": "WINDOWS"}
        ],
    )  # fmt: skip
    try:
        with pytest.raises(SqlExportRefusedError) as refused:
            sql.preflight_export(hr, probe.probe(hr))
        message = str(refused.value)
        assert "[dbo].[vArchive] -> ArchiveDb.dbo.Orders" in message and "SQL71562" in message
        assert "CONTOSO\\ops" in message and "SQL71564" in message
        assert "cross-database references" in (refused.value.hint or "")
    finally:
        admin.sql_set_catalog(hr.id, externalReferences=[], unsupportedPrincipals=[])
    admin.sql_set_catalog(hr.id, reportedSizeBytes=250 * 1024**3)
    try:
        with pytest.raises(SqlExportRefusedError, match="200 GB"):
            sql.preflight_export(hr, probe.probe(hr))
    finally:
        admin.sql_set_catalog(hr.id, reportedSizeBytes=None)
    master = next(d for d in sql.list_databases(estate["server"], include_system=True) if d.is_system)
    with pytest.raises(SqlExportRefusedError, match="system database"):
        sql.preflight_export(master, probe.probe(master))


def test_copy_to_staging_export_import_delete(
    sql: AzureSql,
    estate: dict[str, Any],
    azurite: Azurite,
    container: str,
    probe: SimulatorCatalogProbe,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sales = sql.get_database(estate["sales"])
    copy = sql.copy_database(sales, server_id=estate["staging"], name="sales-copy", tags={"bulwark-session": "s1"})
    assert copy.location == STAGING_LOCATION and copy.server_id.lower() == estate["staging"].lower()
    sql.preflight_export(copy, probe.probe(copy))
    destination = bacpac_location(azurite, container, "sales-s1.bacpac")
    result = sql.export_database(copy.id, destination=destination, login=LOGIN)
    assert result.status == "Completed" and result.blob_uri == destination.uri
    sql.delete_database(copy.id)
    sql.delete_database(copy.id)  # already gone: fine
    assert [d.name for d in sql.list_databases(estate["staging"])] == []

    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        package_bytes = service.get_blob_client(container, "sales-s1.bacpac").download_blob().readall()
    with zipfile.ZipFile(io.BytesIO(package_bytes)) as package:
        assert {"model.xml", "Origin.xml"} <= set(package.namelist())

    imported = sql.import_database(estate["staging"], name="sales-restored", source=destination, login=LOGIN)
    assert imported.name == "sales-restored" and imported.status == "Online"
    sql.delete_database(imported.id)
    with pytest.raises(UsageError):
        sql.delete_database(f"{estate['server']}/databases/master")
    secrets = (LOGIN.password.reveal(), destination.key.reveal().lstrip("?"))
    for secret in secrets:
        assert secret not in caplog.text


def test_export_failures_say_what_to_do(
    sql: AzureSql,
    estate: dict[str, Any],
    azurite: Azurite,
    container: str,
    admin: AdminClient,
) -> None:
    hr = estate["hr"]
    destination = bacpac_location(azurite, container, "hr.bacpac")
    wrong = SqlLogin(LOGIN.login, Secret("not-the-password"))
    with pytest.raises(AzureAuthError, match="administrator login") as login_failed:
        sql.export_database(hr, destination=destination, login=wrong)
    assert "not-the-password" not in str(login_failed.value)
    cases: list[tuple[str, type[Exception], str]] = [
        ("external-references", SqlExportRefusedError, "SQL71562"),
        ("unsupported-logins", SqlExportRefusedError, "SQL71564"),
        ("firewall", SqlExportFailedError, "Allow Azure services"),
        ("gateway-timeout", SqlExportFailedError, "Allow Azure services"),
    ]
    try:
        for mode, kind, text in cases:
            admin.sql_fail(hr, "none")  # modes accumulate in the simulator
            admin.sql_fail(hr, mode)
            with pytest.raises(kind) as caught:
                sql.export_database(hr, destination=destination, login=LOGIN)
            assert text in str(caught.value), mode
            assert destination.key.reveal().lstrip("?") not in str(caught.value)
    finally:
        admin.sql_fail(hr, "none")


def test_export_over_twenty_hours_is_cancelled(
    sql: AzureSql, estate: dict[str, Any], azurite: Azurite, container: str, admin: AdminClient
) -> None:
    hr = estate["hr"]
    admin.sql_fail(hr, "timeout")
    outcome: list[BaseException] = []

    def export() -> None:
        try:
            sql.export_database(hr, destination=bacpac_location(azurite, container, "slow.bacpac"), login=LOGIN)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=export)
    try:
        worker.start()
        worker.join(1.0)
        assert worker.is_alive()  # the service reports InProgress
        admin.advance_clock(21 * 3600)
        worker.join(30)
    finally:
        admin.sql_fail(hr, "none")
    assert not worker.is_alive() and len(outcome) == 1
    assert isinstance(outcome[0], SqlExportFailedError) and "20-hour" in str(outcome[0])


class FakeCursor:
    def __init__(self, answers: list[list[tuple[Any, ...]]]) -> None:
        self.answers = answers
        self.queries: list[str] = []

    def execute(self, operation: str, /) -> None:
        self.queries.append(operation)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.answers.pop(0)

    def close(self) -> None:
        pass


class FakeConnection:
    def __init__(self, cursor: FakeCursor) -> None:
        self._cursor = cursor
        self.closed = False

    def cursor(self) -> FakeCursor:
        return self._cursor

    def close(self) -> None:
        self.closed = True


def test_tsql_probe_reads_references_principals_and_size() -> None:
    cursor = FakeCursor(
        [
            [
                ("[dbo].[vOld]", "VIEW", None, "Archive", "dbo", "Orders"),
                ("[dbo].[syn]", "SYNONYM", "srv2", "X", "s", "T"),
            ],
            [("CONTOSO\\ops", "WINDOWS_GROUP", "WINDOWS")],
            [(123456,)],
        ]
    )
    connection = FakeConnection(cursor)
    database = SqlDatabaseInfo(
        id=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/g/providers/Microsoft.Sql/servers/s/databases/d",
        name="d", server_id="", server_name="s", resource_group="g", location=LOCATION, status="Online",
        sku=None, tier=None, max_size_bytes=None, is_system=False,
    )  # fmt: skip
    catalog = DbApiCatalogProbe(lambda db: connection).probe(database)
    assert [r.describe() for r in catalog.external_references] == [
        "view [dbo].[vOld] -> Archive.dbo.Orders",
        "synonym [dbo].[syn] -> srv2.X.s.T",
    ]
    assert catalog.unsupported_principals[0].authentication_type == "WINDOWS" and catalog.size_bytes == 123456
    assert connection.closed and "sys.sql_expression_dependencies" in cursor.queries[0]

    def refuse(db: SqlDatabaseInfo) -> FakeConnection:
        raise OSError("login timeout; Password=hunter2")

    with pytest.raises(SourceError, match="firewall") as failed:
        DbApiCatalogProbe(refuse).probe(database)
    assert "hunter2" not in str(failed.value) and failed.value.__cause__ is None


def follow(sql: AzureSql, operation: ImportExportOperation, database_id: str, *, polls: int = 50) -> ExportResult:
    for _ in range(polls):
        result = sql.export_status(operation, database_id)
        if result is not None:
            return result
        time.sleep(0.1)
    raise AssertionError("the export did not finish")


def test_a_started_export_is_followed_by_polling_and_fails_with_the_same_messages(
    sql: AzureSql, estate: dict[str, Any], azurite: Azurite, container: str, admin: AdminClient
) -> None:
    hr = estate["hr"]
    destination = bacpac_location(azurite, container, "hr-polled.bacpac")
    operation = sql.start_export(hr, destination=destination, login=LOGIN)
    assert operation.result is None and "/importExportAzureAsyncOperation/" in operation.status_url
    assert LOGIN.password.reveal() not in operation.status_url + operation.result_url
    result = follow(sql, operation, hr)
    assert result.status == "Completed" and result.blob_uri == destination.uri

    admin.sql_fail(hr, "timeout")
    offset = float(admin.settings()["clock_offset_seconds"])
    try:
        slow = sql.start_export(hr, destination=bacpac_location(azurite, container, "slow2.bacpac"), login=LOGIN)
        assert sql.export_status(slow, hr) is None  # still running: the caller waits on its own timer
        admin.advance_clock(21 * 3600)
        with pytest.raises(SqlExportFailedError, match="20-hour"):
            follow(sql, slow, hr)
    finally:
        admin.sql_fail(hr, "none")
        admin.settings(clock_offset_seconds=offset)  # later tests share this simulator
    admin.sql_fail(hr, "external-references")
    try:
        refused = sql.start_export(hr, destination=destination, login=LOGIN)
        with pytest.raises(SqlExportRefusedError, match="SQL71562"):
            follow(sql, refused, hr)
    finally:
        admin.sql_fail(hr, "none")


def test_a_started_import_is_followed_to_its_database(
    sql: AzureSql, estate: dict[str, Any], azurite: Azurite, container: str
) -> None:
    destination = bacpac_location(azurite, container, "for-import.bacpac")
    follow(sql, sql.start_export(estate["sales"], destination=destination, login=LOGIN), estate["sales"])
    operation = sql.start_import(estate["staging"], name="sales-polled", source=destination, login=LOGIN)
    assert LOGIN.password.reveal() not in operation.status_url + operation.result_url
    for _ in range(50):
        database = sql.import_status(operation, estate["staging"], "sales-polled")
        if database is not None:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the import did not finish")
    assert database.name == "sales-polled" and database.status == "Online"
    sql.delete_database(database.id)
