"""A BACPAC worker killed (SIGKILL) before it reported: the SQL sub-orchestration starts attempt 2,
the database ends Success with a point that restores, and the staging copy and BACPAC are gone."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.bacpac_blobs import BlobBacpacStaging
from shared.azure.clients import AzureClients
from shared.azure.model import STAGING_CONTAINER
from shared.engine.fileset import restore_fileset
from shared.repo import walk
from shared.services.vm_backup import session_key
from shared.services.worker_jobs import job_id_for
from shared.sources.bacpac import BacpacWriter
from shared.worker.table_status import DEFAULT_TABLE, TableJobStatusStore
from tests.app.harness import running_app, start_session, store_policy, wait_session
from tests.app.test_failures import SLEEPER, workers_running
from tests.app.test_sql_backup_session import (
    SQL_PASSWORD,
    export_reference,
    make_database,
    make_server,
    sql_policy,
)
from tests.worker.estate import make_repository, open_repository, put_resource_group


def test_a_killed_bacpac_worker_is_retried_and_the_staging_copy_is_deleted(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("sqlretry")
    repository, secret = make_repository(work)
    (work / "sql.password").write_text(SQL_PASSWORD + "\n", encoding="utf-8")
    suffix = uuid.uuid4().hex[:6]
    group = f"sqlk-{suffix}"
    put_resource_group(stack, group)
    other = "westeurope" if stack.location.replace(" ", "").lower() == "northeurope" else "northeurope"
    sdk = clients.sql_client()
    server = make_server(sdk, group, f"srvk-{suffix}", stack.location, SQL_PASSWORD)
    staging = make_server(sdk, group, f"stgk-{suffix}", other, SQL_PASSWORD)
    database = make_database(sdk, admin, group, server.rsplit("/", 1)[-1], "orders", "tiny", stack.location)
    store_policy(
        stack,
        sql_policy(
            stack,
            repository,
            secret,
            "sql-kill",
            [database],
            mode="staging",
            staging_server=staging,
            staging_region=other,
        ),
    )
    with running_app(stack, work) as (host, _):
        admin.aci_images({"bulwark/worker:*": SLEEPER, "*/bulwark/worker:*": SLEEPER})
        try:
            instance_id = start_session(host, "sql-kill", {"image_level": False})
            [doomed] = workers_running(admin, 1, timeout=60)
        finally:
            admin.aci_reset_images()  # attempt 2 runs the real worker
        admin.aci_kill(doomed["group"])
        output = wait_session(host, instance_id, timeout=180)["output"]
    [resource] = output["resources"]
    assert output["status"] == "Success" and resource["status"] == "Success", output
    record = TableJobStatusStore.from_connection_string(stack.storage_connection_string, DEFAULT_TABLE).get(
        job_id_for(instance_id, database)
    )
    assert record is not None and record.attempt == 2 and record.state == "succeeded"
    assert clients.sql().list_databases(staging) == []
    blobs = BlobBacpacStaging(stack.storage_connection_string, STAGING_CONTAINER)
    try:
        assert not [n for n in blobs.names() if n.startswith(f"{session_key(instance_id)}/")]
    finally:
        blobs.close()
    repo = open_repository(repository)
    point = repo.load_point(resource["disks"][0]["point_id"])
    target = work / "restored.bacpac"
    with BacpacWriter(target, walk.files_of(point)) as sink:
        restore_fileset(repo, point, sink)
    reference = zipfile.ZipFile(io.BytesIO(export_reference(stack, clients, database, "orders-kill.bacpac")))
    restored = zipfile.ZipFile(target)
    data = [n for n in reference.namelist() if n.startswith("Data/")]
    assert data and all(restored.read(n) == reference.read(n) for n in data)
