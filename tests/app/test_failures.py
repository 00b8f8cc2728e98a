"""Failure paths of the VM slice through the local runtime and stack, and the HTTP API's 4xx answers.

* a worker killed (SIGKILL, exit 137) before it reported: the poll sees a container that ended
  without a result, the orchestration starts attempt 2, which completes the point;
* a repository passphrase that does not open the repository: no retry, the VM fails with a reason
  that says so, the snapshots are still taken;
* bad requests: 401 without a key, 404 for an unknown policy or session, 400 for bad bodies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bulwark_local.runtime import LocalFunctionsHost
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.clients import AzureClients
from shared.services.worker_jobs import job_id_for
from shared.worker.table_status import DEFAULT_TABLE, TableJobStatusStore
from tests.app.harness import (
    WORKER_GROUP,
    call,
    policy_document,
    running_app,
    start_session,
    store_policy,
    wait_session,
)
from tests.worker.estate import Estate, guest_image, make_estate, make_repository, open_repository, restores_identical

SLEEPER = ["{python}", "-c", "import time; time.sleep(300)"]


@pytest.fixture(scope="module")
def app(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalFunctionsHost, Estate, str, Path]]:
    work = tmp_path_factory.mktemp("failures")
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    repository, secret = make_repository(work)
    wrong = work / "wrong.passphrase"
    wrong.write_text("this is not the passphrase\n")
    store_policy(stack, policy_document(stack, estate.vm.resource_group, repository, secret, "kill-test"))
    store_policy(
        stack,
        policy_document(
            stack,
            estate.vm.resource_group,
            repository,
            wrong,
            "wrong-key",
            encryption={"passphrase": {"file": str(wrong)}},
        ),
    )
    store_policy(
        stack,
        policy_document(
            stack, estate.vm.resource_group, repository, secret, "snapshots-only", image_backup={"enabled": False}
        ),
    )
    with running_app(stack, work) as (host, _):
        yield host, estate, repository, work


def workers_running(admin: AdminClient, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [p for p in admin.aci_processes() if f"/resourcegroups/{WORKER_GROUP}/" in p["group"]]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"only {len(found)} workers started"
        time.sleep(0.1)


def test_a_killed_worker_is_retried_and_its_point_is_complete(
    app: tuple[LocalFunctionsHost, Estate, str, Path], admin: AdminClient, stack: Stack
) -> None:
    host, _, repository, work = app
    admin.aci_images({"bulwark/worker:*": SLEEPER, "*/bulwark/worker:*": SLEEPER})
    try:
        instance_id = start_session(host, "kill-test")
        doomed = workers_running(admin, 2)
    finally:
        admin.aci_reset_images()  # attempt 2 runs the real worker
    for process in doomed:
        admin.aci_kill(process["group"])
    output = wait_session(host, instance_id)["output"]
    [resource] = output["resources"]
    assert output["status"] == "Success" and resource["status"] == "Success", output
    jobs = TableJobStatusStore.from_connection_string(stack.storage_connection_string, DEFAULT_TABLE)
    repo = open_repository(repository)
    for disk in resource["disks"]:
        record = jobs.get(job_id_for(instance_id, disk["disk_id"]))
        assert record is not None and record.attempt == 2 and record.state == "succeeded"
        expected = guest_image(admin, disk["snapshot_id"], work / "expected.img")
        assert restores_identical(repo, repo.load_point(disk["point_id"]), expected, work)


def test_a_wrong_passphrase_fails_the_vm_with_a_reason_and_no_retry(
    app: tuple[LocalFunctionsHost, Estate, str, Path], stack: Stack
) -> None:
    host, _, _, _ = app
    instance_id = start_session(host, "wrong-key")
    output = wait_session(host, instance_id)["output"]
    [resource] = output["resources"]
    assert output["status"] == "Failed" and resource["status"] == "Failed"
    assert len(resource["reasons"]) == 2
    assert all("does not open the repository" in reason for reason in resource["reasons"]), resource["reasons"]
    assert all(d["snapshot_id"] and not d["point_id"] for d in resource["disks"])  # the snapshots were taken
    jobs = TableJobStatusStore.from_connection_string(stack.storage_connection_string, DEFAULT_TABLE)
    for disk in resource["disks"]:
        record = jobs.get(job_id_for(instance_id, disk["disk_id"]))
        assert record is not None and record.attempt == 1 and not record.retryable


def test_http_api_answers_bad_requests_with_4xx(app: tuple[LocalFunctionsHost, Estate, str, Path]) -> None:
    host, _, _, _ = app
    run = f"{host.base_url}/api/policies/kill-test/run"
    assert call(run, "POST", key=None)[0] == 401
    assert call(run, "POST", key="wrong")[0] == 401
    assert call(f"{host.base_url}/api/sessions/x", key=None)[0] == 401
    cases: list[tuple[str, Any, bytes | None, int, str]] = [
        (f"{host.base_url}/api/policies/no-such-policy/run", None, None, 404, "policy_not_found"),
        (run, None, b"{not json", 400, "usage"),
        (run, None, b"[1, 2]", 400, "usage"),
        (run, {"image_level": "yes"}, None, 400, "usage"),
        (run, {"imagelevel": True}, None, 400, "usage"),
        (f"{host.base_url}/api/policies/snapshots-only/run", {"image_level": True}, None, 400, "usage"),
    ]
    for url, body, raw, status, code in cases:
        answer, text = call(url, "POST", body, raw=raw)
        assert answer == status, (url, body, raw, text)
        document = json.loads(text)
        assert document["code"] == code and document["message"] and document["hint"], document
    answer, text = call(f"{host.base_url}/api/sessions/no-such-session")
    assert answer == 404 and json.loads(text)["hint"]
    assert call(f"{host.base_url}/api/policies/kill-test/run", "GET")[0] == 405
