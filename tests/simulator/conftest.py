"""A real simulator process for this test session, and the real SDK clients pointed at it."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.mgmt.compute import ComputeManagementClient
from bulwark_local.simulator import SimulatorEndpoints, running_simulator
from bulwark_local.simulator.client import AdminClient

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
LOCATION = "westeurope"


class StaticToken:
    """The simulator accepts any bearer token; the SDK only needs get_token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("simulator-token", int(time.time()) + 3600)


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorEndpoints]:
    with running_simulator(tmp_path_factory.mktemp("simulator")) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def compute(sim: SimulatorEndpoints) -> ComputeManagementClient:
    return compute_client(sim)


def compute_client(sim: SimulatorEndpoints) -> ComputeManagementClient:
    return ComputeManagementClient(
        StaticToken(), SUBSCRIPTION, base_url=sim.arm, polling_interval=0, connection_verify=sim.ca_bundle
    )


@pytest.fixture(scope="session")
def admin(sim: SimulatorEndpoints) -> AdminClient:
    return AdminClient(sim.arm, sim.ca_bundle)


ArmCall = Callable[..., tuple[int, dict[str, str], Any]]


def arm_call(
    sim: SimulatorEndpoints, method: str, path: str, body: Any = None, *, token: bool = True
) -> tuple[int, dict[str, str], Any]:
    """A raw ARM request (for what the SDKs in the venv cannot do, e.g. resource groups)."""
    url = path if path.startswith("https://") else sim.arm + path
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer test"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    context = ssl.create_default_context(cafile=sim.ca_bundle)
    try:
        with urllib.request.urlopen(request, context=context) as response:
            status, response_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, raw = error.code, dict(error.headers), error.read()
    return status, response_headers, json.loads(raw) if raw else None


@pytest.fixture
def resource_group(sim: SimulatorEndpoints) -> str:
    """A fresh resource group per test (the session's simulator is shared)."""
    name = f"rg-{uuid.uuid4().hex[:8]}"
    status, _, _ = arm_call(
        sim,
        "PUT",
        f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{name}?api-version=2021-04-01",
        {"location": LOCATION},
    )
    assert status == 201
    return name


@pytest.fixture(autouse=True)
def _reset_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sim" in request.fixturenames:
        admin = AdminClient(request.getfixturevalue("sim").arm, request.getfixturevalue("sim").ca_bundle)
        admin.settings(lro_in_progress_polls=0, list_page_size=100, pagelist_page_limit=10000)
