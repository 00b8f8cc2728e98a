"""Scale: a policy over 200 VMs (400 managed disks) under a scaled ARM write budget.

The estate is seeded straight through ARM (one VM PUT per VM, its OS and data disk created
``Empty``: no file system, nothing to read), under a principal of its own so it does not spend the
app's budget. The simulator then enforces ``SERVER_WRITES`` writes per ``SERVER_WINDOW`` seconds
for the app's principal (ARM's 1,200 writes an hour, time-compressed so a 400-snapshot session
exhausts it several times over), and the app's client budget is set to the same rate through
``BULWARK_ARM_WRITES_PER_HOUR``. A client budget that matches the server's never draws a 429 by
itself (it also believes the server's remaining-writes header), so just before the session another
tool spends most of the window under the app's identity, as the adapter's throttling hint foresees:
the app's first writes are refused and it must hold back and retry. An on-demand, snapshot-only
session with 50 VMs in flight must end Success for every VM with 400 incremental snapshots, while
the simulator's counters show that 429s were answered (throttling happened and was handled).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from scripts.bench_orchestration import (
    ScaleEstate,
    client_write_budget,
    scale_policy,
    seed_scale_estate,
    snapshots_in,
    spend_writes,
)
from tests.app.harness import running_app, start_session, store_policy, wait_session
from tests.worker.estate import make_repository

POLICY = "scale-200"
VMS = 200
IN_FLIGHT = 50
SERVER_WRITES = 150
SERVER_WINDOW = 10.0
CLIENT_WRITES_PER_HOUR = int(SERVER_WRITES * 3600 / SERVER_WINDOW)
OTHER_TOOL_WRITES = SERVER_WRITES - 10
SESSION_TIMEOUT = 300.0  # a hang guard, not a speed check: make bench reports the overhead


@dataclass
class ScaleRun:
    estate: ScaleEstate
    status: dict[str, Any]
    seconds: float
    faults: dict[str, Any]
    logs: list[str]
    snapshots: list[str]


@pytest.fixture(scope="module")
def scale(stack: Stack, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleRun]:
    work = tmp_path_factory.mktemp("scale")
    estate = seed_scale_estate(stack, VMS, tags={"app": "scale"})
    repository, secret = make_repository(work)
    store_policy(stack, scale_policy(estate, POLICY, repository, secret, in_flight=IN_FLIGHT, region=stack.location))
    admin.clear_faults()
    admin.faults(write_budget=SERVER_WRITES, write_budget_seconds=SERVER_WINDOW)
    try:
        with client_write_budget(CLIENT_WRITES_PER_HOUR), running_app(stack, work) as (host, book):
            spend_writes(stack, OTHER_TOOL_WRITES)
            started = time.monotonic()
            status = wait_session(host, start_session(host, POLICY), timeout=SESSION_TIMEOUT)
            seconds = time.monotonic() - started
            faults = admin.faults()
        snapshots = snapshots_in(stack, estate.resource_groups)
    finally:
        admin.clear_faults()
    yield ScaleRun(estate, status, seconds, faults, book.lines, snapshots)


def test_every_vm_succeeds_with_a_snapshot_of_each_disk(scale: ScaleRun) -> None:
    assert scale.status["runtime_status"] == "Completed", scale.status
    output = scale.status["output"]
    failed = [r for r in output["resources"] if r["status"] != "Success"]
    assert not failed, failed[:3]
    assert output["status"] == "Success"
    assert sorted(r["resource_id"].lower() for r in output["resources"]) == sorted(v.lower() for v in scale.estate.vms)
    snapshot_ids = {d["snapshot_id"].lower() for r in output["resources"] for d in r["disks"]}
    assert len(snapshot_ids) == 2 * VMS
    assert {s.lower() for s in scale.snapshots} == snapshot_ids
    custom = scale.status["custom_status"]
    assert custom["resources_total"] == custom["resources_done"] == VMS


def test_the_write_budget_was_exhausted_and_its_429s_were_handled(scale: ScaleRun) -> None:
    answered = int(scale.faults["injected"].get("budget429", 0))
    assert answered > 0, scale.faults  # the server refused writes: throttling really happened
    assert any("ARM throttled" in line and "(429)" in line for line in scale.logs)
    assert not [line for line in scale.logs if "SubscriptionRequestsThrottled" in line and " ERROR " in line]
    # 400 snapshot PUTs through 150 writes per 10 s cannot finish in less than two windows.
    assert scale.seconds >= 2 * SERVER_WINDOW
