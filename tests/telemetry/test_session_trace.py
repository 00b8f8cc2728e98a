"""Local sessions and restores, traced: trigger -> orchestrators -> activities -> worker, in one trace.

The unmodified function app runs under the local runtime with OTEL_EXPORTER_OTLP_ENDPOINT pointing
at a collector in this test; its workers (simulated Container Instances: separate processes) get
the same endpoint and report their own spans. Every span of a session must share the trigger's
trace id and hang from its parent: trigger, session orchestration, VM or SQL orchestration,
activity, worker. The policy covers a VM and a small database and keeps image-level points one
day. In order: a session; a disk restore and a SQL restore from its points; the simulator's clock
two days on, a second session, whose image retention starts a ``repository-maintenance`` worker
that forgets the first session's points (its span hangs from that session's trace). The metrics
arrive too, and nothing secret is in what was exported.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from bulwark_local.runtime import LocalFunctionsHost
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from functions import names
from shared.azure.clients import AzureClients
from shared.storage.location import EMULATOR_KEY
from shared.telemetry.setup import configure_telemetry, flush_telemetry
from tests.app.harness import call, policy_document, running_app, store_policy, wait_session
from tests.app.test_sql_backup_session import make_database, make_server
from tests.telemetry.collector import Collector, ReceivedSpan, running_collector
from tests.worker.estate import PASSPHRASE, make_estate, make_repository, put_resource_group

POLICY = "traced"
SQL_PASSWORD = "Traced-Sql-Passw0rd-for-tests!"
DAY = 86_400
SESSION_TRIGGER = "POST /api/policies/{policy_id}/run"


@dataclass(frozen=True)
class Traced:
    collector: Collector
    sessions: list[dict[str, Any]]
    """The two sessions' status documents, in order (``id``: the instance the trigger started)."""
    restores: dict[str, dict[str, Any]]
    """``disk`` and ``sql``: the restores' status documents (``id`` as well)."""


# The SDK warns "Potential duplicate Task completion" when it buffers an early completion (as in tests/app).
pytestmark = pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")


@pytest.fixture(scope="module")
def traced(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Traced]:
    work = tmp_path_factory.mktemp("traced")
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    server, database = make_sql_estate(stack, clients, admin)
    repository, secret = make_repository(work)
    password = work / "sql.password"
    password.write_text(SQL_PASSWORD + "\n", encoding="utf-8")
    document = policy_document(stack, estate.vm.resource_group, repository, secret, POLICY)
    document["scope"] = {"kinds": ["vm", "sql_database"], "resources": [estate.vm.id, database]}
    document["sql"] = {"retention": {"days": 7}, "login": {"file": str(password)}}
    document["image_backup"]["retention"] = {"days": 1}  # two days on, the first session's point goes
    store_policy(stack, document)
    offset = float(admin.settings()["clock_offset_seconds"])
    with running_collector() as collector:
        try:
            with running_app(stack, work, env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}) as (host, _):
                first = run_session(host)
                first["image_point"] = newest_point(host, estate.vm.id, "image")
                restores = {
                    "disk": restore(host, "disk", disk_restore_body(estate.vm.id, first["image_point"])),
                    "sql": restore(host, "sql", sql_restore_body(host, database, server)),
                }
                admin.settings(clock_offset_seconds=offset + 2 * DAY)
                second = run_session(host)
                admin.settings(clock_offset_seconds=offset)
                flush_telemetry()
                for name in (names.RESTORE_VM, names.SQL_RESTORE, "worker image-restore", "worker bacpac-restore"):
                    collector.wait_for(lambda c, name=name: any(s.name == name for s in c.spans))
                collector.wait_for(lambda c: sum(s.name == names.POLICY_SESSION for s in c.spans) == 2)
                collector.wait_for(lambda c: any(s.name == "worker repository-maintenance" for s in c.spans))
            yield Traced(collector, [first, second], restores)
        finally:
            admin.settings(clock_offset_seconds=offset)
            configure_telemetry({}, service="bulwark-app")  # later tests in this process export nowhere


def make_sql_estate(stack: Stack, clients: AzureClients, admin: AdminClient) -> tuple[str, str]:
    """A SQL server and a tiny database on it: (server id, database id)."""
    suffix = uuid.uuid4().hex[:6]
    group = f"traced-sql-{suffix}"
    put_resource_group(stack, group)
    sdk = clients.sql_client()
    server = make_server(sdk, group, f"tsrv-{suffix}", stack.location, SQL_PASSWORD)
    return server, make_database(sdk, admin, group, server.rsplit("/", 1)[-1], "ledger", "tiny", stack.location)


def run_session(host: LocalFunctionsHost) -> dict[str, Any]:
    status, raw = call(f"{host.base_url}/api/policies/{POLICY}/run", "POST")
    assert status == 202, raw
    instance = json.loads(raw)["id"]
    return {**wait_session(host, instance), "id": instance}


def newest_point(host: LocalFunctionsHost, resource_id: str, kind: str) -> str:
    status, raw = call(f"{host.base_url}/api/points?resource={resource_id}&kind={kind}")
    assert status == 200, raw
    return str(json.loads(raw)["points"][0]["point_id"])


def disk_restore_body(vm_id: str, point: str) -> dict[str, Any]:
    """The OS disk from the session's image-level point, written by an image-restore worker."""
    return {"vm_id": vm_id, "point_id": point, "lun": "os", "source": "repository", "target": {"name": "traced-os"}}


def sql_restore_body(host: LocalFunctionsHost, database_id: str, server_id: str) -> dict[str, Any]:
    """The database's BACPAC point as a new database, rebuilt by a bacpac-restore worker."""
    return {"point": newest_point(host, database_id, "bacpac"), "server": server_id, "name": "ledger-restored"}


def restore(host: LocalFunctionsHost, what: str, body: dict[str, Any]) -> dict[str, Any]:
    status, raw = call(f"{host.base_url}/api/restores/{what}", "POST", body)
    assert status == 202, raw
    instance = json.loads(raw)["id"]
    deadline = time.monotonic() + 120
    while True:
        status, raw = call(f"{host.base_url}/api/restores/{instance}")
        assert status == 200, raw
        document: dict[str, Any] = json.loads(raw)
        if document["runtime_status"] in ("Completed", "Failed", "Terminated"):
            return {**document, "id": instance}
        assert time.monotonic() < deadline, document
        time.sleep(0.5)


def _trace_of(collector: Collector, trigger_name: str, instance: str) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
    """The trigger span that started ``instance`` and every span of its trace."""
    [trigger] = [
        s
        for s in collector.spans
        if s.name == trigger_name
        and instance in (s.attributes.get("bulwark.instance"), s.attributes.get("bulwark.restore"))
    ]
    return trigger, [s for s in collector.spans if s.trace_id == trigger.trace_id]


def _hangs_from(spans: list[ReceivedSpan], root: ReceivedSpan, most: int) -> None:
    """Every span reaches ``root`` through its parents, in at most ``most`` hops."""
    by_id = {s.span_id: s for s in spans}
    for item in spans:
        hops = 0
        while item is not root:
            item = by_id[item.parent_span_id]
            hops += 1
        assert hops <= most, item


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def test_one_trace_from_the_trigger_into_the_workers(traced: Traced) -> None:
    first = traced.sessions[0]
    assert first["runtime_status"] == "Completed" and first["output"]["status"] == "Success", first
    trigger, session = _trace_of(traced.collector, SESSION_TRIGGER, first["id"])
    assert {s.service for s in session} == {"bulwark-app", "bulwark-worker"}
    by_id = {s.span_id: s for s in session}

    orchestration = _one(session, names.POLICY_SESSION)
    vm = _one(session, names.VM_BACKUP)
    sql = _one(session, names.SQL_BACKUP)
    assert orchestration.parent_span_id == trigger.span_id
    assert orchestration.attributes["bulwark.result"] == "Success"
    assert vm.parent_span_id == orchestration.span_id and sql.parent_span_id == orchestration.span_id
    for activity in (names.DISCOVER_VMS, names.DISCOVER_SQL_DATABASES, names.RECORD_SESSION):
        assert _one(session, activity).parent_span_id == orchestration.span_id
    snapshots = [s for s in session if s.name == names.SNAPSHOT_DISK]
    assert len(snapshots) == 2 and all(s.parent_span_id == vm.span_id for s in snapshots)
    workers = [s for s in session if s.service == "bulwark-worker"]
    images = [s for s in workers if s.name == "worker image-backup"]
    bacpacs = [s for s in workers if s.name == "worker bacpac-backup"]
    assert len(images) == 2 and len(bacpacs) == 1 and len(workers) == 3  # one per disk, one per database
    for worker in images:
        start = by_id[worker.parent_span_id]
        assert start.name == names.START_BACKUP_JOB and start.parent_span_id == vm.span_id
        assert not worker.error and int(str(worker.attributes["bulwark.bytes_read"])) > 0
    [bacpac] = bacpacs
    start = by_id[bacpac.parent_span_id]
    assert start.name == names.START_BACPAC_JOB and start.parent_span_id == sql.span_id and not bacpac.error
    assert int(str(bacpac.attributes["bulwark.bytes_read"])) > 0
    # The workers are polled under the orchestration that runs them, not in traces of their own.
    polls = [s for s in session if s.name == names.POLL_BACKUP_JOBS]
    assert {by_id[s.parent_span_id].name for s in polls} == {names.VM_BACKUP, names.SQL_BACKUP}
    _hangs_from(session, trigger, 4)  # trigger, session, VM/SQL orchestration, activity, worker


def test_a_restore_is_one_trace_from_its_trigger_into_its_worker(traced: Traced) -> None:
    restore = traced.restores["disk"]
    assert restore["runtime_status"] == "Completed", restore
    trigger, spans = _trace_of(traced.collector, "POST /api/restores/disk", restore["id"])
    by_id = {s.span_id: s for s in spans}
    orchestration = _one(spans, names.RESTORE_VM)
    assert orchestration.parent_span_id == trigger.span_id and not orchestration.error
    for activity in (names.CREATE_RESTORE_DISK, names.START_RESTORE_JOB):
        assert _one(spans, activity).parent_span_id == orchestration.span_id
    worker = _one(spans, "worker image-restore")
    assert worker.service == "bulwark-worker" and by_id[worker.parent_span_id].name == names.START_RESTORE_JOB


def test_a_sql_restore_is_one_trace_from_its_trigger_into_its_worker(traced: Traced) -> None:
    restore = traced.restores["sql"]
    assert restore["runtime_status"] == "Completed" and restore["output"]["status"] == "Success", restore
    trigger, spans = _trace_of(traced.collector, "POST /api/restores/sql", restore["id"])
    by_id = {s.span_id: s for s in spans}
    orchestration = _one(spans, names.SQL_RESTORE)
    assert orchestration.parent_span_id == trigger.span_id and not orchestration.error
    assert orchestration.attributes["bulwark.restore"] == restore["id"]
    steps = (names.SQL_RESTORE_VALIDATE, names.START_SQL_RESTORE_JOB, names.SQL_RESTORE_IMPORT)
    for activity in (*steps, names.SQL_RESTORE_CLEANUP):
        assert _one(spans, activity).parent_span_id == orchestration.span_id, activity
    worker = _one(spans, "worker bacpac-restore")
    assert worker.service == "bulwark-worker" and not worker.error
    assert by_id[worker.parent_span_id].name == names.START_SQL_RESTORE_JOB
    assert {s.service for s in spans} == {"bulwark-app", "bulwark-worker"}
    _hangs_from(spans, trigger, 3)  # trigger, orchestration, activity, worker


def test_the_maintenance_worker_hangs_under_its_session(traced: Traced) -> None:
    first, second = traced.sessions
    assert second["runtime_status"] == "Completed" and second["output"]["status"] == "Success", second
    assert second["output"]["points_forgotten"] == [first["image_point"]]
    trigger, session = _trace_of(traced.collector, SESSION_TRIGGER, second["id"])
    by_id = {s.span_id: s for s in session}
    orchestration = _one(session, names.POLICY_SESSION)
    assert orchestration.parent_span_id == trigger.span_id
    for activity in (names.PLAN_IMAGE_RETENTION, names.START_MAINTENANCE_JOB, names.RECORD_FORGOTTEN_POINTS):
        assert _one(session, activity).parent_span_id == orchestration.span_id, activity
    worker = _one(session, "worker repository-maintenance")
    assert worker.service == "bulwark-worker" and not worker.error
    assert by_id[worker.parent_span_id].name == names.START_MAINTENANCE_JOB
    assert worker.attributes["bulwark.policy"] == POLICY
    assert worker.attributes["bulwark.session"] == second["output"]["session_id"]
    assert worker.attributes["bulwark.points_forgotten"] == 2  # the first session's two disk points
    assert worker.attributes["bulwark.points_refused"] == 0
    assert int(str(worker.attributes["bulwark.bytes_freed"])) >= 0
    _hangs_from(session, trigger, 4)


def test_session_metrics_and_logs_arrive(traced: Traced) -> None:
    collector = traced.collector
    collector.wait_for(lambda c: "bulwark.backup.bytes_read" in c.metric_names)
    collector.wait_for(lambda c: "bulwark.repository.points_forgotten" in c.metric_names)
    collector.wait_for(lambda c: any("saved point" in line for line in c.log_lines))  # the worker's last log
    assert {
        "bulwark.backup.bytes_read",
        "bulwark.backup.bytes_stored",
        "bulwark.backup.throughput",
        "bulwark.snapshots.created",
        "bulwark.sessions",
        "bulwark.repository.points_forgotten",
        "bulwark.repository.bytes_freed",
    } <= collector.metric_names


def test_nothing_secret_is_exported(traced: Traced) -> None:
    exported = b"".join(traced.collector.raw)
    assert len(exported) > 1000
    for secret in (PASSPHRASE, EMULATOR_KEY, SQL_PASSWORD):
        assert secret.encode() not in exported
    assert b"sig=" not in exported or b"sig=REDACTED" in exported


def test_spans_name_the_policy(traced: Traced) -> None:
    sessions = [s for s in traced.collector.spans if s.name == names.POLICY_SESSION]
    assert len(sessions) == 2 and all(s.attributes["bulwark.policy"] == POLICY for s in sessions)
