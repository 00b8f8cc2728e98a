"""A real simulator process for the Azure adapter tests, and the adapters wired to it."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm
from bulwark_local.simulator import SimulatorEndpoints, running_simulator
from bulwark_local.simulator.client import AdminClient

from shared.azure.clients import AzureClients
from shared.azure.compute import AzureCompute
from shared.azure.model import DiskInfo, VmInfo
from shared.azure.pageblob import DataPlaneOptions
from shared.azure.settings import AzureSettings

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
LOCATION = "westeurope"
GIB = 1 << 30


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorEndpoints]:
    with running_simulator(tmp_path_factory.mktemp("simulator")) as endpoints:
        yield endpoints


def settings_for(sim: SimulatorEndpoints, **overrides: Any) -> AzureSettings:
    stack = {"subscription_id": SUBSCRIPTION, "arm_endpoint": sim.arm, "ca_bundle": sim.ca_bundle}
    return AzureSettings.for_local_stack(stack, **overrides)


@pytest.fixture(scope="session")
def clients(sim: SimulatorEndpoints) -> Iterator[AzureClients]:
    built = AzureClients(settings_for(sim))
    yield built
    built.close()


@pytest.fixture(scope="session")
def compute(clients: AzureClients) -> AzureCompute:
    return clients.compute()


@pytest.fixture(scope="session")
def sdk(clients: AzureClients) -> ComputeManagementClient:
    """The raw SDK client, for test setup only."""
    return clients.compute_client()


@pytest.fixture(scope="session")
def data_plane(clients: AzureClients) -> DataPlaneOptions:
    return clients.data_plane()


@pytest.fixture(scope="session")
def admin(sim: SimulatorEndpoints) -> AdminClient:
    return AdminClient(sim.arm, sim.ca_bundle)


@pytest.fixture(autouse=True)
def _reset_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sim" in request.fixturenames:
        sim = request.getfixturevalue("sim")
        AdminClient(sim.arm, sim.ca_bundle).settings(
            lro_in_progress_polls=0, list_page_size=100, pagelist_page_limit=10000
        )


def arm_call(sim: SimulatorEndpoints, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A raw ARM request (resource groups: azure-mgmt-resource is not a dependency)."""
    request = urllib.request.Request(
        sim.arm + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": "Bearer test"},
    )
    context = ssl.create_default_context(cafile=sim.ca_bundle)
    try:
        with urllib.request.urlopen(request, context=context) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return status, json.loads(raw) if raw else None


def make_group(sim: SimulatorEndpoints, prefix: str = "rg") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    status, _ = arm_call(
        sim,
        "PUT",
        f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{name}?api-version=2021-04-01",
        {"location": LOCATION},
    )
    assert status == 201
    return name


@pytest.fixture
def resource_group(sim: SimulatorEndpoints) -> str:
    return make_group(sim)


def make_disk(sdk: ComputeManagementClient, group: str, name: str, size_gb: int = 1, **props: Any) -> DiskInfo:
    body = cm.Disk(
        location=LOCATION,
        properties=cm.DiskProperties(
            creation_data=cm.CreationData(create_option="Empty"), disk_size_gb=size_gb, **props
        ),
    )
    sdk.disks.begin_create_or_update(group, name, body).result()
    return AzureCompute(sdk, SUBSCRIPTION).get_disk(
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Compute/disks/{name}"
    )


def make_vm(
    compute: AzureCompute,
    sdk: ComputeManagementClient,
    group: str,
    name: str,
    *,
    data_disks: int = 1,
    tags: dict[str, str] | None = None,
    disk_group: str | None = None,
) -> VmInfo:
    """A VM attaching an OS disk and ``data_disks`` data disks (in ``disk_group``, default the VM's)."""
    where = disk_group or group
    os_disk = make_disk(sdk, where, f"{name}-os", 1, os_type="Linux")
    data = [make_disk(sdk, where, f"{name}-data{lun}", 1) for lun in range(data_disks)]
    return compute.create_vm(
        resource_group=group,
        name=name,
        location=LOCATION,
        vm_size="Standard_D2s_v3",
        os_disk_id=os_disk.id,
        os_type="Linux",
        data_disks=[(lun, disk.id) for lun, disk in enumerate(data)],
        nic_ids=[
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Network/networkInterfaces/{name}"
        ],
        tags=tags,
    )
