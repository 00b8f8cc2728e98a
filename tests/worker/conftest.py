"""The local stack (Azurite + the Azure simulator) for the worker tests, and the adapters wired to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import pytest
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack, running_stack

from shared.azure.clients import AzureClients
from shared.azure.settings import AzureSettings


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


def table_endpoint(stack: Stack) -> str:
    fields = dict(part.split("=", 1) for part in stack.storage_connection_string.split(";") if "=" in part)
    return fields["TableEndpoint"]
