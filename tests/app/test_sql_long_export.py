"""A BACPAC export that runs for hours is followed on a durable timer, not inside an activity: the
session stays in its export phase while the export service reports InProgress (activities keep
ending), and when the service gives up after its 20 hours the database ends Failed with that
reason and nothing is left in the staging container."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.bacpac_blobs import BlobBacpacStaging
from shared.azure.clients import AzureClients
from shared.azure.model import STAGING_CONTAINER
from shared.services.vm_backup import session_key
from tests.app.harness import call, running_app, start_session, store_policy, wait_session
from tests.app.test_sql_backup_session import SQL_PASSWORD, make_database, make_server, sql_policy
from tests.worker.estate import make_repository, put_resource_group


def test_a_long_export_is_polled_and_its_failure_cleans_up(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("sqllong")
    repository, secret = make_repository(work)
    (work / "sql.password").write_text(SQL_PASSWORD + "\n", encoding="utf-8")
    suffix = uuid.uuid4().hex[:6]
    group = f"sqll-{suffix}"
    put_resource_group(stack, group)
    sdk = clients.sql_client()
    server = make_server(sdk, group, f"srvl-{suffix}", stack.location, SQL_PASSWORD)
    database = make_database(sdk, admin, group, server.rsplit("/", 1)[-1], "ledger", "tiny", stack.location)
    store_policy(stack, sql_policy(stack, repository, secret, "sql-long", [database]))
    admin.sql_fail(database, "timeout")  # the export service reports InProgress until 20 hours pass
    with running_app(stack, work) as (host, _):
        instance_id = start_session(host, "sql-long", {"image_level": False})
        polled = 0
        deadline = time.monotonic() + 60
        while polled < 3:  # three polls answered 'still running' while the session waits on timers
            assert time.monotonic() < deadline, "the export was not polled"
            history = (work / "runtime").rglob("*")
            polled = sum(p.read_bytes().count(b"sql_poll_export") for p in history if p.is_file())
            time.sleep(0.5)
        status, raw = call(f"{host.base_url}/api/sessions/{instance_id}")
        assert status == 200 and json.loads(raw)["runtime_status"] == "Running"
        offset = float(admin.settings()["clock_offset_seconds"])
        try:
            admin.advance_clock(21 * 3600)
            output = wait_session(host, instance_id, timeout=120)["output"]
        finally:
            # The stack is shared: later tests compare snapshot times with the real clock.
            admin.settings(clock_offset_seconds=offset)
    [resource] = output["resources"]
    assert resource["status"] == "Failed" and "20-hour" in " ".join(resource["reasons"]), resource
    admin.sql_fail(database, "none")
    staged = BlobBacpacStaging(stack.storage_connection_string, STAGING_CONTAINER)
    try:
        assert not [n for n in staged.names() if n.startswith(f"{session_key(instance_id)}/")]
    finally:
        staged.close()
