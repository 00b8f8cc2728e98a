"""The Container Instances adapter against the simulator (containers run as local processes)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient

from shared.azure.clients import AzureClients
from shared.azure.containers import AzureContainers
from shared.azure.model import ContainerSpec, Secret, WorkerGroupSpec
from shared.core.errors import AzureOperationFailedError, AzureResourceNotFoundError, ResourceGroupNotFoundError

from .conftest import LOCATION, SUBSCRIPTION, make_group

GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"
SECRET = "sv=2024&sig=TOP-SECRET-SIGNATURE"
SCRIPT = (
    "import hashlib, os, sys, time\n"
    "print('hello', os.environ['GREETING'])\n"
    "print('secret-sha', hashlib.sha256(os.environ['STORAGE_SAS'].encode()).hexdigest())\n"
    "print('leaked', os.environ['STORAGE_SAS'])\n"
    "sys.stdout.flush()\n"
    "time.sleep(float(os.environ.get('NAP', '0')))\n"
    "sys.exit(int(os.environ.get('CODE', '0')))\n"
)


@pytest.fixture
def images(admin: AdminClient) -> Iterator[None]:
    admin.aci_images({"bulwark-test/*": ["{python}", "-c", SCRIPT]})
    yield
    admin.aci_reset_images()


@pytest.fixture(scope="module")
def containers(clients: AzureClients) -> AzureContainers:
    return clients.containers()


def spec(group: str, name: str, *, code: int = 0, nap: float = 0) -> WorkerGroupSpec:
    return WorkerGroupSpec(
        name=name,
        resource_group=group,
        location=LOCATION,
        containers=(
            ContainerSpec(
                name="worker",
                image="bulwark-test/worker:1",
                environment={"GREETING": "world", "CODE": str(code), "NAP": str(nap)},
                secure_environment={"STORAGE_SAS": Secret(SECRET)},
            ),
        ),
        tags={"bulwark-session": "s1"},
    )


@pytest.mark.usefixtures("images")
def test_launch_wait_logs_delete(sim: SimulatorEndpoints, containers: AzureContainers) -> None:
    group = make_group(sim)
    started = containers.launch(spec(group, "job-ok"))
    assert started.name == "job-ok" and started.provisioning_state in ("Pending", "Succeeded", "Creating")
    done = containers.wait(started.id, timeout=60, poll_seconds=0.2)
    assert done.finished and done.succeeded and done.containers[0].exit_code == 0
    logs = containers.logs(started.id)
    assert "hello world" in logs and hashlib.sha256(SECRET.encode()).hexdigest() in logs
    assert "TOP-SECRET-SIGNATURE" not in logs  # what a worker prints is redacted too
    assert "TOP-SECRET" not in repr(started) and "TOP-SECRET" not in repr(done)
    containers.delete(started.id)
    containers.delete(started.id)  # already gone: fine
    with pytest.raises(AzureResourceNotFoundError):
        containers.get(started.id)


@pytest.mark.usefixtures("images")
def test_failed_worker_and_timeout(sim: SimulatorEndpoints, containers: AzureContainers) -> None:
    group = make_group(sim)
    failed = containers.wait(containers.launch(spec(group, "job-bad", code=3)).id, timeout=60, poll_seconds=0.2)
    assert failed.finished and not failed.succeeded and failed.containers[0].exit_code == 3
    slow = containers.launch(spec(group, "job-slow", nap=30))
    with pytest.raises(AzureOperationFailedError, match="still"):
        containers.wait(slow.id, timeout=0.5, poll_seconds=0.1)
    containers.delete(slow.id)  # stops the process


def test_missing_group_is_typed(containers: AzureContainers) -> None:
    with pytest.raises(ResourceGroupNotFoundError):
        containers.launch(spec("no-such-group", "x"))
    ghost = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/no-such-group/providers/{GROUP_TYPE}/x"
    with pytest.raises(ResourceGroupNotFoundError):
        containers.get(ghost)
