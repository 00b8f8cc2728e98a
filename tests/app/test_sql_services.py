"""The SQL use cases behind the activities, with in-memory ports (fast): discovery by scope, the
export's secrets staying inside, cleanup of what exists, the BACPAC job spec."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from shared.azure.model import (
    BacpacLocation,
    ExportResult,
    ImportExportOperation,
    Secret,
    Selection,
    SqlDatabaseInfo,
    SqlLogin,
    SqlServerInfo,
)
from shared.core.errors import AzureResourceNotFoundError, SqlExportFailedError
from shared.policy.document import policy_from_dict
from shared.policy.store import InMemoryPolicyStore
from shared.services.job_spec import ArmRef, JobSpec, StatusRef
from shared.services.job_status import InMemoryJobStatusStore
from shared.services.messages import (
    SQL_DIRECT,
    SQL_STAGING,
    DiscoverRequest,
    SqlBackupRequest,
    SqlExportPoll,
    SqlExportRequest,
    SqlTarget,
    StartBacpacJobRequest,
)
from shared.services.ports import WorkerRun
from shared.services.sql_backup import (
    BacpacJobs,
    DiscoverSqlDatabases,
    ExportBacpac,
    SqlCleanup,
    SqlPolicies,
    staging_blob_name,
    staging_copy_name,
)
from shared.services.worker_jobs import JobSettings
from shared.worker.adapters import SecretResolvers

SUB = "00000000-0000-0000-0000-000000000001"
GROUP = f"/subscriptions/{SUB}/resourceGroups/data"
SERVER = f"{GROUP}/providers/Microsoft.Sql/servers/sql1"
STAGING = f"/subscriptions/{SUB}/resourceGroups/stage/providers/Microsoft.Sql/servers/stage1"
PASSWORD = "Unit-Test-Sql-Passw0rd!"


def database(name: str, server: str = SERVER, **tags: str) -> SqlDatabaseInfo:
    return SqlDatabaseInfo(
        id=f"{server}/databases/{name}",
        name=name,
        server_id=server,
        server_name=server.rsplit("/", 1)[-1],
        resource_group=server.split("/")[4],
        location="westeurope",
        status="Online",
        sku=None,
        tier=None,
        max_size_bytes=None,
        is_system=False,
        tags=tags,
    )


class FakeSql:
    def __init__(self, *databases: SqlDatabaseInfo) -> None:
        self.databases = {d.id.lower(): d for d in databases}
        self.selections: list[Selection] = []
        self.deleted: list[str] = []
        self.exports: list[tuple[str, BacpacLocation, SqlLogin]] = []
        self.fail_export: Exception | None = None
        self.polls_left = 0
        """How many export_status calls answer 'still running' (0: start_export finishes at once)."""

    def discover(self, selection: Selection) -> list[SqlDatabaseInfo]:
        self.selections.append(selection)
        return sorted(self.databases.values(), key=lambda d: d.id)

    def get_database(self, database_id: str) -> SqlDatabaseInfo:
        found = self.databases.get(database_id.lower())
        if found is None:
            raise AzureResourceNotFoundError(f"{database_id} not found")
        return found

    def get_server(self, server_id: str) -> SqlServerInfo:
        return SqlServerInfo(server_id, "sql1", "data", "westeurope", None, "bulwarkadmin", "Ready", {})

    def delete_database(self, database_id: str) -> None:
        self.deleted.append(database_id)
        self.databases.pop(database_id.lower(), None)

    def export_database(self, database_id: str, *, destination: BacpacLocation, login: SqlLogin) -> ExportResult:
        if self.fail_export is not None:
            raise self.fail_export
        self.exports.append((database_id, destination, login))
        return ExportResult("req-1", database_id.rsplit("/", 1)[-1], destination.uri, "Completed")

    def start_export(self, database_id: str, *, destination: BacpacLocation, login: SqlLogin) -> ImportExportOperation:
        done = self.export_database(database_id, destination=destination, login=login)
        if self.polls_left == 0:
            return ImportExportOperation("", "", done)
        return ImportExportOperation("https://arm/operations/op-1", "https://arm/operationResults/op-1")

    def export_status(self, operation: ImportExportOperation, database_id: str) -> ExportResult | None:
        if self.polls_left > 0:
            self.polls_left -= 1
            return None
        return ExportResult("req-1", database_id.rsplit("/", 1)[-1], "blob", "Completed")


class FakeStaging:
    def __init__(self) -> None:
        self.blobs: set[str] = set()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:10000/devstoreaccount1/bulwark-bacpac-staging/{name}"

    def writable(self, name: str, expiry: dt.datetime) -> BacpacLocation:
        self.blobs.add(name)
        return BacpacLocation(self.url(name), Secret("?sv=1&sig=SECRETSIGNATURE"), "SharedAccessKey")

    def delete(self, name: str) -> bool:
        if name in self.blobs:
            self.blobs.remove(name)
            return True
        return False


class FakeLauncher:
    def __init__(self) -> None:
        self.launched: list[tuple[str, str, str]] = []

    def launch(self, *, name: str, job_json: str, location: str) -> str:
        self.launched.append((name, job_json, location))
        return f"ref-{name}"

    def state(self, reference: str) -> WorkerRun:
        return WorkerRun("running")

    def logs(self, reference: str, *, tail: int = 20) -> str:
        return ""

    def remove(self, reference: str) -> None:
        return None


class FixedClock:
    def now(self) -> dt.datetime:
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def policies(tmp_path: Path, **sql: Any) -> SqlPolicies:
    tmp_path.mkdir(parents=True, exist_ok=True)
    secret = tmp_path / "sql.password"
    secret.write_text(PASSWORD + "\n")
    (tmp_path / "repo.passphrase").write_text("passphrase\n")
    store = InMemoryPolicyStore()
    for policy_id, kinds in (("mixed", ["vm", "sql_database"]), ("vms", ["vm"])):
        document: dict[str, Any] = {
            "id": policy_id,
            "scope": {"kinds": kinds, "resource_groups": [GROUP], "tags": ["tier=gold"]},
            "schedule": {"time_zone": "UTC", "daily": {"times": ["03:00"]}},
            "repository": {"location": str(tmp_path / "repo"), "region": "westeurope"},
            "encryption": {"passphrase": {"file": str(tmp_path / "repo.passphrase")}},
        }
        if "vm" in kinds:
            document["snapshots"] = {"keep": 1}
        if "sql_database" in kinds:
            document["sql"] = {"retention": {"days": 7}, "login": {"file": str(secret)}, **sql}
        store.create(policy_from_dict(document))
    return SqlPolicies(store, subscription_id=SUB, key_vault=None)


def target(info: SqlDatabaseInfo) -> SqlTarget:
    return SqlTarget(info.id, info.name, info.server_id, info.resource_group, info.location)


def test_discovery_follows_the_scope_and_the_sql_mode(tmp_path: Path) -> None:
    sql = FakeSql(database("sales", tier="gold"), database("hr", tier="bronze"))
    plan = DiscoverSqlDatabases(policies(tmp_path), sql).run(DiscoverRequest("mixed", "s1"))  # type: ignore[arg-type]
    assert [d.name for d in plan.databases] == ["sales"] and plan.mode == SQL_DIRECT
    assert sql.selections == [Selection(resource_groups=("data",))]
    assert DiscoverSqlDatabases(policies(tmp_path), sql).run(DiscoverRequest("vms", "s1")).databases == ()  # type: ignore[arg-type]
    staged = policies(tmp_path / "x", mode="staging", staging_server=STAGING, staging_region="northeurope")
    plan = DiscoverSqlDatabases(staged, sql).run(DiscoverRequest("mixed", "s2"))  # type: ignore[arg-type]
    assert plan.mode == SQL_STAGING and plan.staging_server == STAGING and plan.staging_region == "northeurope"


def test_the_export_keeps_the_password_and_the_sas_inside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sales = database("sales", tier="gold")
    sql, staging = FakeSql(sales), FakeStaging()
    export = ExportBacpac(sql, policies(tmp_path), SecretResolvers(), staging, FixedClock())  # type: ignore[arg-type]
    result = export.run(SqlExportRequest("mixed", "s1", target(sales), sales.id))
    assert result.exported and result.blob_url == staging.url(staging_blob_name("s1", target(sales)))
    [(exported, destination, login)] = sql.exports
    assert exported == sales.id and login.login == "bulwarkadmin" and login.password.reveal() == PASSWORD
    assert "sig=" in destination.key.reveal()
    text = json.dumps(result.to_dict()) + caplog.text
    assert PASSWORD not in text and "SECRETSIGNATURE" not in text
    sql.fail_export = SqlExportFailedError("The export service could not reach database 'sales' (firewall: x).")
    refused = export.run(SqlExportRequest("mixed", "s2", target(sales), sales.id))
    assert not refused.exported and "firewall" in refused.reason and refused.blob_url == ""


def test_a_long_export_is_started_then_polled_until_it_ends(tmp_path: Path) -> None:
    sales = database("sales", tier="gold")
    sql, staging = FakeSql(sales), FakeStaging()
    sql.polls_left = 2
    export = ExportBacpac(sql, policies(tmp_path), SecretResolvers(), staging, FixedClock(), poll_seconds=7)  # type: ignore[arg-type]
    started = export.run(SqlExportRequest("mixed", "s1", target(sales), sales.id))
    assert started.pending and not started.exported and started.poll_seconds == 7
    assert started.status_url == "https://arm/operations/op-1" and PASSWORD not in json.dumps(started.to_dict())
    poll = SqlExportPoll("s1", sales.id, started.blob_url, started.status_url, started.result_url, 7)
    answers = [export.poll(poll) for _ in range(3)]
    assert [a.pending for a in answers] == [True, True, False]
    assert answers[-1].exported and answers[-1].blob_url == started.blob_url


def test_cleanup_deletes_what_exists_and_tolerates_what_does_not(tmp_path: Path) -> None:
    sales = database("sales")
    copy = database(staging_copy_name("s1", target(sales)), server=STAGING)
    sql, staging = FakeSql(sales, copy), FakeStaging()
    staging.blobs.add(staging_blob_name("s1", target(sales)))
    request = SqlBackupRequest("mixed", "s1", target(sales), SQL_STAGING, STAGING, "northeurope")
    cleanup = SqlCleanup(sql, staging)  # type: ignore[arg-type]
    first = cleanup.run(request)
    assert first.copy_deleted == copy.id and first.blob_deleted and not staging.blobs
    assert sql.deleted == [copy.id] and sales.id.lower() in sql.databases  # never the source
    again = cleanup.run(request)
    assert again.copy_deleted is None and again.blob_deleted is None


def test_the_bacpac_job_spec_holds_references_only_and_runs_where_the_data_is(tmp_path: Path) -> None:
    sales = database("sales")
    launcher, status = FakeLauncher(), InMemoryJobStatusStore()
    settings = JobSettings(
        ArmRef("stack-file", path="/stack.json"), StatusRef("http://127.0.0.1:1/devstoreaccount1", "t")
    )
    jobs = BacpacJobs(
        policies=policies(tmp_path), launcher=launcher, status=status, settings=settings, clock=FixedClock()
    )
    blob = FakeStaging().url("k/sales.bacpac")
    handle = jobs.start(StartBacpacJobRequest("mixed", "s1", target(sales), blob, sales.id, "northeurope", 2))
    [(name, job_json, location)] = launcher.launched
    spec = JobSpec.from_json(job_json)
    assert spec.kind == "bacpac-backup" and spec.source.kind == "bacpac-blob" and spec.attempt == 2
    assert spec.source.disk_id == sales.id and spec.source.snapshot_id == blob and location == "northeurope"
    assert handle.job_id == spec.job_id and handle.attempt == 2 and name.endswith("-a2")
    record = status.get(spec.job_id)
    assert record is not None and record.state == "pending"
    assert PASSWORD not in job_json
