"""The Container Instances adapter: run-to-completion worker groups (launch, poll, logs, delete).

:class:`AzureContainers` implements ``ports.ContainerGroups`` over azure-mgmt-containerinstance.
A worker is a container group with ``restartPolicy: Never`` in the repository's region; it is
finished when every container is ``Terminated``, and succeeded when every exit code is 0 (Azure
reports the group's own state only loosely: ``Succeeded``/``Failed`` once all have ended).

Secure environment values (a storage key, a passphrase reference) go into ``secureValue``, which
Azure never returns; :class:`ContainerGroupState` carries no environment at all, and logs pass
through ``redact`` before they are returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models as cim

from shared.core.errors import AzureOperationFailedError, UsageError, redact

from .arm import translate_arm_error
from .model import ContainerGroupState, ContainerSpec, ContainerState, WorkerGroupSpec
from .resource_id import ResourceId

__all__ = ["AzureContainers"]

_GROUP = "Microsoft.ContainerInstance/containerGroups"


class AzureContainers:
    def __init__(
        self,
        client: ContainerInstanceManagementClient,
        subscription_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._subscription = subscription_id
        self._sleep = sleep
        self._monotonic = monotonic

    def launch(self, spec: WorkerGroupSpec) -> ContainerGroupState:
        """Create the group and start its containers; returns once Azure has accepted it."""
        if not spec.containers:
            raise UsageError("a container group needs at least one container")
        group_id = (
            f"/subscriptions/{self._subscription}/resourceGroups/{spec.resource_group}/providers/{_GROUP}/{spec.name}"
        )
        body = cim.ContainerGroup(
            location=spec.location,
            tags=dict(spec.tags),
            containers=[_container(c) for c in spec.containers],
            os_type=spec.os_type,
            restart_policy=spec.restart_policy,
            identity=_identity(spec.identity_ids),
            image_registry_credentials=(
                [cim.ImageRegistryCredential(server=spec.registry_server, identity=spec.identity_ids[0])]
                if spec.registry_server and spec.identity_ids
                else None
            ),
        )
        try:
            group = self._client.container_groups.begin_create_or_update(spec.resource_group, spec.name, body).result()
        except AzureError as exc:
            raise translate_arm_error(exc, action="start container group", resource=group_id) from exc
        return _state(group)

    def get(self, group_id: str) -> ContainerGroupState:
        parsed = self._own_id(group_id)
        try:
            return _state(self._client.container_groups.get(parsed.resource_group, parsed.name))
        except AzureError as exc:
            raise translate_arm_error(exc, action="read", resource=group_id) from exc

    def wait(self, group_id: str, *, timeout: float, poll_seconds: float = 10.0) -> ContainerGroupState:
        """Poll until every container has ended; AzureOperationFailedError after ``timeout`` seconds."""
        deadline = self._monotonic() + timeout
        while True:
            state = self.get(group_id)
            if state.finished:
                return state
            if self._monotonic() >= deadline:
                raise AzureOperationFailedError(
                    f"Container group '{state.name}' was still {state.state or 'running'} after {timeout:.0f} s.",
                    hint="read its logs; a worker that hangs is stopped by deleting the group",
                )
            self._sleep(poll_seconds)

    def logs(self, group_id: str, *, container: str | None = None, tail: int | None = None) -> str:
        """A container's stdout and stderr (the first container's by default), secrets redacted."""
        parsed = self._own_id(group_id)
        try:
            if container is None:
                group = self._client.container_groups.get(parsed.resource_group, parsed.name)
                container = str(group.containers[0].name)
            logs = self._client.containers.list_logs(parsed.resource_group, parsed.name, container, tail=tail)
        except AzureError as exc:
            raise translate_arm_error(exc, action="read the logs of", resource=group_id) from exc
        return redact(str(logs.content or ""))

    def delete(self, group_id: str) -> None:
        """Delete the group (stopping what still runs); a group already gone is not an error."""
        parsed = self._own_id(group_id)
        try:
            self._client.container_groups.begin_delete(parsed.resource_group, parsed.name).result()
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise translate_arm_error(exc, action="delete", resource=group_id) from exc

    def _own_id(self, group_id: str) -> ResourceId:
        parsed = ResourceId.parse(group_id, expect=_GROUP)
        if parsed.subscription.lower() != self._subscription.lower():
            raise UsageError(f"'{group_id}' is in another subscription than {self._subscription}")
        return parsed


def _container(spec: ContainerSpec) -> cim.Container:
    variables = [cim.EnvironmentVariable(name=k, value=v) for k, v in spec.environment.items()]
    variables += [cim.EnvironmentVariable(name=k, secure_value=v.reveal()) for k, v in spec.secure_environment.items()]
    return cim.Container(
        name=spec.name,
        image=spec.image,
        command=list(spec.command) or None,
        environment_variables=variables,
        resources=cim.ResourceRequirements(
            requests=cim.ResourceRequests(memory_in_gb=spec.memory_gb, cpu=spec.cpu),
        ),
    )


def _identity(identity_ids: tuple[str, ...]) -> cim.ContainerGroupIdentity | None:
    if not identity_ids:
        return None
    return cim.ContainerGroupIdentity(
        type="UserAssigned",
        user_assigned_identities={i: cim.UserAssignedIdentities() for i in identity_ids},
    )


def _state(group: Any) -> ContainerGroupState:
    view = getattr(group, "instance_view", None)
    containers = []
    for container in group.containers or []:
        current = container.instance_view.current_state if container.instance_view is not None else None
        containers.append(
            ContainerState(
                name=str(container.name),
                state=getattr(current, "state", None),
                exit_code=getattr(current, "exit_code", None),
                detail_status=getattr(current, "detail_status", None),
                restart_count=int(getattr(container.instance_view, "restart_count", 0) or 0),
                start_time=getattr(current, "start_time", None),
                finish_time=getattr(current, "finish_time", None),
            )
        )
    return ContainerGroupState(
        id=str(group.id),
        name=str(group.name),
        provisioning_state=getattr(group, "provisioning_state", None),
        state=getattr(view, "state", None),
        containers=tuple(containers),
    )


if TYPE_CHECKING:  # mypy checks that the adapter implements its port
    from .ports import ContainerGroups

    def _conforms(containers: AzureContainers) -> ContainerGroups:
        return containers
