"""The function app under the local runtime, against the local stack (Azurite + the Azure simulator)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import pytest
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack, running_stack

from shared.azure.clients import AzureClients
from shared.azure.settings import AzureSettings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The SDK warns "Potential duplicate Task completion" when it buffers an early completion.
    for item in items:
        if "tests/app" in str(item.fspath):
            item.add_marker(pytest.mark.filterwarnings("ignore:Potential duplicate Task completion"))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="session")
def clients(stack: Stack) -> Iterator[AzureClients]:
    built = AzureClients(AzureSettings.for_local_stack(asdict(stack)))
    yield built
    built.close()


@pytest.fixture(scope="session")
def admin(stack: Stack) -> AdminClient:
    return AdminClient(stack.arm_endpoint, stack.ca_bundle)
