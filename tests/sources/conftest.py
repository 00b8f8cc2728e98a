"""The sources run against the same kind of simulator as the adapter tests, into a local repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.stack import LOCATION, SUBSCRIPTION_ID, TENANT_ID, Stack

from tests.azure.conftest import _reset_settings, admin, clients, compute, data_plane, sdk, sim
from tests.repo.conftest import repo

__all__ = ["_reset_settings", "admin", "clients", "compute", "data_plane", "repo", "sdk", "sim", "stack_file"]


@pytest.fixture(scope="session")
def stack_file(sim: SimulatorEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stack file naming the session's simulator, so tests read disks with ``bulwark-sim guest read``."""
    path = tmp_path_factory.mktemp("stack") / "stack.json"
    Stack(
        arm_endpoint=sim.arm,
        ca_bundle=sim.ca_bundle,
        subscription_id=SUBSCRIPTION_ID,
        tenant_id=TENANT_ID,
        location=LOCATION,
        storage_connection_string="UseDevelopmentStorage=true",  # the sources never touch Azurite
        data_plane_endpoint=sim.data,
        vhd_storage_account={"name": "bulwarkvhds", "blob_endpoint": f"{sim.data}/bulwarkvhds"},
        admin_endpoint=f"{sim.arm}/_bulwark",
        pids={"simulator": sim.pid},
        state_dir=sim.state_dir,
    ).write(path)
    return path
