"""One local session, traced: trigger -> orchestrators -> activities -> worker, in one trace.

The unmodified function app runs under the local runtime with OTEL_EXPORTER_OTLP_ENDPOINT pointing
at a collector in this test; its workers (simulated Container Instances: separate processes) get
the same endpoint and report their own spans. Every span of the session must share the trigger's
trace id and hang from its parent: trigger, session orchestration, VM orchestration, activity,
worker. The session's metrics arrive too, and nothing secret is in what was exported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from bulwark_local.runtime import LocalFunctionsHost
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from functions import names
from shared.azure.clients import AzureClients
from shared.storage.location import EMULATOR_KEY
from shared.telemetry.setup import configure_telemetry, flush_telemetry
from tests.app.harness import call, policy_document, running_app, store_policy, wait_session
from tests.telemetry.collector import Collector, ReceivedSpan, running_collector
from tests.worker.estate import PASSPHRASE, make_estate, make_repository

POLICY = "traced"
# The SDK warns "Potential duplicate Task completion" when it buffers an early completion (as in tests/app).
pytestmark = pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")


@pytest.fixture(scope="module")
def traced(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Collector, dict[str, object]]]:
    work = tmp_path_factory.mktemp("traced")
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    repository, secret = make_repository(work)
    store_policy(stack, policy_document(stack, estate.vm.resource_group, repository, secret, POLICY))
    with running_collector() as collector:
        try:
            with running_app(stack, work, env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}) as (host, _):
                status, raw = call(f"{host.base_url}/api/policies/{POLICY}/run", "POST")
                assert status == 202, raw
                document = wait_session(host, json.loads(raw)["id"])
                restored = restore_one_disk(host, estate.vm.id)
                flush_telemetry()
                collector.wait_for(lambda c: any(s.service == "bulwark-worker" for s in c.spans))
                collector.wait_for(lambda c: any(s.name == names.POLICY_SESSION for s in c.spans))
                collector.wait_for(lambda c: any(s.name == names.RESTORE_VM for s in c.spans))
                collector.wait_for(lambda c: any(s.name == "worker image-restore" for s in c.spans))
            yield collector, {**document, "restore": restored}
        finally:
            configure_telemetry({}, service="bulwark-app")  # later tests in this process export nowhere


def restore_one_disk(host: LocalFunctionsHost, vm_id: str) -> dict[str, object]:
    """The OS disk from the session's image-level point, written by an image-restore worker."""
    status, raw = call(f"{host.base_url}/api/points?resource={vm_id}&kind=image")
    assert status == 200, raw
    point = json.loads(raw)["points"][0]["point_id"]
    body = {"vm_id": vm_id, "point_id": point, "lun": "os", "source": "repository", "target": {"name": "traced-os"}}
    status, raw = call(f"{host.base_url}/api/restores/disk", "POST", body)
    assert status == 202, raw
    link = f"{host.base_url}{json.loads(raw)['restore']}"
    deadline = time.monotonic() + 120
    while True:
        status, raw = call(link)
        document: dict[str, object] = json.loads(raw)
        if document["runtime_status"] in ("Completed", "Failed", "Terminated"):
            return document
        assert time.monotonic() < deadline, document
        time.sleep(0.5)


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def test_one_trace_from_the_trigger_into_the_workers(traced: tuple[Collector, dict[str, object]]) -> None:
    collector, document = traced
    assert document["runtime_status"] == "Completed"
    trigger = _one(collector.spans, "POST /api/policies/{policy_id}/run")
    session = [s for s in collector.spans if s.trace_id == trigger.trace_id]
    assert {s.service for s in session} == {"bulwark-app", "bulwark-worker"}
    by_id = {s.span_id: s for s in session}

    orchestration = _one(session, names.POLICY_SESSION)
    vm = _one(session, names.VM_BACKUP)
    workers = [s for s in session if s.service == "bulwark-worker"]
    starts = [s for s in session if s.name == names.START_BACKUP_JOB]
    assert len(workers) == 2 and len(starts) == 2  # one per disk
    assert orchestration.parent_span_id == trigger.span_id
    assert orchestration.attributes["bulwark.result"] == "Success"
    assert vm.parent_span_id == orchestration.span_id
    for activity in (names.DISCOVER_VMS, names.DISCOVER_SQL_DATABASES, names.RECORD_SESSION):
        assert _one(session, activity).parent_span_id == orchestration.span_id
    snapshots = [s for s in session if s.name == names.SNAPSHOT_DISK]
    assert len(snapshots) == 2 and all(s.parent_span_id == vm.span_id for s in snapshots)
    for worker in workers:
        start = by_id[worker.parent_span_id]
        assert start.name == names.START_BACKUP_JOB and start.parent_span_id == vm.span_id
        assert worker.name == "worker image-backup" and not worker.error
        assert int(str(worker.attributes["bulwark.bytes_read"])) > 0
    # every span of the session hangs from the trigger
    for item in session:
        hops = 0
        while item is not trigger:
            item = by_id[item.parent_span_id]
            hops += 1
        assert hops <= 4


def test_a_restore_is_one_trace_from_its_trigger_into_its_worker(
    traced: tuple[Collector, dict[str, object]],
) -> None:
    collector, document = traced
    restore = document["restore"]
    assert isinstance(restore, dict) and restore["runtime_status"] == "Completed"
    trigger = _one(collector.spans, "POST /api/restores/disk")
    spans = [s for s in collector.spans if s.trace_id == trigger.trace_id]
    by_id = {s.span_id: s for s in spans}
    orchestration = _one(spans, names.RESTORE_VM)
    assert orchestration.parent_span_id == trigger.span_id and not orchestration.error
    for activity in (names.CREATE_RESTORE_DISK, names.START_RESTORE_JOB):
        assert _one(spans, activity).parent_span_id == orchestration.span_id
    worker = _one(spans, "worker image-restore")
    assert worker.service == "bulwark-worker" and by_id[worker.parent_span_id].name == names.START_RESTORE_JOB


def test_session_metrics_and_logs_arrive(traced: tuple[Collector, dict[str, object]]) -> None:
    collector, _ = traced
    collector.wait_for(lambda c: "bulwark.backup.bytes_read" in c.metric_names)
    collector.wait_for(lambda c: any("saved point" in line for line in c.log_lines))  # the worker's last log
    assert {
        "bulwark.backup.bytes_read",
        "bulwark.backup.bytes_stored",
        "bulwark.backup.throughput",
        "bulwark.snapshots.created",
        "bulwark.sessions",
    } <= collector.metric_names


def test_nothing_secret_is_exported(traced: tuple[Collector, dict[str, object]]) -> None:
    collector, _ = traced
    exported = b"".join(collector.raw)
    assert len(exported) > 1000
    for secret in (PASSPHRASE, EMULATOR_KEY):
        assert secret.encode() not in exported
    assert b"sig=" not in exported or b"sig=REDACTED" in exported


def test_spans_name_the_policy(traced: tuple[Collector, dict[str, object]]) -> None:
    collector, _ = traced
    orchestration = _one(collector.spans, names.POLICY_SESSION)
    assert orchestration.attributes["bulwark.policy"] == POLICY
