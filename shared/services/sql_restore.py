"""SQL restore: a BACPAC point rebuilt from the repository and imported into a new database.

The use cases behind the ``sql_restore_orchestrator``'s activities (and the HTTP trigger's
up-front validation, which runs the same :class:`ValidateSqlRestore`)::

    validate(SqlRestoreRequest) -> SqlRestorePlan     nothing is created; bad input is a UsageError
    start_job(plan, attempt) -> JobHandle             a ``bacpac-restore`` worker writes the staging blob
    import_(plan) -> SqlRestoreImport                 starts the ARM import into ``plan.import_name``;
    import_.poll(...) -> SqlRestoreImport             ... until it ended (a durable timer between asks)
    swap(plan) -> SqlRestoreSwap                      optional: the old database steps aside
    cleanup(SqlRestoreCleanupRequest)                 always: the staging blob; after a failed
                                                      import, the half-imported database too

Where the restored database ends up:

* ``name`` free, no swap: it is imported as ``name``;
* ``swap_with_original`` (needs ``confirm``): imported as ``name`` (which must be free), then the
  original database (the point's, on the same server) is renamed ``<original>-old-<stamp>`` and
  the restored one takes the original's name;
* ``name`` taken and ``confirm``: imported as ``<name>-restore-<stamp>``, then the same swap with
  the database called ``name``. Without ``confirm`` a taken name is refused, before anything runs.

Secrets stay inside the activities: the SQL administrator's password is resolved from a reference
(the request's ``login``, else the point's policy's ``sql.login``), and the import's read SAS for the
staging blob is made only while the import runs. Plans and results carry ids, names, references.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass, replace
from typing import Protocol

from shared.azure.model import BacpacLocation, ImportExportOperation, Secret, SqlLogin
from shared.azure.ports import SqlDatabases
from shared.catalog.model import PointKind
from shared.catalog.port import Catalog
from shared.core.clock import Clock, format_time
from shared.core.errors import (
    AzureResourceNotFoundError,
    BulwarkError,
    FieldProblem,
    InvalidDocumentError,
    UsageError,
)
from shared.policy.model import Policy
from shared.telemetry.spans import current_traceparent

from .bacpac_restore import load_bacpac_point
from .job_spec import JobSource, JobSpec, RepositoryRef, SecretRef
from .job_status import JobStatus, JobStatusStore
from .messages import JobHandle, Message
from .ports import RepositoryOpener, SecretResolver, WorkerLauncher
from .worker_jobs import JobSettings, job_id_for, worker_name

__all__ = [
    "IMPORT_SAS_HOURS",
    "RESTORE_PREFIX",
    "ImportRestoredBacpac",
    "RestorePolicies",
    "RestoreStaging",
    "SqlRestoreCleanup",
    "SqlRestoreCleanupRequest",
    "SqlRestoreImport",
    "SqlRestoreImportPoll",
    "SqlRestoreJobRequest",
    "SqlRestoreJobs",
    "SqlRestorePlan",
    "SqlRestoreRequest",
    "SqlRestoreResult",
    "SqlRestoreSwap",
    "SwapRestoredDatabase",
    "ValidateSqlRestore",
    "restore_blob_name",
]

RESTORE_PREFIX = "restore"
"""Staging blobs of restores live under ``restore/`` in the staging container."""
IMPORT_SAS_HOURS = 24
_SUBJECT = "the SQL restore request"
# Azure SQL database names: 1-128 characters, none of <>*%&:\/? and not ending in a dot or a space.
_DATABASE_NAME = re.compile(r"^[^<>*%&:\\/?\x00-\x1f]{1,128}(?<![. ])$")
log = logging.getLogger(__name__)


# -- messages --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlRestoreRequest(Message):
    """What a caller asks for (POST /api/restores/sql, ``bulwark restore sql``); references only."""

    restore_id: str
    """The orchestration's instance id: names the staging blob and the worker job."""
    server_id: str
    name: str
    stamp: str
    """UTC ``YYYYmmddHHMMSS`` of the request: names a database that steps aside (``-old-<stamp>``)."""
    point_id: str | None = None
    """A catalog point id (kind bacpac); or, with ``repository``, the repository's point id."""
    repository: RepositoryRef | None = None
    login: SecretRef | None = None
    """The target server administrator's password; default: the point's policy's ``sql.login``."""
    original_id: str | None = None
    """The database the point was made from, when the point is not in the catalog (for a swap)."""
    swap_with_original: bool = False
    confirm: bool = False
    traceparent: str = ""
    """The restore's trace (ids only)."""


@dataclass(frozen=True)
class SqlRestorePlan(Message):
    restore_id: str
    server_id: str
    server_name: str
    location: str
    import_name: str
    final_name: str
    repository: RepositoryRef
    repository_point_id: str
    login: SecretRef
    blob_name: str
    size_bytes: int = 0
    catalog_point_id: str | None = None
    swap_target_id: str | None = None
    """The database that steps aside for the restored one (renamed ``aside_name``), if any."""
    aside_name: str | None = None
    traceparent: str = ""
    """The restore's trace (ids only): its activities and worker join it."""

    @property
    def import_id(self) -> str:
        return f"{self.server_id}/databases/{self.import_name}"


@dataclass(frozen=True)
class SqlRestoreJobRequest(Message):
    plan: SqlRestorePlan
    attempt: int = 1


@dataclass(frozen=True)
class SqlRestoreImport(Message):
    database_id: str
    name: str
    pending: bool = False
    """The import runs on: ask again (sql_restore_poll_import) after ``poll_seconds``."""
    status_url: str = ""
    """ARM's operation URLs to follow it by (no secret in them)."""
    result_url: str = ""
    poll_seconds: int = 30


@dataclass(frozen=True)
class SqlRestoreImportPoll(Message):
    plan: SqlRestorePlan
    started: SqlRestoreImport


@dataclass(frozen=True)
class SqlRestoreSwap(Message):
    database_id: str
    aside_id: str


@dataclass(frozen=True)
class SqlRestoreCleanupRequest(Message):
    plan: SqlRestorePlan
    remove_database: bool
    """The import failed (or never finished): the database it may have begun is deleted."""


@dataclass(frozen=True)
class SqlRestoreCleanupResult(Message):
    blob_deleted: bool = False
    database_deleted: str | None = None


@dataclass(frozen=True)
class SqlRestoreResult(Message):
    """The orchestration's output."""

    restore_id: str
    status: str
    server_id: str
    name: str
    """Where the restored database is (its final name once swapped)."""
    database_id: str | None = None
    aside_id: str | None = None
    """The database that stepped aside (``<name>-old-<stamp>``), after a swap."""
    point_id: str | None = None
    repository_point_id: str | None = None
    reasons: tuple[str, ...] = ()


def restore_blob_name(restore_id: str) -> str:
    digest = hashlib.sha256(restore_id.encode()).hexdigest()[:24]
    return f"{RESTORE_PREFIX}/{digest}.bacpac"


# -- ports -----------------------------------------------------------------------------------------


class RestoreStaging(Protocol):
    """The staging container (``shared.azure.bacpac_blobs.BlobBacpacStaging``)."""

    def url(self, name: str) -> str: ...

    def readable(self, name: str, expiry: dt.datetime) -> BacpacLocation: ...

    def ensure_container(self) -> None: ...

    def delete(self, name: str) -> bool: ...


class RestorePolicies(Protocol):
    """A stored policy, its repository and its SQL login (``shared.services.sql_backup.SqlPolicies``)."""

    def policy(self, policy_id: str) -> Policy: ...

    def repository(self, policy: Policy) -> RepositoryRef: ...

    def login_reference(self, policy: Policy) -> SecretRef: ...


# -- use cases -------------------------------------------------------------------------------------


def _problem(path: str, message: str, fix: str) -> InvalidDocumentError:
    return InvalidDocumentError(_SUBJECT, [FieldProblem(path, message, fix)])


class ValidateSqlRestore:
    """Resolve the point and check the target; creates nothing. UsageError (400) for bad input,
    PointNotFoundError (404) for a point neither the catalog nor the repository has."""

    def __init__(
        self,
        *,
        sql: SqlDatabases,
        catalog: Catalog,
        policies: RestorePolicies,
        secrets: SecretResolver,
        repositories: RepositoryOpener,
    ) -> None:
        self._sql = sql
        self._catalog = catalog
        self._policies = policies
        self._secrets = secrets
        self._repositories = repositories

    def run(self, request: SqlRestoreRequest) -> SqlRestorePlan:
        if not request.point_id:
            raise _problem(
                "point", "is missing", "name a BACPAC restore point: its catalog id, or a repository point id"
            )
        if not _DATABASE_NAME.match(request.name or ""):
            raise _problem(
                "name",
                f"'{request.name}' is not a valid database name",
                "use 1-128 characters without <>*%&:\\/? that do not end in a dot or a space",
            )
        if request.swap_with_original and not request.confirm:
            raise _problem(
                "confirm",
                "is required with swap_with_original",
                "the original database is renamed aside; send confirm: true (CLI: --yes) to agree",
            )
        catalog_point: str | None = None
        original = request.original_id
        if request.repository is None:
            point = self._catalog.get_point(request.point_id)
            if point.kind is not PointKind.BACPAC or not point.repository_point_id:
                raise _problem(
                    "point",
                    f"'{point.point_id}' is a {point.kind.value} point, not a BACPAC point",
                    "choose a point of kind bacpac (GET /api/points?resource=<database id>&kind=bacpac)",
                )
            policy = self._policies.policy(point.policy_id)
            repository = self._policies.repository(policy)
            login = request.login or self._policies.login_reference(policy)
            repository_point = point.repository_point_id
            catalog_point, original = point.point_id, original or point.resource_id
        else:
            if request.login is None:
                raise _problem(
                    "login",
                    "is missing",
                    "without a catalog point, name the server administrator's password: "
                    '{"file": "/path"} or {"key_vault_secret": "name"}',
                )
            repository, login, repository_point = request.repository, request.login, request.point_id
        try:
            server = self._sql.get_server(request.server_id)
        except AzureResourceNotFoundError:
            raise _problem(
                "server", f"no SQL server '{request.server_id}'", "give the target server's resource id"
            ) from None
        if not server.administrator_login:
            raise _problem("server", f"server '{server.name}' reports no administrator login", "use another server")
        passphrase = self._secrets.resolve(repository.passphrase)
        repo = self._repositories.open(repository.location, passphrase)
        del passphrase
        stored = load_bacpac_point(repo, repository_point)
        size = sum(m.size for m in stored.files.members) if stored.files is not None else 0
        plan = SqlRestorePlan(
            traceparent=request.traceparent,
            restore_id=request.restore_id,
            server_id=server.id,
            server_name=server.name,
            location=server.location,
            import_name=request.name,
            final_name=request.name,
            repository=repository,
            repository_point_id=stored.point_id,
            login=login,
            blob_name=restore_blob_name(request.restore_id),
            size_bytes=size,
            catalog_point_id=catalog_point,
        )
        existing = self._database(f"{server.id}/databases/{request.name}")
        if existing is not None:
            if not request.confirm:
                raise _problem(
                    "name",
                    f"database '{request.name}' exists on server '{server.name}'",
                    "choose a new name, or send confirm: true (CLI: --yes) to restore under this name "
                    f"(the existing database is renamed '{request.name}-old-<time>' and kept)",
                )
            plan = replace(
                plan, import_name=_suffixed(request.name, f"-restore-{request.stamp}"), swap_target_id=existing
            )
        elif request.swap_with_original:
            if not original:
                raise _problem(
                    "original", "is missing", "name the database to swap with (the point is not in the catalog)"
                )
            if not original.lower().startswith(f"{server.id.lower()}/databases/"):
                raise _problem(
                    "swap_with_original",
                    f"the original database '{original}' is not on server '{server.name}'",
                    "restore onto the original's server to swap, or restore without swap_with_original",
                )
            found = self._database(original)
            if found is None:
                raise _problem(
                    "swap_with_original",
                    f"the original database '{original}' does not exist any more",
                    "restore without swap_with_original, under the name you want",
                )
            plan = replace(plan, swap_target_id=found, final_name=found.rsplit("/", 1)[-1])
        if plan.swap_target_id is not None:
            plan = replace(plan, aside_name=_suffixed(plan.final_name, f"-old-{request.stamp}"))
            if self._database(f"{server.id}/databases/{plan.import_name}") is not None:
                raise _problem("name", f"'{plan.import_name}' exists on server '{server.name}'", "try again later")
        return plan

    def _database(self, database_id: str) -> str | None:
        try:
            return self._sql.get_database(database_id).id
        except AzureResourceNotFoundError:
            return None


def _suffixed(name: str, suffix: str) -> str:
    return f"{name[: 128 - len(suffix)]}{suffix}"


class SqlRestoreJobs:
    """Start the worker (kind ``bacpac-restore``) that rebuilds the point into the staging blob, in
    the target server's region."""

    def __init__(
        self,
        *,
        launcher: WorkerLauncher,
        status: JobStatusStore,
        staging: RestoreStaging,
        settings: JobSettings,
        clock: Clock,
    ) -> None:
        self._launcher = launcher
        self._status = status
        self._staging = staging
        self._settings = settings
        self._clock = clock

    def start(self, request: SqlRestoreJobRequest) -> JobHandle:
        plan = request.plan
        self._staging.ensure_container()
        job_id = job_id_for(plan.restore_id, plan.repository_point_id)
        blob_url = self._staging.url(plan.blob_name)
        spec = JobSpec(
            job_id=job_id,
            kind="bacpac-restore",
            attempt=request.attempt,
            repository=plan.repository,
            arm=self._settings.arm,
            status=self._settings.status,
            source=JobSource(kind="bacpac-point", disk_id=blob_url, snapshot_id=plan.repository_point_id),
            tags={"restore": plan.restore_id, "server": plan.server_id, "name": plan.import_name},
            traceparent=current_traceparent(plan.traceparent),
        )
        self._status.put(JobStatus(job_id, request.attempt, "pending", format_time(self._clock.now())))
        worker = self._launcher.launch(
            name=worker_name(job_id, request.attempt), job_json=spec.to_json(), location=plan.location
        )
        log.info(
            "restore %s: bacpac-restore job %s attempt %d, worker %s", plan.restore_id, job_id, request.attempt, worker
        )
        return JobHandle(
            job_id=job_id,
            attempt=request.attempt,
            worker=worker,
            disk_id=plan.import_id,
            snapshot_id=plan.repository_point_id,
            poll_seconds=self._settings.poll_seconds,
            deadline_seconds=self._settings.deadline_seconds,
            max_attempts=self._settings.max_attempts,
        )


class ImportRestoredBacpac:
    """ARM import of the staging blob into a new database; the password and the SAS exist only in
    ``run``, which starts the import and returns. An import can take hours, longer than an activity
    may run: the orchestrator asks ``poll`` on a durable timer until it ends."""

    def __init__(
        self,
        sql: SqlDatabases,
        secrets: SecretResolver,
        staging: RestoreStaging,
        clock: Clock,
        *,
        poll_seconds: int = 30,
    ) -> None:
        self._sql = sql
        self._secrets = secrets
        self._staging = staging
        self._clock = clock
        self._poll_seconds = poll_seconds

    def run(self, plan: SqlRestorePlan) -> SqlRestoreImport:
        server = self._sql.get_server(plan.server_id)
        if not server.administrator_login:
            raise UsageError(f"server '{server.name}' reports no administrator login to import with")
        login = SqlLogin(server.administrator_login, Secret(self._secrets.resolve(plan.login)))
        source = self._staging.readable(plan.blob_name, self._clock.now() + dt.timedelta(hours=IMPORT_SAS_HOURS))
        operation = self._sql.start_import(plan.server_id, name=plan.import_name, source=source, login=login)
        log.info(
            "restore %s: import of point %s as %s started", plan.restore_id, plan.repository_point_id, plan.import_name
        )
        return self.poll(
            SqlRestoreImportPoll(
                plan,
                SqlRestoreImport(
                    plan.import_id,
                    plan.import_name,
                    pending=True,
                    status_url=operation.status_url,
                    result_url=operation.result_url,
                    poll_seconds=self._poll_seconds,
                ),
            )
        )

    def poll(self, request: SqlRestoreImportPoll) -> SqlRestoreImport:
        plan, started = request.plan, request.started
        operation = ImportExportOperation(started.status_url, started.result_url)
        database = self._sql.import_status(operation, plan.server_id, plan.import_name)
        if database is None:
            return started
        log.info("restore %s: imported point %s as %s", plan.restore_id, plan.repository_point_id, database.id)
        return SqlRestoreImport(database.id, database.name)


class SwapRestoredDatabase:
    """The database in the way steps aside (renamed ``aside_name``), the restored one takes its name;
    when the second rename fails the first is undone."""

    def __init__(self, sql: SqlDatabases) -> None:
        self._sql = sql

    def run(self, plan: SqlRestorePlan) -> SqlRestoreSwap:
        if plan.swap_target_id is None or plan.aside_name is None:
            raise UsageError(f"restore {plan.restore_id} has nothing to swap with")
        aside = self._sql.rename_database(plan.swap_target_id, plan.aside_name)
        try:
            restored = self._sql.rename_database(plan.import_id, plan.final_name)
        except BulwarkError:
            self._sql.rename_database(aside.id, plan.final_name)
            raise
        log.info(
            "restore %s: %s is now %s; %s took its name", plan.restore_id, plan.final_name, aside.name, restored.id
        )
        return SqlRestoreSwap(restored.id, aside.id)


class SqlRestoreCleanup:
    """Delete the staging blob (always) and, after a failed import, the database it began."""

    def __init__(self, sql: SqlDatabases, staging: RestoreStaging) -> None:
        self._sql = sql
        self._staging = staging

    def run(self, request: SqlRestoreCleanupRequest) -> SqlRestoreCleanupResult:
        plan = request.plan
        deleted: str | None = None
        if request.remove_database:
            # Validation found the name free, so a database under it now is this restore's own.
            try:
                self._sql.get_database(plan.import_id)
            except AzureResourceNotFoundError:
                pass
            else:
                self._sql.delete_database(plan.import_id)
                deleted = plan.import_id
        blob = self._staging.delete(plan.blob_name)
        log.info("restore %s: cleaned up: staging blob %s, database %s", plan.restore_id, blob, deleted)
        return SqlRestoreCleanupResult(blob_deleted=blob, database_deleted=deleted)
