"""The composition root of the function app: Settings in, the services the activities call out.

``services()`` is what activities and triggers use: on first use it reads :class:`Settings` from the
environment (the edge), builds the Azure clients, the tables, the worker launcher and every use
case once, and keeps them for the process (cached per distinct environment, so tests that point the
app at another stack get fresh services). Nothing is built at import time.

Tables in the app's storage account: ``bulwarkpolicies`` (PolicyStore), ``bulwarksessions`` and
``bulwarkpoints`` (the catalog), ``bulwarkjobs`` (job status).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from azure.data.tables import TableClient

from shared.azure.bacpac_blobs import BlobBacpacStaging
from shared.azure.clients import AzureClients
from shared.azure.model import DatabaseCatalog, SqlDatabaseInfo
from shared.azure.pageblob import VhdBlobs
from shared.azure.ports import SqlCatalogProbe
from shared.azure.sql_catalog import SimulatorCatalogProbe
from shared.catalog.port import Catalog
from shared.catalog.table import AzureTableCatalog
from shared.config import ENV_NAMES, Settings, table_endpoint
from shared.core.clock import Clock, SystemClock
from shared.policy.store import PolicyStore
from shared.policy.table_store import AzureTablePolicyStore
from shared.services.browse import PointBrowser
from shared.services.catalog_records import CatalogRecords
from shared.services.image_retention import ImageRetention
from shared.services.job_spec import StatusRef
from shared.services.plan import Policies
from shared.services.policy_plans import PolicyStorePolicies
from shared.services.ports import PointCatalog, SessionCatalog, WorkerLauncher
from shared.services.sql_backup import (
    BacpacJobs,
    DiscoverSqlDatabases,
    ExportBacpac,
    RecordBacpacPoint,
    SqlCleanup,
    SqlCopyToStaging,
    SqlPolicies,
    SqlPreflight,
)
from shared.services.sql_restore import (
    ImportRestoredBacpac,
    SqlRestoreCleanup,
    SqlRestoreJobs,
    SwapRestoredDatabase,
    ValidateSqlRestore,
)
from shared.services.vm_backup import (
    ApplySnapshotRetention,
    DiscoverVms,
    RecordPoints,
    RecordSession,
    SnapshotDisk,
)
from shared.services.vm_restore import VmRestores
from shared.services.worker_jobs import JobSettings, WorkerJobs
from shared.telemetry.setup import TELEMETRY_ENV, configure_telemetry, worker_environment
from shared.worker.adapters import DiskUploads, SecretResolvers, StoreRepositoryOpener
from shared.worker.launchers import ContainerInstancesLauncher, LocalProcessLauncher
from shared.worker.table_status import DEFAULT_TABLE as JOBS_TABLE
from shared.worker.table_status import TableJobStatusStore

__all__ = [
    "POINTS_TABLE",
    "POLICIES_TABLE",
    "SESSIONS_TABLE",
    "Services",
    "SqlRestoreServices",
    "SqlServices",
    "build_services",
    "build_sql_restore_services",
    "build_sql_services",
    "build_vm_restore_services",
    "reset_services",
    "services",
    "sql_restore_services",
    "sql_services",
    "vm_restore_services",
]

POLICIES_TABLE = "bulwarkpolicies"
SESSIONS_TABLE = "bulwarksessions"
POINTS_TABLE = "bulwarkpoints"
log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass
class Services:
    settings: Settings
    policies: Policies
    discover: DiscoverVms
    snapshot: SnapshotDisk
    jobs: WorkerJobs
    record_points: RecordPoints
    retention: ApplySnapshotRetention
    record_session: RecordSession
    catalog: Catalog
    launcher: WorkerLauncher
    clients: AzureClients
    """The process's Azure clients: the SQL and restore services are built on them too."""
    job_status: TableJobStatusStore
    job_settings: JobSettings
    """How every worker job reaches ARM and reports (backups, restores, maintenance alike)."""
    policy_store: PolicyStore | None = None
    """The stored policies themselves (the HTTP API's CRUD); None when ``policies`` was replaced."""
    image_retention: ImageRetention | None = None
    """Image-level repository retention after image-level sessions (plan, maintenance worker, catalog)."""
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _beside: dict[str, object] = field(default_factory=dict, repr=False)

    def beside(self, name: str, build: Callable[[Services], _T]) -> _T:
        """The use cases ``name``, built once on these services (their clients, tables and launcher)
        the first time an activity asks, and closed with them."""
        with _lock:
            if name not in self._beside:
                self._beside[name] = build(self)
            return cast(_T, self._beside[name])

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:  # closing is best effort
                log.warning("closing %s failed: %s", closer, exc)
        self._closers.clear()


def build_services(
    settings: Settings,
    *,
    policies: Policies | None = None,
    catalog: Catalog | None = None,
    launcher: WorkerLauncher | None = None,
    clock: Clock | None = None,
    worker_env: Mapping[str, str] | None = None,
) -> Services:
    """Everything the activities need, wired explicitly from ``settings``; parts may be replaced.
    ``worker_env``: extra variables for workers (where their telemetry goes)."""
    clock = clock or SystemClock()
    closers: list[Callable[[], None]] = []
    clients = AzureClients(settings.azure)
    closers.append(clients.close)
    compute = clients.compute()
    policy_store: PolicyStore | None = None
    if policies is None:
        table = TableClient.from_connection_string(settings.storage_connection_string, table_name=POLICIES_TABLE)
        closers.append(table.close)
        policy_store = AzurePolicyTable(table).ready()
        policies = PolicyStorePolicies(
            policy_store, subscription_id=settings.azure.subscription_id, key_vault=settings.key_vault
        )
    status = TableJobStatusStore.from_connection_string(settings.storage_connection_string, JOBS_TABLE)
    closers.append(status.close)
    if catalog is None:
        sessions_table = TableClient.from_connection_string(settings.storage_connection_string, SESSIONS_TABLE)
        points_table = TableClient.from_connection_string(settings.storage_connection_string, POINTS_TABLE)
        closers += [sessions_table.close, points_table.close]
        table_catalog = AzureTableCatalog(sessions_table, points_table)
        table_catalog.ensure_tables()
        catalog = table_catalog
    points: PointCatalog
    sessions: SessionCatalog
    points = sessions = CatalogRecords(catalog, status)
    if launcher is None:
        launcher = _launcher(settings, clients, worker_env or {})
        if isinstance(launcher, LocalProcessLauncher):
            closers.append(launcher.close)
    job_settings = JobSettings(
        arm=settings.arm_reference,
        status=StatusRef(endpoint=table_endpoint(settings.storage_connection_string), table=JOBS_TABLE),
        poll_seconds=settings.worker.poll_seconds,
        deadline_seconds=settings.worker.deadline_seconds,
        max_attempts=settings.worker.max_attempts,
    )
    jobs = WorkerJobs(
        policies=policies, catalog=points, launcher=launcher, status=status, settings=job_settings, clock=clock
    )
    image_retention = ImageRetention(
        policies=policies, catalog=catalog, launcher=launcher, status=status, settings=job_settings, clock=clock
    )
    return Services(
        settings=settings,
        policies=policies,
        discover=DiscoverVms(policies, compute),
        snapshot=SnapshotDisk(compute, compute, VhdBlobs(clients.data_plane())),
        jobs=jobs,
        record_points=RecordPoints(points),
        retention=ApplySnapshotRetention(policies, compute, points, clock),
        record_session=RecordSession(sessions),
        catalog=catalog,
        launcher=launcher,
        clients=clients,
        job_status=status,
        job_settings=job_settings,
        policy_store=policy_store,
        image_retention=image_retention,
        _closers=closers,
    )


class AzurePolicyTable(AzureTablePolicyStore):
    """The policy table, created on first use."""

    def ready(self) -> AzurePolicyTable:
        self.ensure_table()
        return self


def _launcher(settings: Settings, clients: AzureClients, worker_env: Mapping[str, str]) -> WorkerLauncher:
    worker = settings.worker
    if worker.launcher == "local-process":
        root = str(Path(__file__).resolve().parents[1])
        local = str(Path(root) / "infra" / "local")
        return LocalProcessLauncher(
            settings.state_dir.resolve() / "workers", pythonpath=os.pathsep.join([root, local]), environment=worker_env
        )
    environment = {"AZURE_CLIENT_ID": worker.identity_client_id} if worker.identity_client_id else {}
    environment.update(worker_env)
    return ContainerInstancesLauncher(
        clients.containers(),
        subscription_id=settings.azure.subscription_id,
        resource_group=worker.resource_group or "",
        image=worker.image,
        cpu=worker.cpu,
        memory_gb=worker.memory_gb,
        identity_id=worker.identity_id,
        environment=environment,
    )


_lock = threading.Lock()
_built: dict[tuple[tuple[str, str], ...], Services] = {}


def services(env: Mapping[str, str] | None = None) -> Services:
    """The process's services for the current environment (built on first use, then cached)."""
    source = os.environ if env is None else env
    key = tuple((name, source.get(name, "")) for name in ENV_NAMES + TELEMETRY_ENV)
    with _lock:
        found = _built.get(key)
        if found is None:
            configure_telemetry(source, service="bulwark-app")  # the app's edge: its first use
            found = build_services(Settings.from_env(source), worker_env=worker_environment(source))
            _built[key] = found
        return found


def reset_services() -> None:
    """Close and forget every cached Services (tests; a host reload)."""
    with _lock:
        built = list(_built.values())
        _built.clear()
    for item in built:
        item.close()


# -- SQL (BACPAC) backup -----------------------------------------------------------------------------


@dataclass
class SqlServices:
    """The SQL use cases the SQL activities call (built beside, and closed with, the app's Services)."""

    discover: DiscoverSqlDatabases
    preflight: SqlPreflight
    copy: SqlCopyToStaging
    export: ExportBacpac
    jobs: BacpacJobs
    record_point: RecordBacpacPoint
    cleanup: SqlCleanup
    staging: BlobBacpacStaging


class _CataloglessProbe:
    """Azure mode until a TDS connection is configured: only ARM's size check runs in the pre-flight
    (external references and unsupported users are then reported by the export service itself)."""

    def probe(self, database: SqlDatabaseInfo) -> DatabaseCatalog:
        return DatabaseCatalog()


def build_sql_services(app: Services, *, clock: Clock | None = None) -> SqlServices:
    settings = app.settings
    clock = clock or SystemClock()
    clients = app.clients
    sql = clients.sql()
    probe: SqlCatalogProbe
    if settings.local_stack is not None:
        probe = SimulatorCatalogProbe(str(settings.local_stack["admin_endpoint"]), settings.azure.ca_bundle)
    else:
        probe = _CataloglessProbe()
    table = TableClient.from_connection_string(settings.storage_connection_string, table_name=POLICIES_TABLE)
    app._closers.append(table.close)
    policies = SqlPolicies(
        AzurePolicyTable(table).ready(), subscription_id=settings.azure.subscription_id, key_vault=settings.key_vault
    )
    staging = BlobBacpacStaging(settings.storage_connection_string)
    app._closers.append(staging.close)
    jobs = BacpacJobs(
        policies=policies,
        launcher=app.launcher,
        status=app.job_status,
        settings=app.job_settings,
        clock=clock,
    )
    return SqlServices(
        discover=DiscoverSqlDatabases(policies, sql),
        preflight=SqlPreflight(sql, probe),
        copy=SqlCopyToStaging(sql),
        export=ExportBacpac(
            sql,
            policies,
            SecretResolvers.for_azure(settings.azure, clients.credential),
            staging,
            clock,
            poll_seconds=settings.worker.poll_seconds,
        ),
        jobs=jobs,
        record_point=RecordBacpacPoint(app.catalog),
        cleanup=SqlCleanup(sql, staging),
        staging=staging,
    )


def sql_services(env: Mapping[str, str] | None = None) -> SqlServices:
    """The process's SQL services, built on first use beside (and closed with) ``services(env)``."""
    return services(env).beside("sql_services", build_sql_services)


# -- VM and disk restore -------------------------------------------------------------------------------


def build_vm_restore_services(app: Services, *, clock: Clock | None = None) -> VmRestores:
    compute = app.clients.compute()
    return VmRestores(
        catalog=app.catalog,
        policies=app.policies,
        inventory=compute,
        snapshots=compute,
        targets=compute,
        access=compute,
        launcher=app.launcher,
        uploads=DiskUploads(app.clients.data_plane()),
        status=app.job_status,
        jobs=app.job_settings,
        subscription_id=app.settings.azure.subscription_id,
        clock=clock or SystemClock(),
    )


def vm_restore_services(env: Mapping[str, str] | None = None) -> VmRestores:
    """The process's restore use cases, built on first use beside (and closed with) ``services(env)``."""
    return services(env).beside("vm_restore_services", build_vm_restore_services)


# -- SQL restore and browsing ----------------------------------------------------------------------


@dataclass
class SqlRestoreServices:
    """The SQL restore use cases (its activities and HTTP trigger) and point browsing."""

    validate: ValidateSqlRestore
    jobs: SqlRestoreJobs
    import_: ImportRestoredBacpac
    swap: SwapRestoredDatabase
    cleanup: SqlRestoreCleanup
    browse: PointBrowser
    staging: BlobBacpacStaging


def build_sql_restore_services(
    app: Services, *, env: Mapping[str, str] | None = None, clock: Clock | None = None
) -> SqlRestoreServices:
    """``env``: what opening a repository may read (its storage credentials); the process's by default."""
    settings = app.settings
    clock = clock or SystemClock()
    clients = app.clients
    sql = clients.sql()
    table = TableClient.from_connection_string(settings.storage_connection_string, table_name=POLICIES_TABLE)
    app._closers.append(table.close)
    policies = SqlPolicies(
        AzurePolicyTable(table).ready(), subscription_id=settings.azure.subscription_id, key_vault=settings.key_vault
    )
    staging = BlobBacpacStaging(settings.storage_connection_string)
    app._closers.append(staging.close)
    secrets = SecretResolvers.for_azure(settings.azure, clients.credential)
    repositories = StoreRepositoryOpener(os.environ if env is None else env, clock)
    jobs = SqlRestoreJobs(
        launcher=app.launcher,
        status=app.job_status,
        staging=staging,
        settings=app.job_settings,
        clock=clock,
    )
    return SqlRestoreServices(
        validate=ValidateSqlRestore(
            sql=sql, catalog=app.catalog, policies=policies, secrets=secrets, repositories=repositories
        ),
        jobs=jobs,
        import_=ImportRestoredBacpac(sql, secrets, staging, clock, poll_seconds=settings.worker.poll_seconds),
        swap=SwapRestoredDatabase(sql),
        cleanup=SqlRestoreCleanup(sql, staging),
        browse=PointBrowser(catalog=app.catalog, policies=policies, secrets=secrets, repositories=repositories),
        staging=staging,
    )


def sql_restore_services(env: Mapping[str, str] | None = None) -> SqlRestoreServices:
    """The process's SQL restore and browse services, built on first use beside ``services(env)``."""
    return services(env).beside("sql_restore_services", lambda app: build_sql_restore_services(app, env=env))
