"""Single-machine mode without a container service: workers as child processes of the app
(``BULWARK_WORKER_LAUNCHER=local-process``, the local default when no worker resource group is set)."""

from __future__ import annotations

import pytest
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.clients import AzureClients
from shared.config import Settings
from tests.app.harness import policy_document, running_app, start_session, store_policy, wait_session
from tests.worker.estate import guest_image, make_estate, make_repository, open_repository, restores_identical


def test_a_session_with_local_process_workers(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("local-process")
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    repository, secret = make_repository(work)
    store_policy(stack, policy_document(stack, estate.vm.resource_group, repository, secret, "local-workers"))
    before = admin.aci_processes()
    with running_app(stack, work, env={"BULWARK_WORKER_LAUNCHER": "local-process"}) as (host, book):
        output = wait_session(host, start_session(host, "local-workers"))["output"]
    assert output["status"] == "Success", output
    assert admin.aci_processes() == before  # no container group was involved
    assert any("runs as local process" in line for line in book.lines)
    assert list((work / "state" / "workers").glob("bulwark-job-*.log"))
    repo = open_repository(repository)
    for disk in output["resources"][0]["disks"]:
        expected = guest_image(admin, disk["snapshot_id"], work / "expected.img")
        assert restores_identical(repo, repo.load_point(disk["point_id"]), expected, work)


def test_local_mode_defaults_to_local_process_workers_without_a_worker_group(stack: Stack) -> None:
    local = {"BULWARK_LOCAL_STACK": f"{stack.state_dir}/stack.json"}
    assert Settings.from_env(local).worker.launcher == "local-process"
    assert Settings.from_env({**local, "BULWARK_WORKER_RESOURCE_GROUP": "workers"}).worker.launcher == "aci"
    settings = Settings.from_env(local)
    assert settings.arm_reference.kind == "stack-file" and "AccountKey" not in repr(settings)
