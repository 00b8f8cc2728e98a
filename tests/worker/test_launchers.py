"""The Container Instances launcher's group spec: a private registry is pulled with the identity."""

from __future__ import annotations

import pytest

from shared.azure.model import ContainerGroupState, WorkerGroupSpec
from shared.core.errors import AzureResourceNotFoundError
from shared.worker.launchers import ContainerInstancesLauncher, registry_of


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("myacr.azurecr.io/bulwark-worker:1.2", "myacr.azurecr.io"),
        ("localhost:5000/bulwark-worker", "localhost:5000"),
        ("localhost/bulwark-worker", "localhost"),
        ("python:3.11-slim", None),
        ("library/python:3.11", None),
        ("bulwark/worker", None),
    ],
)
def test_registry_of_follows_dockers_reference_rule(image: str, registry: str | None) -> None:
    assert registry_of(image) == registry


class RecordingGroups:
    """Pure bookkeeping: the specs the launcher asks for (no Azure behind it)."""

    def __init__(self) -> None:
        self.specs: list[WorkerGroupSpec] = []

    def get(self, group_id: str) -> ContainerGroupState:
        raise AzureResourceNotFoundError(f"{group_id} does not exist")

    def launch(self, spec: WorkerGroupSpec) -> ContainerGroupState:
        self.specs.append(spec)
        return ContainerGroupState(f"/groups/{spec.name}", spec.name, "Succeeded", "Running", ())


@pytest.mark.parametrize("identity", ["/subscriptions/s/resourceGroups/g/providers/x/userAssignedIdentities/w", None])
def test_the_worker_pulls_its_image_from_the_private_registry_with_its_identity(identity: str | None) -> None:
    groups = RecordingGroups()
    launcher = ContainerInstancesLauncher(
        groups,  # type: ignore[arg-type]  # only get and launch are called
        subscription_id="s",
        resource_group="workers",
        image="bulwarkacr.azurecr.io/bulwark-worker:7",
        identity_id=identity,
    )
    launcher.launch(name="bulwark-job-1-a1", job_json="{}", location="westeurope")
    spec = groups.specs[0]
    if identity is None:
        assert spec.registry_server is None and spec.identity_ids == ()
    else:
        assert spec.registry_server == "bulwarkacr.azurecr.io" and spec.identity_ids == (identity,)
