"""Settings of the function app, from environment variables read once at the edge.

``Settings.from_env(os.environ)`` is called by the composition root (``shared.wiring``) the first
time an activity or trigger needs services; nothing reads the environment at import time. The
worker reads its own few settings from its job spec (``shared.services.job_spec``).

| variable                              | meaning                                                             |
|---------------------------------------|---------------------------------------------------------------------|
| BULWARK_LOCAL_STACK                   | path of the local stack's stack.json: the simulator and Azurite     |
|                                       | replace Azure (ARM, storage); the worker gets the same file         |
| AZURE_SUBSCRIPTION_ID, BULWARK_ARM_*  | Azure mode: see ``shared.azure.settings``                           |
| AzureWebJobsStorage                   | the app's storage account (tables: policies, catalog, job status)   |
| BULWARK_KEY_VAULT                     | the vault holding secrets that policies name                       |
| BULWARK_WORKER_LAUNCHER               | ``aci`` (Container Instances; the simulator's locally) or           |
|                                       | ``local-process`` (child processes of the app). Default: ``aci``,   |
|                                       | locally ``local-process`` unless a worker resource group is set     |
| BULWARK_WORKER_IMAGE                  | the worker image (default ``bulwark/worker:latest``)                |
| BULWARK_WORKER_RESOURCE_GROUP         | where worker container groups are created                           |
| BULWARK_WORKER_IDENTITY               | resource id of the user-assigned identity workers run as            |
| AZURE_CLIENT_ID                       | that identity's client id (the worker's DefaultAzureCredential)     |
| BULWARK_WORKER_CPU, _MEMORY_GB        | container size (default 2 CPU, 4 GB)                                |
| BULWARK_JOB_POLL_SECONDS              | how often a session polls its workers (default 30)                  |
| BULWARK_JOB_DEADLINE_SECONDS          | how long one worker may run (default 72000: the 20 h of a big disk) |
| BULWARK_JOB_ATTEMPTS                  | attempts per job (default 3)                                        |
| BULWARK_STATE_DIR                     | local files (local-process worker logs; default ``.local``)         |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.azure.settings import PUBLIC_ARM_ENDPOINT, AzureSettings
from shared.core.errors import ConfigError
from shared.services.job_spec import ArmRef

__all__ = ["ENV_NAMES", "Settings", "WorkerSettings", "table_endpoint"]

ENV_NAMES = (
    "BULWARK_LOCAL_STACK",
    "AZURE_SUBSCRIPTION_ID",
    "BULWARK_ARM_ENDPOINT",
    "BULWARK_CA_BUNDLE",
    "BULWARK_STATIC_TOKEN",
    "BULWARK_ARM_WRITES_PER_HOUR",
    "BULWARK_ARM_POLLING_INTERVAL",
    "AzureWebJobsStorage",
    "BULWARK_KEY_VAULT",
    "BULWARK_WORKER_LAUNCHER",
    "BULWARK_WORKER_IMAGE",
    "BULWARK_WORKER_RESOURCE_GROUP",
    "BULWARK_WORKER_IDENTITY",
    "AZURE_CLIENT_ID",
    "BULWARK_WORKER_CPU",
    "BULWARK_WORKER_MEMORY_GB",
    "BULWARK_JOB_POLL_SECONDS",
    "BULWARK_JOB_DEADLINE_SECONDS",
    "BULWARK_JOB_ATTEMPTS",
    "BULWARK_STATE_DIR",
)
"""Every variable :meth:`Settings.from_env` reads (the composition root caches per their values)."""

LAUNCHERS = ("aci", "local-process")


@dataclass(frozen=True)
class WorkerSettings:
    launcher: str = "aci"
    image: str = "bulwark/worker:latest"
    resource_group: str | None = None
    identity_id: str | None = None
    identity_client_id: str | None = None
    cpu: float = 2.0
    memory_gb: float = 4.0
    poll_seconds: int = 30
    deadline_seconds: int = 72_000
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ConfigError(
                f"BULWARK_WORKER_LAUNCHER={self.launcher!r} is not a launcher",
                hint=f"use one of {', '.join(LAUNCHERS)}",
            )
        if self.poll_seconds < 1 or self.deadline_seconds < self.poll_seconds:
            raise ConfigError("BULWARK_JOB_POLL_SECONDS must be at least 1 and below BULWARK_JOB_DEADLINE_SECONDS")
        if not 1 <= self.max_attempts <= 10:
            raise ConfigError("BULWARK_JOB_ATTEMPTS must be 1 to 10")


@dataclass(frozen=True)
class Settings:
    azure: AzureSettings
    arm_reference: ArmRef
    """How workers reach ARM: the same stack file locally, their managed identity in Azure."""
    storage_connection_string: str = field(repr=False)
    """The app's storage account (holds an account key: never logged, never passed to a worker)."""
    worker: WorkerSettings = WorkerSettings()
    key_vault: str | None = None
    state_dir: Path = Path(".local")
    local_stack: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def is_local(self) -> bool:
        return self.local_stack is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        resource_group = env.get("BULWARK_WORKER_RESOURCE_GROUP") or None
        local = bool(env.get("BULWARK_LOCAL_STACK"))
        worker = WorkerSettings(
            launcher=env.get("BULWARK_WORKER_LAUNCHER") or ("local-process" if local and not resource_group else "aci"),
            image=env.get("BULWARK_WORKER_IMAGE") or "bulwark/worker:latest",
            resource_group=resource_group,
            identity_id=env.get("BULWARK_WORKER_IDENTITY") or None,
            identity_client_id=env.get("AZURE_CLIENT_ID") or None,
            cpu=_number(env, "BULWARK_WORKER_CPU", 2.0),
            memory_gb=_number(env, "BULWARK_WORKER_MEMORY_GB", 4.0),
            poll_seconds=int(_number(env, "BULWARK_JOB_POLL_SECONDS", 30)),
            deadline_seconds=int(_number(env, "BULWARK_JOB_DEADLINE_SECONDS", 72_000)),
            max_attempts=int(_number(env, "BULWARK_JOB_ATTEMPTS", 3)),
        )
        state_dir = Path(env.get("BULWARK_STATE_DIR") or ".local")
        key_vault = env.get("BULWARK_KEY_VAULT") or None
        stack_file = env.get("BULWARK_LOCAL_STACK")
        if stack_file:
            path = Path(stack_file).resolve()
            try:
                stack = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError(
                    f"BULWARK_LOCAL_STACK names {path}, which does not exist", hint="start it with `make stack-up`"
                ) from None
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read the local stack file {path}: {exc}") from None
            overrides: dict[str, int] = {}
            budget = env.get("BULWARK_ARM_WRITES_PER_HOUR")
            if budget:
                # The local stack can scale Azure's write budget; the client must follow it.
                if not budget.isdigit():
                    raise ConfigError(f"BULWARK_ARM_WRITES_PER_HOUR={budget!r} is not a whole number of writes")
                overrides["arm_writes_per_hour"] = int(budget)
            return cls(
                azure=AzureSettings.for_local_stack(stack, **overrides),
                arm_reference=ArmRef("stack-file", path=str(path)),
                storage_connection_string=str(stack["storage_connection_string"]),
                worker=worker,
                key_vault=key_vault,
                state_dir=state_dir,
                local_stack=stack,
            )
        azure = AzureSettings.from_mapping(env)
        storage = env.get("AzureWebJobsStorage", "")
        if not storage or ("AccountName=" not in storage and "UseDevelopmentStorage" not in storage):
            raise ConfigError(
                "AzureWebJobsStorage is not a storage connection string",
                hint="the deployment sets it; locally, set BULWARK_LOCAL_STACK to the stack file instead",
            )
        return cls(
            azure=azure,
            arm_reference=ArmRef(
                "managed-identity",
                subscription_id=azure.subscription_id,
                arm_endpoint=azure.arm_endpoint if azure.arm_endpoint != PUBLIC_ARM_ENDPOINT else None,
                client_id=worker.identity_client_id,
            ),
            storage_connection_string=storage,
            worker=worker,
            key_vault=key_vault,
            state_dir=state_dir,
        )


def table_endpoint(connection_string: str) -> str:
    """The Table service endpoint of a storage connection string (no credential in it)."""
    fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    if fields.get("TableEndpoint"):
        return fields["TableEndpoint"].rstrip("/")
    account = fields.get("AccountName")
    if not account:
        raise ConfigError("the storage connection string names neither TableEndpoint nor AccountName")
    protocol = fields.get("DefaultEndpointsProtocol", "https")
    suffix = fields.get("EndpointSuffix", "core.windows.net")
    return f"{protocol}://{account}.table.{suffix}"


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
