"""The worker's entry point: one job spec in, exit 0 when it is done, non-zero when it failed.

    python -m shared.worker --job FILE
    BULWARK_JOB='{"version": 1, ...}' python -m shared.worker

This is an edge: it reads the environment (the spec, and the storage credentials ``open_store``
takes from it, e.g. a managed identity's ``AZURE_CLIENT_ID``), builds the adapters and runs the job
its spec names (image or BACPAC backup, image or BACPAC restore, repository maintenance). Logs go
to stderr (the container's log) and never hold a secret; the last stdout line is the result as JSON
(ids and counts).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from shared.azure.bacpac_blobs import BlobBacpacDownloads, BlobBacpacUploads
from shared.azure.clients import AzureClients
from shared.azure.redaction import install_log_redaction
from shared.azure.settings import AzureSettings
from shared.core.clock import SystemClock
from shared.core.errors import BulwarkError, ConfigError, redact
from shared.services.bacpac_backup import BacpacBackupJob
from shared.services.bacpac_restore import BacpacRestoreJob
from shared.services.image_backup import ImageBackupJob
from shared.services.image_restore import ImageRestoreJob
from shared.services.job_spec import ArmRef, JobSpec
from shared.services.repo_maintenance import MaintenanceSpec, RepositoryMaintenanceJob, is_maintenance_spec
from shared.telemetry.job import job_telemetry

from .adapters import DiskUploads, ManagedDiskSources, SecretResolvers, StoreRepositoryOpener, VhdBlobSources
from .table_status import TableJobStatusStore

__all__ = ["arm_settings", "load_spec", "main", "read_spec", "run_maintenance"]

log = logging.getLogger("bulwark.worker")
JOB_ENV = "BULWARK_JOB"


def load_spec(job_file: Path | None, env: Mapping[str, str]) -> JobSpec:
    return JobSpec.from_json(read_spec(job_file, env))


def read_spec(job_file: Path | None, env: Mapping[str, str]) -> str:
    """The job document's text: from ``--job FILE`` or ``$BULWARK_JOB``."""
    if job_file is not None:
        try:
            text = job_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the job spec {job_file}: {exc.strerror or exc}") from None
    else:
        text = env.get(JOB_ENV, "")
        if not text.strip():
            raise ConfigError(f"no job spec: pass --job FILE or set {JOB_ENV}", hint="see shared/services/job_spec.py")
    return text


def arm_settings(reference: ArmRef) -> AzureSettings:
    """The Azure settings a job's ARM reference names (the local stack's file, or a managed identity)."""
    if reference.kind == "stack-file":
        path = Path(reference.path or "")
        try:
            stack = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"the local stack file {path} does not exist", hint="start it with `make stack-up`"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the local stack file {path}: {exc}") from None
        return AzureSettings.for_local_stack(stack)
    return AzureSettings(
        subscription_id=reference.subscription_id or "",
        arm_endpoint=reference.arm_endpoint or "https://management.azure.com",
        managed_identity_client_id=reference.client_id,
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    environment = os.environ if env is None else env
    parser = argparse.ArgumentParser(prog="python -m shared.worker", description="Run one Bulwark job spec.")
    parser.add_argument("--job", type=Path, metavar="FILE", help=f"the job spec (default: ${JOB_ENV})")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="backup threads (default 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    install_log_redaction()
    try:
        text = read_spec(args.job, environment)
        if is_maintenance_spec(text):
            return run_maintenance(MaintenanceSpec.from_json(text), environment)
        spec = JobSpec.from_json(text)
    except BulwarkError as exc:
        log.error("%s", exc)
        return exc.exit_code
    log.info("job %s (%s, attempt %d): disk %s", spec.job_id, spec.kind, spec.attempt, spec.source.disk_id)
    workers = max(1, args.workers)

    def build(ready: _Ready) -> Callable[[JobSpec], dict[str, Any]]:
        repositories = StoreRepositoryOpener(environment, SystemClock())
        secrets, status, identity = ready.secrets, ready.status, ready.settings.managed_identity_client_id
        if spec.kind == "bacpac-restore":
            uploads = BlobBacpacUploads(client_id=identity)
            return BacpacRestoreJob(
                secrets=secrets,
                repositories=repositories,
                uploads=uploads,
                status=status,
                clock=SystemClock(),
                workers=workers,
            ).run
        if spec.kind == "image-restore":
            return ImageRestoreJob(
                secrets=secrets,
                repositories=repositories,
                access=ready.clients.compute(),
                uploads=DiskUploads(ready.clients.data_plane()),
                status=status,
                clock=SystemClock(),
                workers=2 * workers,  # Put Page waits on the network more than on the CPU
            ).run
        if spec.kind == "bacpac-backup":
            downloads = BlobBacpacDownloads(client_id=identity)
            return BacpacBackupJob(
                secrets=secrets,
                repositories=repositories,
                downloads=downloads,
                status=status,
                clock=SystemClock(),
                workers=workers,
            ).run
        data_plane = ready.clients.data_plane()
        return ImageBackupJob(
            secrets=secrets,
            repositories=repositories,
            access=ready.clients.compute(),
            sources=ManagedDiskSources(data_plane),
            vhds=VhdBlobSources(data_plane),
            status=status,
            clock=SystemClock(),
            workers=workers,
        ).run

    result = _run_job(spec, environment, build)
    if isinstance(result, int):
        return result
    if spec.kind == "bacpac-restore":
        log.info("job %s rebuilt point %s into the staging blob", spec.job_id, result["point_id"])
    elif spec.kind == "image-restore":
        log.info("job %s wrote %d bytes into %s", spec.job_id, result["bytes_written"], result["disk_id"])
    else:
        verb = "found its earlier point" if result["reused"] else "saved point"
        log.info(
            "job %s %s %s: read %d bytes, stored %d bytes",
            spec.job_id,
            verb,
            result["point_id"],
            result["bytes_read"],
            result["bytes_stored"],
        )
    print(json.dumps(result, sort_keys=True))
    return 0


def run_maintenance(spec: MaintenanceSpec, environment: Mapping[str, str]) -> int:
    """Job kind ``repository-maintenance``: forget the points image retention dropped, then prune."""
    log.info("job %s (%s): %d point(s) of policy %s", spec.job_id, spec.kind, len(spec.forget), spec.policy_id)

    def build(ready: _Ready) -> Callable[[MaintenanceSpec], dict[str, Any]]:
        repositories = StoreRepositoryOpener(environment, SystemClock())
        return RepositoryMaintenanceJob(
            secrets=ready.secrets, repositories=repositories, status=ready.status, clock=SystemClock()
        ).run

    result = _run_job(spec, environment, build)
    if isinstance(result, int):
        return result
    print(json.dumps(result, sort_keys=True))
    return 0


@dataclass(frozen=True)
class _Ready:
    """What every job is built from: the Azure settings its spec names, and what they opened."""

    settings: AzureSettings
    clients: AzureClients
    secrets: SecretResolvers
    status: TableJobStatusStore


Spec = TypeVar("Spec", JobSpec, MaintenanceSpec)


def _run_job(
    spec: Spec, environment: Mapping[str, str], build: Callable[[_Ready], Callable[[Spec], dict[str, Any]]]
) -> dict[str, Any] | int:
    """Open what the spec's references name, build the job, run it inside its span (under the
    session's trace) and close what was opened; the job's result, or the exit code of its failure
    (logged once, redacted)."""
    clients: AzureClients | None = None
    status: TableJobStatusStore | None = None
    try:
        settings = arm_settings(spec.arm)
        clients = AzureClients(settings)
        status = TableJobStatusStore.for_reference(spec.status, client_id=settings.managed_identity_client_id)
        run = build(_Ready(settings, clients, SecretResolvers.for_azure(settings, clients.credential), status))
        with job_telemetry(spec, environment) as observe:
            result = run(spec)
            observe(result)
        return result
    except BulwarkError as exc:
        log.error("job %s failed: %s", spec.job_id, exc)
        return exc.exit_code
    except Exception as exc:  # the edge: report, never leak a secret, non-zero exit
        log.error("job %s failed unexpectedly: %s: %s", spec.job_id, type(exc).__name__, redact(str(exc)))
        return 1
    finally:
        if status is not None:
            status.close()
        if clients is not None:
            clients.close()
