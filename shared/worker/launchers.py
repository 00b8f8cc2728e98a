"""Worker launchers (the ``WorkerLauncher`` port): where ``python -m shared.worker`` runs.

* :class:`ContainerInstancesLauncher`: one Azure Container Instances group per job attempt, in the
  region the service asks for, restart policy ``Never``, the job spec as a *secure* environment
  variable (it holds references only, but nothing about it needs to show in the portal), the
  worker image's entry point, and the user-assigned identity the worker reads Azure with. On the
  local stack the simulator runs the group's image as a local process.
* :class:`LocalProcessLauncher`: a child process of the function app, for the single-machine mode
  without a container service. It lives as long as the app process: after a restart its workers are
  ``missing`` and the orchestration starts another attempt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models as cim

from shared.azure.arm import translate_arm_error
from shared.azure.resource_id import ResourceId
from shared.core.errors import ConfigError, UsageError, redact
from shared.services.ports import WorkerRun

__all__ = ["ContainerInstancesLauncher", "LocalProcessLauncher"]

log = logging.getLogger(__name__)

JOB_ENV = "BULWARK_JOB"
_CONTAINER = "worker"
_LOCAL_PREFIX = "local:"


class ContainerInstancesLauncher:
    def __init__(
        self,
        client: ContainerInstanceManagementClient,
        *,
        subscription_id: str,
        resource_group: str,
        image: str,
        cpu: float = 2.0,
        memory_gb: float = 4.0,
        identity_id: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        if not resource_group:
            raise ConfigError(
                "no resource group for worker containers", hint="set BULWARK_WORKER_RESOURCE_GROUP to an existing group"
            )
        self._client = client
        self._subscription = subscription_id
        self._group = resource_group
        self._image = image
        self._cpu = cpu
        self._memory = memory_gb
        self._identity = identity_id
        self._environment = dict(environment or {})

    def launch(self, *, name: str, job_json: str, location: str) -> str:
        group_id = (
            f"/subscriptions/{self._subscription}/resourceGroups/{self._group}"
            f"/providers/Microsoft.ContainerInstance/containerGroups/{name}"
        )
        try:
            existing = self._client.container_groups.get(self._group, name)
            return str(existing.id)  # launched before (a retried activity): do not start it again
        except ResourceNotFoundError:
            pass
        except AzureError as exc:
            raise translate_arm_error(exc, action="read the worker container group", resource=group_id) from None
        variables = [cim.EnvironmentVariable(name=k, value=v) for k, v in sorted(self._environment.items())]
        variables.append(cim.EnvironmentVariable(name=JOB_ENV, secure_value=job_json))
        container = cim.Container(
            name=_CONTAINER,
            image=self._image,
            environment_variables=variables,
            resources=cim.ResourceRequirements(requests=cim.ResourceRequests(cpu=self._cpu, memory_in_gb=self._memory)),
        )
        identity = (
            cim.ContainerGroupIdentity(
                type="UserAssigned", user_assigned_identities={self._identity: cim.UserAssignedIdentities()}
            )
            if self._identity
            else None
        )
        group = cim.ContainerGroup(
            location=location,
            containers=[container],
            os_type="Linux",
            restart_policy="Never",
            identity=identity,
            tags={"created-by": "bulwark", "bulwark-role": "worker"},
        )
        try:
            created = self._client.container_groups.begin_create_or_update(self._group, name, group).result()
        except AzureError as exc:
            raise translate_arm_error(exc, action="start the worker container group", resource=group_id) from None
        return str(created.id or group_id)

    def state(self, reference: str) -> WorkerRun:
        parsed = _group_id(reference)
        try:
            group = self._client.container_groups.get(parsed.resource_group, parsed.name)
        except ResourceNotFoundError:
            return WorkerRun("missing")
        except AzureError as exc:
            raise translate_arm_error(exc, action="read the worker container group", resource=reference) from None
        return _run_of(group)

    def logs(self, reference: str, *, tail: int = 20) -> str:
        parsed = _group_id(reference)
        try:
            found = self._client.containers.list_logs(parsed.resource_group, parsed.name, _CONTAINER, tail=tail)
        except ResourceNotFoundError:
            return ""
        except AzureError as exc:
            raise translate_arm_error(exc, action="read the worker's logs", resource=reference) from None
        return redact(str(found.content or ""))

    def remove(self, reference: str) -> None:
        parsed = _group_id(reference)
        try:
            self._client.container_groups.begin_delete(parsed.resource_group, parsed.name).result()
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise translate_arm_error(exc, action="delete the worker container group", resource=reference) from None


def _run_of(group: Any) -> WorkerRun:
    """The worker container's state (instance views are absent until the group is scheduled)."""
    containers = group.containers or []
    view = containers[0].instance_view if containers else None
    current = getattr(view, "current_state", None)
    state = getattr(current, "state", None)
    detail = str(getattr(current, "detail_status", None) or "")
    if state == "Terminated":
        return WorkerRun("terminated", exit_code=getattr(current, "exit_code", None), detail=detail)
    if state == "Running":
        return WorkerRun("running")
    return WorkerRun("pending", detail=detail)


def _group_id(reference: str) -> ResourceId:
    try:
        return ResourceId.parse(reference)
    except UsageError as exc:
        raise UsageError(f"'{reference}' is not a worker container group id") from exc


class LocalProcessLauncher:
    """Workers as child processes: ``python -m shared.worker`` with the spec in ``BULWARK_JOB``."""

    def __init__(
        self,
        workdir: Path,
        *,
        python: str = sys.executable,
        pythonpath: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self._workdir = workdir
        self._python = python
        self._pythonpath = pythonpath
        self._environment = dict(environment or {})
        self._lock = threading.Lock()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def launch(self, *, name: str, job_json: str, location: str) -> str:
        reference = _LOCAL_PREFIX + name
        with self._lock:
            if name in self._processes:
                return reference
            self._workdir.mkdir(parents=True, exist_ok=True)
            env = {
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1",
                **self._environment,
                JOB_ENV: job_json,
            }
            if self._pythonpath:
                env["PYTHONPATH"] = self._pythonpath
            with open(self._workdir / f"{name}.log", "ab") as output:
                process = subprocess.Popen(
                    [self._python, "-m", "shared.worker"],
                    env=env,
                    cwd=self._workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self._processes[name] = process
        log.info("worker %s runs as local process %d (region %s asked for)", name, process.pid, location)
        return reference

    def state(self, reference: str) -> WorkerRun:
        with self._lock:
            process = self._processes.get(self._name(reference))
        if process is None:
            return WorkerRun("missing")
        code = process.poll()
        if code is None:
            return WorkerRun("running")
        return WorkerRun("terminated", exit_code=128 - code if code < 0 else code)

    def remove(self, reference: str) -> None:
        with self._lock:
            process = self._processes.pop(self._name(reference), None)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def log_path(self, reference: str) -> Path:
        return self._workdir / f"{self._name(reference)}.log"

    def logs(self, reference: str, *, tail: int = 20) -> str:
        try:
            text = self.log_path(reference).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return redact("".join(text.splitlines(keepends=True)[-tail:]))

    def close(self) -> None:
        with self._lock:
            names = list(self._processes)
        for name in names:
            self.remove(_LOCAL_PREFIX + name)

    @staticmethod
    def _name(reference: str) -> str:
        if not reference.startswith(_LOCAL_PREFIX):
            raise UsageError(f"'{reference}' is not a local worker reference")
        return reference[len(_LOCAL_PREFIX) :]
