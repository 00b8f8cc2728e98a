"""The composition root of the Azure adapters: settings in, SDK clients and adapters out.

One :class:`AzureClients` per process: it owns the credential, the ARM write budget (shared by every
ARM client it builds, so the process as a whole stays under Azure's write limit) and builds each SDK
client once, on first use, with every option spelled out:

* ``base_url`` and ``credential_scopes`` from the settings (Azure, or the simulator);
* ``connection_verify`` = the CA bundle when one is set (the simulator's own CA);
* ``polling_interval``: the pause between LRO polls when Azure sends no ``Retry-After``;
* ``retry_policy`` = :class:`throttle.ArmRetryPolicy`, ``custom_hook_policy`` =
  :class:`throttle.ArmThrottlePolicy` over the shared :class:`throttle.WriteBudget`;
* ``logging_enable`` off: request bodies (which hold SAS URLs in grant responses) are never traced.

Nothing is built at import time and nothing here reads the environment.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from azure.core.credentials import TokenCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.sql import SqlManagementClient

from .compute import AzureCompute
from .containers import AzureContainers
from .credential import build_credential
from .pageblob import DataPlaneOptions
from .redaction import install_log_redaction
from .settings import AzureSettings
from .sql import AzureSql
from .throttle import ArmRetryPolicy, ArmThrottlePolicy, WriteBudget

__all__ = ["AzureClients"]

_Client = TypeVar("_Client")


class AzureClients:
    def __init__(
        self,
        settings: AzureSettings,
        *,
        credential: TokenCredential | None = None,
        budget: WriteBudget | None = None,
    ) -> None:
        install_log_redaction()
        self.settings = settings
        self.credential = credential if credential is not None else build_credential(settings)
        self.budget = budget if budget is not None else WriteBudget(settings.arm_writes_per_hour, settings.write_burst)
        self._lock = threading.Lock()
        self._built: dict[str, Any] = {}

    # -- SDK clients -------------------------------------------------------------------------------

    def arm_options(self) -> dict[str, Any]:
        """Keyword arguments every ARM management client gets."""
        options: dict[str, Any] = {
            "base_url": self.settings.arm_endpoint,
            "credential_scopes": [self.settings.credential_scope],
            "polling_interval": self.settings.polling_interval,
            "retry_policy": ArmRetryPolicy(self.settings.arm_retries),
            "custom_hook_policy": ArmThrottlePolicy(self.budget),
            "logging_enable": False,
            "user_agent": "bulwark",
        }
        if self.settings.ca_bundle:
            options["connection_verify"] = self.settings.ca_bundle
        return options

    def compute_client(self) -> ComputeManagementClient:
        return self._once("compute", ComputeManagementClient)

    def sql_client(self) -> SqlManagementClient:
        return self._once("sql", SqlManagementClient)

    def container_client(self) -> ContainerInstanceManagementClient:
        return self._once("containers", ContainerInstanceManagementClient)

    def data_plane(self) -> DataPlaneOptions:
        """How the page-blob readers reach storage (TLS trust, and the credential for VHD accounts)."""
        return DataPlaneOptions(ca_bundle=self.settings.ca_bundle, credential=self.credential)

    # -- adapters ----------------------------------------------------------------------------------

    def compute(self) -> AzureCompute:
        return AzureCompute(
            self.compute_client(),
            self.settings.subscription_id,
            sas_seconds=self.settings.sas_seconds,
        )

    def containers(self) -> AzureContainers:
        return AzureContainers(self.container_client(), self.settings.subscription_id)

    def sql(self) -> AzureSql:
        return AzureSql(self.sql_client(), self.settings.subscription_id)

    def close(self) -> None:
        with self._lock:
            built, self._built = self._built, {}
        for client in built.values():
            client.close()

    def _once(self, name: str, factory: type[_Client]) -> _Client:
        with self._lock:
            client = self._built.get(name)
            if client is None:
                client = factory(self.credential, self.settings.subscription_id, **self.arm_options())  # type: ignore[call-arg]
                self._built[name] = client
            result: _Client = client
            return result
