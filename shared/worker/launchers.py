"""Worker launchers (the ``WorkerLauncher`` port): where ``python -m shared.worker`` runs.

* :class:`ContainerInstancesLauncher`: one Azure Container Instances group per job attempt (through
  ``shared.azure.containers``), in the region the service asks for, restart policy ``Never``, the
  job spec as a *secure* environment variable (it holds references only, but nothing about it needs
  to show in the portal), the worker image's entry point, and the user-assigned identity the worker
  reads Azure with. On the local stack the simulator runs the group's image as a local process.
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

from shared.azure.model import ContainerSpec, Secret, WorkerGroupSpec
from shared.azure.ports import ContainerGroups
from shared.core.errors import AzureResourceNotFoundError, ConfigError, UsageError, redact
from shared.services.ports import WorkerRun

__all__ = ["ContainerInstancesLauncher", "LocalProcessLauncher", "registry_of"]

log = logging.getLogger(__name__)

JOB_ENV = "BULWARK_JOB"
_CONTAINER = "worker"
_LOCAL_PREFIX = "local:"


class ContainerInstancesLauncher:
    """Workers as Container Instances groups, through the ``ContainerGroups`` port."""

    def __init__(
        self,
        groups: ContainerGroups,
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
        self._groups = groups
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
            return self._groups.get(group_id).id  # launched before (a retried activity): do not start it again
        except AzureResourceNotFoundError:
            pass
        container = ContainerSpec(
            name=_CONTAINER,
            image=self._image,
            cpu=self._cpu,
            memory_gb=self._memory,
            environment=self._environment,
            secure_environment={JOB_ENV: Secret(job_json)},
        )
        spec = WorkerGroupSpec(
            name=name,
            resource_group=self._group,
            location=location,
            containers=(container,),
            identity_ids=(self._identity,) if self._identity else (),
            # A private registry (ours: Azure Container Registry) is pulled from with the identity
            # (AcrPull); without this, Container Instances tries an anonymous pull and fails.
            registry_server=registry_of(self._image) if self._identity else None,
            tags={"created-by": "bulwark", "bulwark-role": "worker"},
        )
        return self._groups.launch(spec).id

    def state(self, reference: str) -> WorkerRun:
        try:
            group = self._groups.get(reference)
        except AzureResourceNotFoundError:
            return WorkerRun("missing")
        container = group.containers[0] if group.containers else None
        detail = (container.detail_status or "") if container else ""
        if group.finished:
            return WorkerRun("terminated", exit_code=container.exit_code if container else None, detail=detail)
        if container is not None and container.state == "Running":
            return WorkerRun("running")
        return WorkerRun("pending", detail=detail)

    def logs(self, reference: str, *, tail: int = 20) -> str:
        try:
            return self._groups.logs(reference, container=_CONTAINER, tail=tail)
        except AzureResourceNotFoundError:
            return ""

    def remove(self, reference: str) -> None:
        self._groups.delete(reference)


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


def registry_of(image: str) -> str | None:
    """The registry host of an image reference (``myacr.azurecr.io/bulwark-worker:1`` ->
    ``myacr.azurecr.io``); None for Docker Hub names (``python:3.11``, ``library/python``): by
    Docker's rule, the first path part is a host only when it has a dot or a port, or is localhost."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None
