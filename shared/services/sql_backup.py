"""The SQL (BACPAC) use cases behind the SQL activities: discover, pre-flight, staging copy, export,
start the BACPAC worker, record the point, clean up.

Secrets stay here, inside the activities: the SQL administrator's password is resolved from the
policy's ``sql.login`` reference and the staging blob's SAS is made from the app's storage account
key only while an export runs; neither is returned, logged or put into a message. Messages carry
database ids and the staging blob's plain URL.

Names are derived from the session and the database, so every step (and a retried activity) finds
the same staging copy and the same staging blob, and the cleanup can delete both even when the step
that made them failed half-way:

* staging copy: ``bulwark-<database name>-<session key>`` on the policy's staging server;
* staging BACPAC: container ``bulwark-bacpac-staging``, blob ``<session key>/<database key>.bacpac``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Protocol

from shared.azure.model import (
    STAGING_CONTAINER,
    BacpacLocation,
    ImportExportOperation,
    Secret,
    Selection,
    SqlDatabaseInfo,
    SqlLogin,
)
from shared.azure.ports import SqlCatalogProbe, SqlDatabases
from shared.catalog.model import PointKind, RestorePoint
from shared.catalog.port import Catalog
from shared.core.clock import Clock, format_time, parse_time
from shared.core.errors import (
    AzureAuthError,
    AzureResourceNotFoundError,
    ConfigError,
    SqlExportFailedError,
    SqlExportRefusedError,
    UsageError,
)
from shared.policy.azure_ids import ResourceKind
from shared.policy.model import Policy, SqlMode
from shared.policy.scope import scope_includes
from shared.policy.store import PolicyStore
from shared.telemetry.spans import current_traceparent

from .job_spec import JobSource, JobSpec, RepositoryRef, SecretRef
from .job_status import JobStatus, JobStatusStore
from .messages import (
    SQL_DIRECT,
    SQL_STAGING,
    DiscoverRequest,
    JobHandle,
    RecordPointsRequest,
    RecordPointsResult,
    SqlBackupRequest,
    SqlCleanupResult,
    SqlCopyResult,
    SqlExportPoll,
    SqlExportRequest,
    SqlExportResult,
    SqlPlan,
    SqlPreflightResult,
    SqlTarget,
    StartBacpacJobRequest,
)
from .policy_plans import plan_of
from .ports import SecretResolver, WorkerLauncher
from .vm_backup import session_key
from .worker_jobs import JobSettings, job_id_for, worker_name

__all__ = [
    "STAGING_CONTAINER",
    "BacpacJobs",
    "BacpacStaging",
    "DiscoverSqlDatabases",
    "ExportBacpac",
    "RecordBacpacPoint",
    "SqlCleanup",
    "SqlCopyToStaging",
    "SqlPolicies",
    "SqlPreflight",
    "bacpac_point_id",
    "staging_blob_name",
    "staging_copy_name",
]

TAG_POLICY = "bulwark-policy"
TAG_SESSION = "bulwark-session"
TAG_SOURCE = "bulwark-source"
EXPORT_SAS_HOURS = 24
"""The export service may run 20 hours; the staging blob's SAS outlives it."""
log = logging.getLogger(__name__)

# What another attempt of the same export will not change: the database itself must change first.
_REFUSALS = (SqlExportRefusedError, SqlExportFailedError, AzureAuthError, ConfigError, UsageError)


def _key(text: str) -> str:
    return hashlib.sha256(text.lower().encode()).hexdigest()[:12]


def staging_copy_name(session_id: str, database: SqlTarget) -> str:
    """The staging copy of ``database`` for one session (at most 128 characters)."""
    return f"bulwark-{database.name[:80]}-{session_key(session_id)}"


def staging_blob_name(session_id: str, database: SqlTarget) -> str:
    return f"{session_key(session_id)}/{database.name[:60]}-{_key(database.database_id)}.bacpac"


def bacpac_point_id(session_id: str, database_id: str) -> str:
    """The catalog id of a database's BACPAC point in a session."""
    return f"bak-{session_key(session_id)}-{_key(database_id)}"


class BacpacStaging(Protocol):
    """The staging container of BACPACs in the app's storage account."""

    def url(self, name: str) -> str:
        """The blob's plain URL (no SAS)."""
        ...

    def writable(self, name: str, expiry: dt.datetime) -> BacpacLocation:
        """Where the export service may write ``name`` (creates the container): URL + SAS."""
        ...

    def delete(self, name: str) -> bool:
        """Delete the blob; False when it was not there."""
        ...


class SqlPolicies:
    """The stored policy itself (its ``sql`` section and scope), and the secret of its SQL login."""

    def __init__(self, store: PolicyStore, *, subscription_id: str, key_vault: str | None) -> None:
        self._store = store
        self._subscription = subscription_id
        self._key_vault = key_vault

    def policy(self, policy_id: str) -> Policy:
        return self._store.get(policy_id).policy

    def login_reference(self, policy: Policy) -> SecretRef:
        login = policy.sql.login if policy.sql else None
        if login is None:
            raise ConfigError(
                f"policy '{policy.id}' names no SQL login, and this build exports with SQL authentication only",
                hint='set sql.login to the server administrator password\'s reference, e.g. {"file": "..."}',
            )
        if login.file:
            return SecretRef("file", path=login.file)
        if login.key_vault_secret and self._key_vault:
            return SecretRef("keyvault", vault=self._key_vault, name=login.key_vault_secret)
        raise ConfigError(f"policy '{policy.id}': sql.login names a Key Vault secret but the app has no Key Vault")

    def repository(self, policy: Policy) -> RepositoryRef:
        return plan_of(policy, subscription_id=self._subscription, key_vault=self._key_vault).repository

    @property
    def subscription_id(self) -> str:
        return self._subscription


class DiscoverSqlDatabases:
    """The user databases a policy protects now (none when its scope has no ``sql_database`` kind)."""

    def __init__(self, policies: SqlPolicies, sql: SqlDatabases) -> None:
        self._policies = policies
        self._sql = sql

    def run(self, request: DiscoverRequest) -> SqlPlan:
        policy = self._policies.policy(request.policy_id)
        scope = policy.scope
        if ResourceKind.SQL_DATABASE not in scope.kinds or policy.sql is None:
            return SqlPlan(request.policy_id, request.session_id)
        mine = f"/subscriptions/{self._policies.subscription_id}/".lower()
        if scope.subscriptions:
            selection = Selection()
        else:
            groups = tuple(
                sorted({g.strip("/").split("/")[3] for g in scope.resource_groups if g.lower().startswith(mine)})
            )
            listed = tuple(
                r for r in scope.resources if r.lower().startswith(mine) and "/providers/microsoft.sql/" in r.lower()
            )
            if not groups and not listed:
                return SqlPlan(request.policy_id, request.session_id)
            selection = Selection(resource_groups=groups, vm_ids=listed)
        found = [d for d in self._sql.discover(selection) if scope_includes(scope, d.id, d.tags).included]
        staging = policy.sql.mode is SqlMode.STAGING
        return SqlPlan(
            policy_id=request.policy_id,
            session_id=request.session_id,
            mode=SQL_STAGING if staging else SQL_DIRECT,
            staging_server=policy.sql.staging_server if staging else None,
            staging_region=policy.sql.staging_region if staging else None,
            databases=tuple(_target(d) for d in found),
        )


def _target(database: SqlDatabaseInfo) -> SqlTarget:
    return SqlTarget(database.id, database.name, database.server_id, database.resource_group, database.location)


class SqlPreflight:
    """Refuse early what BACPAC cannot export (external references, unsupported logins, > 200 GB)."""

    def __init__(self, sql: SqlDatabases, probe: SqlCatalogProbe) -> None:
        self._sql = sql
        self._probe = probe

    def run(self, request: SqlBackupRequest) -> SqlPreflightResult:
        database = self._sql.get_database(request.database.database_id)
        try:
            size = self._sql.preflight_export(database, self._probe.probe(database))
        except SqlExportRefusedError as exc:
            log.warning("session %s: %s", request.session_id, exc)
            return SqlPreflightResult(database.id, False, reason=str(exc))
        return SqlPreflightResult(database.id, True, size_bytes=size)


class SqlCopyToStaging:
    """A transactionally consistent copy on the staging server; a retry finds the same copy."""

    def __init__(self, sql: SqlDatabases) -> None:
        self._sql = sql

    def run(self, request: SqlBackupRequest) -> SqlCopyResult:
        if not request.staging_server:
            raise UsageError("staging mode needs the policy's sql.staging_server")
        source = self._sql.get_database(request.database.database_id)
        name = staging_copy_name(request.session_id, request.database)
        copy = self._sql.copy_database(
            source,
            server_id=request.staging_server,
            name=name,
            tags={TAG_POLICY: request.policy_id, TAG_SESSION: request.session_id[:256], TAG_SOURCE: source.id[:256]},
        )
        log.info("session %s: staging copy %s of %s", request.session_id, copy.id, source.id)
        return SqlCopyResult(copy.id, copy.name)


class ExportBacpac:
    """Start the export of a database (the source, or its staging copy) into the staging container,
    and follow it. An export can take hours, longer than an activity may run: ``run`` starts it and
    returns, the orchestrator asks ``poll`` on a durable timer until it ends.

    The SQL administrator's password and the blob's SAS exist only inside ``run``."""

    def __init__(
        self,
        sql: SqlDatabases,
        policies: SqlPolicies,
        secrets: SecretResolver,
        staging: BacpacStaging,
        clock: Clock,
        *,
        poll_seconds: int = 30,
    ) -> None:
        self._sql = sql
        self._policies = policies
        self._secrets = secrets
        self._staging = staging
        self._clock = clock
        self._poll_seconds = poll_seconds

    def run(self, request: SqlExportRequest) -> SqlExportResult:
        name = staging_blob_name(request.session_id, request.database)
        try:
            policy = self._policies.policy(request.policy_id)
            exported = self._sql.get_database(request.export_from)
            server = self._sql.get_server(exported.server_id)
            if not server.administrator_login:
                raise ConfigError(f"server '{server.name}' reports no administrator login to export with")
            password = self._secrets.resolve(self._policies.login_reference(policy))
            login = SqlLogin(server.administrator_login, Secret(password))
            del password
            destination = self._staging.writable(name, self._clock.now() + dt.timedelta(hours=EXPORT_SAS_HOURS))
            operation = self._sql.start_export(exported.id, destination=destination, login=login)
        except _REFUSALS as exc:
            log.warning("session %s: export of %s failed: %s", request.session_id, request.export_from, exc)
            return SqlExportResult(False, reason=str(exc))
        blob_url = self._staging.url(name)
        if operation.result is not None:
            log.info("session %s: exported %s to %s", request.session_id, request.export_from, blob_url)
            return SqlExportResult(True, blob_url=blob_url, request_id=operation.result.request_id)
        log.info("session %s: export of %s to %s started", request.session_id, request.export_from, blob_url)
        return SqlExportResult(
            False,
            blob_url=blob_url,
            pending=True,
            status_url=operation.status_url,
            result_url=operation.result_url,
            poll_seconds=self._poll_seconds,
        )

    def poll(self, request: SqlExportPoll) -> SqlExportResult:
        operation = ImportExportOperation(request.status_url, request.result_url)
        try:
            result = self._sql.export_status(operation, request.export_from)
        except _REFUSALS as exc:
            log.warning("session %s: export of %s failed: %s", request.session_id, request.export_from, exc)
            return SqlExportResult(False, reason=str(exc))
        if result is None:
            return SqlExportResult(
                False,
                blob_url=request.blob_url,
                pending=True,
                status_url=request.status_url,
                result_url=request.result_url,
                poll_seconds=request.poll_seconds,
            )
        log.info("session %s: exported %s to %s", request.session_id, request.export_from, request.blob_url)
        return SqlExportResult(True, blob_url=request.blob_url, request_id=result.request_id)


class BacpacJobs:
    """Start the worker that stores a staging BACPAC in the repository (job kind ``bacpac-backup``),
    in the region of the staging server (staging mode) or of the source database, as the seed says."""

    def __init__(
        self,
        *,
        policies: SqlPolicies,
        launcher: WorkerLauncher,
        status: JobStatusStore,
        settings: JobSettings,
        clock: Clock,
    ) -> None:
        self._policies = policies
        self._launcher = launcher
        self._status = status
        self._settings = settings
        self._clock = clock

    def start(self, request: StartBacpacJobRequest) -> JobHandle:
        policy = self._policies.policy(request.policy_id)
        repository = self._policies.repository(policy)
        database = request.database
        job_id = job_id_for(request.session_id, database.database_id)
        spec = JobSpec(
            job_id=job_id,
            kind="bacpac-backup",
            attempt=request.attempt,
            traceparent=current_traceparent(request.traceparent),
            repository=repository,
            arm=self._settings.arm,
            status=self._settings.status,
            source=JobSource(kind="bacpac-blob", disk_id=database.database_id, snapshot_id=request.blob_url),
            tags={
                "policy": request.policy_id,
                "session": request.session_id,
                "database": database.database_id,
                "server": database.server_id,
                "exported_from": request.exported_from,
            },
        )
        self._status.put(JobStatus(job_id, request.attempt, "pending", format_time(self._clock.now())))
        region = request.worker_location  # the seed: where the staging server or the source database is
        worker = self._launcher.launch(
            name=worker_name(job_id, request.attempt), job_json=spec.to_json(), location=region
        )
        log.info("bacpac job %s attempt %d: worker %s in %s", job_id, request.attempt, worker, region)
        return JobHandle(
            job_id=job_id,
            attempt=request.attempt,
            worker=worker,
            disk_id=database.database_id,
            snapshot_id=request.blob_url,
            poll_seconds=self._settings.poll_seconds,
            deadline_seconds=self._settings.deadline_seconds,
            max_attempts=self._settings.max_attempts,
        )


class RecordBacpacPoint:
    """The catalog's BACPAC point (kind ``bacpac``) of each database; insert or replace by id."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def run(self, request: RecordPointsRequest) -> RecordPointsResult:
        for point in request.points:
            self._catalog.add_point(
                RestorePoint(
                    point_id=bacpac_point_id(point.session_id, point.vm_id),
                    resource_id=point.vm_id,
                    kind=PointKind.BACPAC,
                    time=parse_time(point.time),
                    policy_id=point.policy_id,
                    session_id=point.session_id,
                    size=point.size_bytes,
                    repository_point_id=point.point_id,
                )
            )
        return RecordPointsResult(len(request.points))


class SqlCleanup:
    """Delete the session's staging copy (staging mode) and staging BACPAC of a database; both may
    be missing (the step that makes them failed or never ran)."""

    def __init__(self, sql: SqlDatabases, staging: BacpacStaging) -> None:
        self._sql = sql
        self._staging = staging

    def run(self, request: SqlBackupRequest) -> SqlCleanupResult:
        copy_id: str | None = None
        if request.mode == SQL_STAGING and request.staging_server:
            candidate = f"{request.staging_server}/databases/{staging_copy_name(request.session_id, request.database)}"
            try:
                self._sql.get_database(candidate)
            except AzureResourceNotFoundError:
                pass
            else:
                self._sql.delete_database(candidate)
                copy_id = candidate
        name = staging_blob_name(request.session_id, request.database)
        blob = self._staging.url(name) if self._staging.delete(name) else None
        log.info(
            "session %s: cleaned up %s: copy %s, blob %s", request.session_id, request.database.name, copy_id, blob
        )
        return SqlCleanupResult(copy_deleted=copy_id, blob_deleted=blob)
