"""The VM backup slice end to end: the unmodified function app under the local runtime, the local
stack as Azure, workers as simulated Container Instances (local processes running shared.worker).

Three on-demand sessions over HTTP for one VM (an ext4 OS disk and a data disk) with snapshots.keep=1:

1. image-level: incremental snapshots in the VM's resource group, one worker per disk, full points;
2. image-level after guest writes: the workers read only the changed ranges;
3. snapshot only: the snapshot of session 2 (the last image-level base) stays, as the seed says.

Every point restores byte-identical to what the guest saw at its snapshot; nothing secret reaches
the orchestration state, HTTP answers or logs; the determinism check passes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient
from bulwark_local.runtime import LocalFunctionsHost
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.clients import AzureClients
from shared.catalog.model import PointKind, Status, TriggerKind
from shared.catalog.table import AzureTableCatalog
from shared.services.vm_backup import TAG_LUN, TAG_VM
from shared.storage.location import EMULATOR_KEY as _EMULATOR_KEY
from shared.wiring import POINTS_TABLE, SESSIONS_TABLE
from tests.app.harness import (
    assert_no_secrets,
    call,
    determinism_check,
    policy_document,
    running_app,
    store_policy,
    wait_session,
)
from tests.worker.estate import (
    MIB,
    PASSPHRASE,
    Estate,
    guest_image,
    make_estate,
    make_repository,
    open_repository,
    restores_identical,
)

POLICY = "web-tier"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Scenario:
    stack: Stack
    estate: Estate
    repository: str
    runtime_state: Path
    outputs: list[dict[str, Any]]
    statuses: list[dict[str, Any]]
    chains: list[dict[str, list[str]]]
    expected: dict[str, Path]
    http_bodies: list[bytes]
    logs: list[str]


def run_session(host: LocalFunctionsHost, bodies: list[bytes], body: Any = None) -> dict[str, Any]:
    status, raw = call(f"{host.base_url}/api/policies/{POLICY}/run", "POST", body)
    bodies.append(raw)
    assert status == 202, raw
    document = wait_session(host, json.loads(raw)["id"])
    bodies.append(json.dumps(document).encode())
    return document


def chain_of(clients: AzureClients, estate: Estate) -> dict[str, list[str]]:
    compute = clients.compute()
    return {
        disk.id: [s.id for s in compute.snapshot_chain(disk, resource_group=estate.vm.resource_group)]
        for disk in (estate.os_disk, estate.data_disk)
    }


@pytest.fixture(scope="module")
def scenario(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    work = tmp_path_factory.mktemp("app")
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    repository, secret = make_repository(work)
    store_policy(stack, policy_document(stack, estate.vm.resource_group, repository, secret, POLICY))
    outputs: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    chains: list[dict[str, list[str]]] = []
    expected: dict[str, Path] = {}
    bodies: list[bytes] = []
    with running_app(stack, work) as (host, book):
        for number, body in enumerate((None, None, {"image_level": False}), start=1):
            if number == 2:
                admin.guest_write(estate.os_disk.id, 700 * MIB, b"a log line written by the guest\n" * 20_000)
                admin.guest_write(estate.data_disk.id, 4 * MIB, b"\xab" * (512 * 1024))
                admin.guest_trim(estate.data_disk.id, 512 * MIB, 1 * MIB)
            document = run_session(host, bodies, body)
            statuses.append(document)
            outputs.append(document["output"])
            chains.append(chain_of(clients, estate))
            for resource in document["output"]["resources"]:
                for disk in resource["disks"]:
                    if disk["point_id"]:
                        expected[disk["point_id"]] = guest_image(
                            admin, disk["snapshot_id"], work / f"{disk['point_id']}.img"
                        )
    yield Scenario(stack, estate, repository, work / "runtime", outputs, statuses, chains, expected, bodies, book.lines)


def test_sessions_succeed_with_progress_for_the_portal(scenario: Scenario) -> None:
    for status, output in zip(scenario.statuses, scenario.outputs, strict=True):
        assert status["runtime_status"] == "Completed"
        assert output["status"] == "Success", output
        assert output["policy_id"] == POLICY and output["slot"] == "on-demand"
        [resource] = output["resources"]
        assert resource["resource_id"] == scenario.estate.vm.id and resource["status"] == "Success"
        custom = status["custom_status"]
        assert custom["phase"] == "done: Success" and custom["resources_total"] == custom["resources_done"] == 1
        assert custom["bytes_read"] == sum(d["bytes_read"] for d in resource["disks"])
    assert [o["image_level"] for o in scenario.outputs] == [True, True, False]


def test_snapshots_are_incremental_in_the_vm_resource_group_and_tagged(
    scenario: Scenario, clients: AzureClients
) -> None:
    compute = clients.compute()
    vm = scenario.estate.vm
    [resource] = scenario.outputs[-1]["resources"]
    for disk in resource["disks"]:
        snapshot = compute.get_snapshot(disk["snapshot_id"])
        assert snapshot.resource_group == vm.resource_group and snapshot.incremental
        assert snapshot.tags["bulwark-policy"] == POLICY
        assert snapshot.tags["bulwark-session"] == scenario.outputs[-1]["session_id"]
        assert snapshot.tags[TAG_VM] == vm.id and snapshot.tags[TAG_LUN] == ("os" if disk["lun"] is None else "0")


def test_points_restore_byte_identical_and_the_second_session_reads_only_changes(scenario: Scenario) -> None:
    first, second = (o["resources"][0]["disks"] for o in scenario.outputs[:2])
    assert all(not d["incremental"] and d["point_id"] for d in first)
    assert all(d["incremental"] and d["point_id"] for d in second)
    full_read = sum(d["bytes_read"] for d in first)
    for disk in second:
        assert disk["bytes_read"] <= 2 * MIB, disk  # the page-range diff: only the changed blocks
    assert sum(d["bytes_read"] for d in second) * 3 < full_read
    assert all(d["point_id"] is None for d in scenario.outputs[2]["resources"][0]["disks"])
    repo = open_repository(scenario.repository)
    assert len(repo.list_points()) == 4
    for point_id, expected in scenario.expected.items():
        point = repo.load_point(point_id)
        assert point.tags["policy"] == POLICY and point.tags["vm"] == scenario.estate.vm.id
        assert restores_identical(repo, point, expected, expected.parent)


def test_catalog_holds_the_sessions_and_one_image_point_per_vm_and_session(scenario: Scenario) -> None:
    connection = scenario.stack.storage_connection_string
    with (
        TableClient.from_connection_string(connection, table_name=SESSIONS_TABLE) as sessions,
        TableClient.from_connection_string(connection, table_name=POINTS_TABLE) as points,
    ):
        catalog = AzureTableCatalog(sessions, points)
        recorded = catalog.list_sessions(POLICY)
        assert [s.session_id for s in recorded] == [o["session_id"] for o in reversed(scenario.outputs)]
        assert all(s.status is Status.SUCCESS and s.trigger is TriggerKind.ON_DEMAND for s in recorded)
        assert [s.image_backup for s in recorded] == [False, True, True]
        assert recorded[1].resources[0].bytes_read == sum(
            d["bytes_read"] for d in scenario.outputs[1]["resources"][0]["disks"]
        )
        images = catalog.list_points(scenario.estate.vm.id, kind=PointKind.IMAGE)
    assert [p.session_id for p in images] == [o["session_id"] for o in reversed(scenario.outputs[:2])]
    for point, output in zip(images, reversed(scenario.outputs[:2]), strict=True):
        disks = output["resources"][0]["disks"]  # OS disk first, then by LUN
        assert point.snapshot_ids == tuple(d["snapshot_id"] for d in disks)
        assert point.repository_point_id == ",".join(d["point_id"] for d in disks)
        assert recorded[0].resources[0].point_ids == ()  # the snapshot-only session made no image point


def test_snapshot_chain_follows_the_seed_rule_and_retention(scenario: Scenario) -> None:
    os_id, data_id = scenario.estate.os_disk.id, scenario.estate.data_disk.id
    snaps = [{d["disk_id"]: d["snapshot_id"] for d in o["resources"][0]["disks"]} for o in scenario.outputs]
    # keep=1, and the base of the last image-level backup stays until the next image-level session
    assert scenario.chains[0] == {os_id: [snaps[0][os_id]], data_id: [snaps[0][data_id]]}
    assert scenario.chains[1] == {os_id: [snaps[1][os_id]], data_id: [snaps[1][data_id]]}
    assert scenario.chains[2] == {
        os_id: [snaps[1][os_id], snaps[2][os_id]],
        data_id: [snaps[1][data_id], snaps[2][data_id]],
    }
    deleted = scenario.outputs[1]["resources"][0]["snapshots_deleted"]
    assert sorted(deleted) == sorted(snaps[0].values())


def test_no_secret_in_history_status_outputs_http_or_logs(scenario: Scenario) -> None:
    assert_no_secrets(
        runtime_state=scenario.runtime_state,
        http_bodies=scenario.http_bodies,
        logs=scenario.logs,
        stack_state=Path(scenario.stack.state_dir),
        secrets=[PASSPHRASE, _EMULATOR_KEY],
    )


def test_every_orchestrator_passes_the_determinism_check(scenario: Scenario) -> None:
    report = determinism_check(scenario.runtime_state)
    scanned = int(report.split(" orchestrators scanned")[0].split()[-1])  # every registered one (restores too)
    assert scanned >= 3 and "0 findings" in report, report
