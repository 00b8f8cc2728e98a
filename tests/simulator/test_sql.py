"""Microsoft.Sql through the real azure-mgmt-sql client; BACPAC exports land in Azurite."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import uuid
import zipfile
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.sql import SqlManagementClient
from azure.mgmt.sql import models as sm
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas
from bulwark_local.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.bacpac import origin_checksum
from bulwark_local.simulator.client import AdminClient

from tests.support.shared_fixtures import ADVENTURE_WORKS_BACPAC

from .conftest import LOCATION, SUBSCRIPTION, StaticToken, arm_call

LOGIN = "bulwarkadmin"
PASSWORD = "Sim-Passw0rd!"
STAGING_LOCATION = "northeurope"
FIXTURE_BACPAC = ADVENTURE_WORKS_BACPAC


@pytest.fixture(scope="module")
def sql(sim: SimulatorEndpoints) -> SqlManagementClient:
    return SqlManagementClient(
        StaticToken(), SUBSCRIPTION, base_url=sim.arm, polling_interval=0, connection_verify=sim.ca_bundle
    )


@pytest.fixture(scope="module")
def blobs(azurite: Azurite) -> Iterator[tuple[Azurite, str]]:
    """A container in Azurite for BACPACs."""
    container = f"bacpacs-{uuid.uuid4().hex[:6]}"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(container)
    yield azurite, container


def make_server(sql: SqlManagementClient, rg: str, name: str, location: str = LOCATION) -> sm.Server:
    body = sm.Server(location=location, administrator_login=LOGIN, administrator_login_password=PASSWORD)
    return sql.servers.begin_create_or_update(rg, name, body).result()


def make_database(
    sql: SqlManagementClient, admin: AdminClient, rg: str, server: str, name: str, preset: str | None = "tiny"
) -> sm.Database:
    database = sql.databases.begin_create_or_update(rg, server, name, sm.Database(location=LOCATION)).result()
    if preset:
        admin.sql_populate(database.id, preset=preset)
    return database


def export_definition(uri: str, key: str, key_type: str = "StorageAccessKey", password: str = PASSWORD) -> object:
    return sm.ExportDatabaseDefinition(
        storage_key_type=key_type,
        storage_key=key,
        storage_uri=uri,
        administrator_login=LOGIN,
        administrator_login_password=password,
        authentication_type="Sql",
    )


def download(azurite: Azurite, container: str, name: str) -> bytes:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    data: bytes = service.get_blob_client(container, name).download_blob().readall()
    return data


def members(package: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def sas_for(container: str, name: str, **permissions: bool) -> str:
    return generate_blob_sas(
        ACCOUNT_NAME,
        container,
        name,
        account_key=ACCOUNT_KEY,
        permission=BlobSasPermissions(**permissions),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )


def test_servers_and_databases_as_the_sdk_reads_them(
    sql: SqlManagementClient, admin: AdminClient, resource_group: str
) -> None:
    server = make_server(sql, resource_group, "srv-list")
    assert server.state == "Ready" and server.location == LOCATION and server.administrator_login == LOGIN
    assert server.fully_qualified_domain_name == "srv-list.database.windows.net"
    make_database(sql, admin, resource_group, "srv-list", "appdb", preset=None)
    databases = {d.name: d for d in sql.databases.list_by_server(resource_group, "srv-list")}
    assert set(databases) == {"master", "appdb"}
    master = databases["master"]
    assert master.kind == "v12.0,system" and master.sku.name == "System" and master.managed_by == server.id
    database = sql.databases.get(resource_group, "srv-list", "appdb")
    assert database.kind == "v12.0,user" and database.status == "Online" and database.location == LOCATION
    assert database.sku.name == "Standard" and database.current_service_objective_name == "S0"
    assert database.max_size_bytes == 250 * 1024**3 and database.creation_date and database.database_id
    assert [s.name for s in sql.servers.list_by_resource_group(resource_group)] == ["srv-list"]
    assert "srv-list" in {s.name for s in sql.servers.list()}
    with pytest.raises(ResourceNotFoundError):
        sql.databases.get(resource_group, "srv-list", "nope")
    with pytest.raises(ResourceNotFoundError):
        sql.servers.get(resource_group, "nope")
    vcore = sql.databases.begin_create_or_update(
        resource_group, "srv-list", "vcore", sm.Database(location=LOCATION, sku=sm.Sku(name="GP_Gen5_2"))
    ).result()
    assert vcore.sku.tier == "GeneralPurpose" and vcore.sku.capacity == 2
    assert vcore.current_service_objective_name == "GP_Gen5_2"


def test_copy_onto_a_staging_server_in_another_region(
    sql: SqlManagementClient, admin: AdminClient, resource_group: str
) -> None:
    make_server(sql, resource_group, "srv-src")
    make_server(sql, resource_group, "srv-staging", STAGING_LOCATION)
    source = make_database(sql, admin, resource_group, "srv-src", "sales")
    copy = sql.databases.begin_create_or_update(
        resource_group,
        "srv-staging",
        "sales-copy",
        sm.Database(location=STAGING_LOCATION, create_mode="Copy", source_database_id=source.id),
    ).result()
    assert copy.location == STAGING_LOCATION and copy.status == "Online"
    tables = {t["name"]: t["sha256"] for t in admin.sql_catalog(copy.id)["tables"]}
    assert tables == {t["name"]: t["sha256"] for t in admin.sql_catalog(source.id)["tables"]}
    admin.sql_change(source.id, table="dbo.Orders", rows=3)  # the copy is independent of its source
    assert {t["name"]: t["sha256"] for t in admin.sql_catalog(copy.id)["tables"]} == tables

    with pytest.raises(HttpResponseError) as wrong_region:
        sql.databases.begin_create_or_update(
            resource_group,
            "srv-staging",
            "bad",
            sm.Database(location=LOCATION, create_mode="Copy", source_database_id=source.id),
        ).result()
    assert wrong_region.value.error.code == "InvalidResourceLocation"
    with pytest.raises(HttpResponseError) as missing:
        sql.databases.begin_create_or_update(
            resource_group,
            "srv-src",
            "bad",
            sm.Database(location=LOCATION, create_mode="Copy", source_database_id=source.id + "-gone"),
        ).result()
    assert missing.value.status_code == 404


def test_export_writes_a_valid_bacpac_and_unchanged_tables_stay_identical(
    sql: SqlManagementClient, admin: AdminClient, resource_group: str, blobs: tuple[Azurite, str]
) -> None:
    azurite, container = blobs
    make_server(sql, resource_group, "srv-exp")
    database = make_database(sql, admin, resource_group, "srv-exp", "sales")
    uri = f"{azurite.blob_endpoint}/{container}/sales-1.bacpac"
    result = sql.databases.begin_export(
        resource_group, "srv-exp", "sales", export_definition(uri, ACCOUNT_KEY)
    ).result()
    assert result.status == "Completed" and result.request_type == "Export" and result.blob_uri == uri
    assert result.database_name == "sales" and result.server_name == "srv-exp.database.windows.net"

    first = members(download(azurite, container, "sales-1.bacpac"))
    assert set(first) >= {"model.xml", "Origin.xml", "[Content_Types].xml", "DacMetadata.xml", "_rels/.rels"}
    assert origin_checksum(first["Origin.xml"]) == hashlib.sha256(first["model.xml"]).hexdigest().upper()
    catalog = {f"{t['schema']}.{t['name']}": t for t in admin.sql_catalog(database.id)["tables"]}
    for key, table in catalog.items():
        member = first[f"Data/{key}/TableData-000-00000.BCP"]
        assert hashlib.sha256(member).hexdigest() == table["sha256"]
    assert b"[dbo].[Orders]" in first["model.xml"]

    changed = admin.sql_change(database.id, table="dbo.Orders", rows=5)
    assert changed["rowsChanged"] == 5 and changed["sha256"] != catalog["dbo.Orders"]["sha256"]
    token = sas_for(container, "sales-2.bacpac", write=True, create=True)
    second_uri = f"{azurite.blob_endpoint}/{container}/sales-2.bacpac"
    sql.databases.begin_export(
        resource_group, "srv-exp", "sales", export_definition(second_uri, "?" + token, "SharedAccessKey")
    ).result()
    second = members(download(azurite, container, "sales-2.bacpac"))
    orders = "Data/dbo.Orders/TableData-000-00000.BCP"
    assert second[orders] != first[orders] and len(second[orders]) > len(first[orders]) - 1000
    for name in ("Data/dbo.Customers/TableData-000-00000.BCP", "Data/dbo.Products/TableData-000-00000.BCP"):
        assert second[name] == first[name]  # byte-identical: a backup deduplicates them
    assert second["model.xml"] == first["model.xml"]
    assert origin_checksum(second["Origin.xml"]) == hashlib.sha256(second["model.xml"]).hexdigest().upper()


def test_import_creates_a_database_from_the_bacpac(
    sql: SqlManagementClient, admin: AdminClient, resource_group: str, blobs: tuple[Azurite, str]
) -> None:
    azurite, container = blobs
    make_server(sql, resource_group, "srv-imp")
    source = make_database(sql, admin, resource_group, "srv-imp", "sales")
    uri = f"{azurite.blob_endpoint}/{container}/imp.bacpac"
    sql.databases.begin_export(resource_group, "srv-imp", "sales", export_definition(uri, ACCOUNT_KEY)).result()

    definition = sm.ImportNewDatabaseDefinition(
        database_name="restored",
        storage_key_type="SharedAccessKey",
        storage_key=sas_for(container, "imp.bacpac", read=True),
        storage_uri=uri,
        administrator_login=LOGIN,
        administrator_login_password=PASSWORD,
        service_objective_name="S1",
    )
    result = sql.servers.begin_import_database(resource_group, "srv-imp", definition).result()
    assert result.request_type == "Import" and result.status == "Completed"
    restored = sql.databases.get(resource_group, "srv-imp", "restored")
    assert restored.current_service_objective_name == "S1"
    expected = {(t["name"], t["sha256"], t["rows"]) for t in admin.sql_catalog(source.id)["tables"]}
    assert {(t["name"], t["sha256"], t["rows"]) for t in admin.sql_catalog(restored.id)["tables"]} == expected

    empty = make_database(sql, admin, resource_group, "srv-imp", "empty", preset=None)
    existing = sm.ImportExistingDatabaseDefinition(
        storage_key_type="StorageAccessKey",
        storage_key=ACCOUNT_KEY,
        storage_uri=uri,
        administrator_login=LOGIN,
        administrator_login_password=PASSWORD,
    )
    sql.databases.begin_import_method(resource_group, "srv-imp", "empty", existing).result()
    assert len(admin.sql_catalog(empty.id)["tables"]) == 3
    with pytest.raises(HttpResponseError) as not_empty:
        sql.databases.begin_import_method(resource_group, "srv-imp", "empty", existing).result()
    assert "new, empty database" in str(not_empty.value)


@pytest.mark.skipif(not FIXTURE_BACPAC.exists(), reason=f"{FIXTURE_BACPAC} is absent (../shared is not here)")
def test_import_and_export_the_real_adventureworks_bacpac(
    sql: SqlManagementClient, admin: AdminClient, resource_group: str, blobs: tuple[Azurite, str]
) -> None:
    azurite, container = blobs
    original = members(FIXTURE_BACPAC.read_bytes())
    BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        container, "aw.bacpac"
    ).upload_blob(FIXTURE_BACPAC.read_bytes(), overwrite=True)
    make_server(sql, resource_group, "srv-aw")
    definition = sm.ImportNewDatabaseDefinition(
        database_name="aw",
        storage_key_type="StorageAccessKey",
        storage_key=ACCOUNT_KEY,
        storage_uri=f"{azurite.blob_endpoint}/{container}/aw.bacpac",
        administrator_login=LOGIN,
        administrator_login_password=PASSWORD,
    )
    sql.servers.begin_import_database(resource_group, "srv-aw", definition).result()
    aw = sql.databases.get(resource_group, "srv-aw", "aw")
    tables = {f"{t['schema']}.{t['name']}": t for t in admin.sql_catalog(aw.id)["tables"]}
    assert tables["SalesLT.Customer"]["rows"] == 847
    admin.sql_change(aw.id, table="SalesLT.Customer", rows=2)
    uri = f"{azurite.blob_endpoint}/{container}/aw-export.bacpac"
    sql.databases.begin_export(resource_group, "srv-aw", "aw", export_definition(uri, ACCOUNT_KEY)).result()
    exported = members(download(azurite, container, "aw-export.bacpac"))
    assert exported["model.xml"] == original["model.xml"]  # the model is kept verbatim
    assert origin_checksum(exported["Origin.xml"]) == origin_checksum(original["Origin.xml"])
    data = [name for name in original if name.startswith("Data/")]
    changed = [name for name in data if exported[name] != original[name]]
    assert changed == ["Data/SalesLT.Customer/TableData-000-00000.BCP"]


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("external-references", "External references are not supported"),
        ("unsupported-logins", "Error SQL71564"),
        ("firewall", "is not allowed to access the server"),
    ],
)
def test_export_failure_modes(
    mode: str,
    fragment: str,
    sql: SqlManagementClient,
    admin: AdminClient,
    resource_group: str,
    blobs: tuple[Azurite, str],
) -> None:
    azurite, container = blobs
    make_server(sql, resource_group, "srv-fail")
    database = make_database(sql, admin, resource_group, "srv-fail", "db")
    catalog = admin.sql_fail(database.id, mode)
    if mode == "external-references":
        assert catalog["externalReferences"][0]["referencedDatabase"] == "ArchiveDb"
    if mode == "unsupported-logins":
        assert catalog["unsupportedPrincipals"][0]["type"] == "WINDOWS_GROUP"
    uri = f"{azurite.blob_endpoint}/{container}/fail-{mode}.bacpac"
    with pytest.raises(HttpResponseError) as failed:
        sql.databases.begin_export(resource_group, "srv-fail", "db", export_definition(uri, ACCOUNT_KEY)).result()
    assert failed.value.error.code == "ImportExportJobError"
    assert "The ImportExport operation with Request Id" in failed.value.error.message
    assert fragment in failed.value.error.message
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        container, f"fail-{mode}.bacpac"
    )
    assert not blob.exists()
    admin.sql_fail(database.id, "none")
    sql.databases.begin_export(resource_group, "srv-fail", "db", export_definition(uri, ACCOUNT_KEY)).result()
    assert blob.exists()


def test_export_refuses_bad_credentials_without_leaking_them(
    sql: SqlManagementClient, admin: AdminClient, resource_group: str, blobs: tuple[Azurite, str]
) -> None:
    azurite, container = blobs
    make_server(sql, resource_group, "srv-cred")
    make_database(sql, admin, resource_group, "srv-cred", "db")
    uri = f"{azurite.blob_endpoint}/{container}/cred.bacpac"
    with pytest.raises(HttpResponseError) as login:
        sql.databases.begin_export(
            resource_group, "srv-cred", "db", export_definition(uri, ACCOUNT_KEY, password="wrong-Passw0rd")
        ).result()
    assert f"Login failed for user '{LOGIN}'" in login.value.error.message
    assert "wrong-Passw0rd" not in str(login.value)
    bad_key = "c2VjcmV0LWJ1dC13cm9uZw=="
    with pytest.raises(HttpResponseError) as storage:
        sql.databases.begin_export(resource_group, "srv-cred", "db", export_definition(uri, bad_key)).result()
    assert "(403) Forbidden" in storage.value.error.message and bad_key not in str(storage.value)
    token = sas_for(container, "cred.bacpac", read=True)  # a read-only SAS cannot write the BACPAC
    with pytest.raises(HttpResponseError) as read_only:
        sql.databases.begin_export(
            resource_group, "srv-cred", "db", export_definition(uri, token, "SharedAccessKey")
        ).result()
    assert "(403)" in read_only.value.error.message and token.split("sig=")[1][:10] not in str(read_only.value)


def test_export_timeout_ends_after_20_simulated_hours(
    sim: SimulatorEndpoints,
    sql: SqlManagementClient,
    admin: AdminClient,
    resource_group: str,
    blobs: tuple[Azurite, str],
) -> None:
    azurite, container = blobs
    make_server(sql, resource_group, "srv-slow")
    database = make_database(sql, admin, resource_group, "srv-slow", "db")
    admin.sql_fail(database.id, "timeout")
    body = {
        "storageKeyType": "StorageAccessKey",
        "storageKey": ACCOUNT_KEY,
        "storageUri": f"{azurite.blob_endpoint}/{container}/slow.bacpac",
        "administratorLogin": LOGIN,
        "administratorLoginPassword": PASSWORD,
    }
    status, headers, _ = arm_call(sim, "POST", f"{database.id}/export?api-version=2025-01-01", body)
    assert status == 202 and "importExportAzureAsyncOperation" in headers["Azure-AsyncOperation"]
    assert "importExportOperationResults" in headers["Location"]
    for _ in range(3):
        assert arm_call(sim, "GET", headers["Azure-AsyncOperation"])[2]["status"] == "InProgress"
    assert arm_call(sim, "GET", headers["Location"])[0] == 202
    admin.advance_clock(20 * 3600 + 1)
    final = arm_call(sim, "GET", headers["Azure-AsyncOperation"])[2]
    assert final["status"] == "Failed" and final["error"]["code"] == "ImportExportJobError"
    assert "20 hours" in final["error"]["message"]

    admin.sql_fail(database.id, "gateway-timeout")  # the other firewall symptom: the POST times out at the gateway
    status, _, error = arm_call(sim, "POST", f"{database.id}/export?api-version=2025-01-01", body)
    assert status == 504 and error["error"]["code"] == "GatewayTimeout"


def test_delete_database_and_master_is_protected(
    sql: SqlManagementClient, admin: AdminClient, resource_group: str
) -> None:
    make_server(sql, resource_group, "srv-del")
    make_database(sql, admin, resource_group, "srv-del", "gone")
    sql.databases.begin_delete(resource_group, "srv-del", "gone").result()
    with pytest.raises(ResourceNotFoundError):
        sql.databases.get(resource_group, "srv-del", "gone")
    with pytest.raises(HttpResponseError) as master:
        sql.databases.begin_delete(resource_group, "srv-del", "master").result()
    assert master.value.status_code == 400
    sql.servers.begin_delete(resource_group, "srv-del").result()
    with pytest.raises(ResourceNotFoundError):
        sql.databases.get(resource_group, "srv-del", "master")


def test_admin_errors_say_what_to_do(sql: SqlManagementClient, admin: AdminClient, resource_group: str) -> None:
    from bulwark_local.simulator.client import AdminApiError

    make_server(sql, resource_group, "srv-adm")
    database = make_database(sql, admin, resource_group, "srv-adm", "db")
    with pytest.raises(AdminApiError, match=r"tables: dbo\.Customers"):
        admin.sql_change(database.id, table="dbo.Nope")
    with pytest.raises(AdminApiError, match="use one of"):
        admin.sql_fail(database.id, "meteor")
    with pytest.raises(AdminApiError, match="resource id"):
        admin.sql_catalog("/subscriptions/x/nothing")
    assert admin.sql_catalog(database.id)["sizeBytes"] > 8 * 1024 * 1024
    admin.sql_set_catalog(database.id, reportedSizeBytes=250 * 1024**3)
    assert admin.sql_catalog(database.id)["sizeBytes"] == 250 * 1024**3
