"""A worker that runs past the job deadline is stopped and its disk fails with a reason that says so."""

from __future__ import annotations

import pytest
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.clients import AzureClients
from tests.app.harness import WORKER_GROUP, policy_document, running_app, start_session, store_policy, wait_session
from tests.worker.estate import make_estate, make_repository

SLEEPER = ["{python}", "-c", "import time; time.sleep(300)"]


def test_a_worker_past_its_deadline_is_stopped_and_reported(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("deadline")
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    repository, secret = make_repository(work)
    store_policy(stack, policy_document(stack, estate.vm.resource_group, repository, secret, "deadline"))
    admin.aci_images({"bulwark/worker:*": SLEEPER, "*/bulwark/worker:*": SLEEPER})
    try:
        with running_app(stack, work, env={"BULWARK_JOB_DEADLINE_SECONDS": "3"}) as (host, _):
            output = wait_session(host, start_session(host, "deadline"), timeout=60)["output"]
    finally:
        admin.aci_reset_images()
    [resource] = output["resources"]
    assert output["status"] == "Failed" and resource["status"] == "Failed"
    assert all("did not finish within 3 s" in reason for reason in resource["reasons"]), resource["reasons"]
    assert all(d["snapshot_id"] and not d["point_id"] for d in resource["disks"])
    assert not [p for p in admin.aci_processes() if f"/resourcegroups/{WORKER_GROUP}/" in p["group"]]
