"""Everything the Azure adapters need to reach Azure (or the local simulator), as one explicit object.

Nothing here reads the environment on import: the entry points (function app, worker, CLI) call
:meth:`AzureSettings.from_mapping` with ``os.environ`` or :meth:`AzureSettings.for_local_stack`
with the simulator's ``stack.json``, and hand the result to ``clients.AzureClients``.

Environment variables read by ``from_mapping``:

| variable                              | meaning                                                     |
|---------------------------------------|-------------------------------------------------------------|
| AZURE_SUBSCRIPTION_ID (required)      | the subscription Bulwark protects                           |
| BULWARK_ARM_ENDPOINT                  | ARM base URL (default https://management.azure.com)         |
| BULWARK_CA_BUNDLE                     | CA certificate file for TLS (the simulator's)               |
| BULWARK_STATIC_TOKEN                  | a fixed bearer token (the simulator only; never in Azure)   |
| AZURE_CLIENT_ID                       | the user-assigned managed identity to use                   |
| BULWARK_ARM_WRITES_PER_HOUR           | client-side ARM write budget (default 1200)                 |
| BULWARK_ARM_POLLING_INTERVAL          | seconds between LRO polls without Retry-After (default 30)  |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core.errors import ConfigError

__all__ = ["PUBLIC_ARM_ENDPOINT", "AzureSettings"]

PUBLIC_ARM_ENDPOINT = "https://management.azure.com"
PUBLIC_KEY_VAULT_URL = "https://{vault}.vault.azure.net"


@dataclass(frozen=True)
class AzureSettings:
    subscription_id: str
    arm_endpoint: str = PUBLIC_ARM_ENDPOINT
    ca_bundle: str | None = None
    static_token: str | None = field(default=None, repr=False)
    managed_identity_client_id: str | None = None
    polling_interval: float = 30.0
    """Seconds between LRO polls when Azure sends no Retry-After (the SDK's own default)."""
    arm_writes_per_hour: int = 1200
    """Azure allows about 1,200 ARM writes per hour per principal; the client budget stays under it."""
    arm_write_burst: int | None = None
    """Writes that may go out at once before the hourly rate applies (default: a tenth of the hour)."""
    arm_retries: int = 8
    """Retries of one ARM request on 429/5xx/connection errors (Retry-After is honoured)."""
    sas_seconds: int = 4 * 3600
    """Lifetime of a read SAS for a snapshot (30 s .. 60 days); long enough for one disk's copy."""
    key_vault_url: str = PUBLIC_KEY_VAULT_URL
    """A vault's data-plane URL, ``{vault}`` standing for its name (the simulator serves vaults itself)."""

    def __post_init__(self) -> None:
        if not self.subscription_id:
            raise ConfigError(
                "no Azure subscription id is set", hint="set AZURE_SUBSCRIPTION_ID to the subscription to protect"
            )
        if not self.arm_endpoint.startswith("https://"):
            raise ConfigError(
                f"the ARM endpoint {self.arm_endpoint!r} is not https",
                hint="Azure Resource Manager is only reachable over https",
            )
        if self.arm_writes_per_hour <= 0:
            raise ConfigError("BULWARK_ARM_WRITES_PER_HOUR must be a positive number of writes")
        if not 30 <= self.sas_seconds <= 5_184_000:
            raise ConfigError("a SAS must live between 30 seconds and 60 days (5,184,000 seconds)")

    @property
    def credential_scope(self) -> str:
        return self.arm_endpoint.rstrip("/") + "/.default"

    @property
    def write_burst(self) -> int:
        return self.arm_write_burst or max(1, self.arm_writes_per_hour // 10)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> AzureSettings:
        """Settings from environment-like variables (call it at an entry point with ``os.environ``)."""

        def number(name: str, default: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return float(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number") from None

        return cls(
            subscription_id=env.get("AZURE_SUBSCRIPTION_ID", ""),
            arm_endpoint=env.get("BULWARK_ARM_ENDPOINT") or PUBLIC_ARM_ENDPOINT,
            ca_bundle=env.get("BULWARK_CA_BUNDLE") or None,
            static_token=env.get("BULWARK_STATIC_TOKEN") or None,
            managed_identity_client_id=env.get("AZURE_CLIENT_ID") or None,
            arm_writes_per_hour=int(number("BULWARK_ARM_WRITES_PER_HOUR", 1200)),
            polling_interval=number("BULWARK_ARM_POLLING_INTERVAL", 30.0),
        )

    @classmethod
    def for_local_stack(cls, stack: Mapping[str, Any] | Any, **overrides: Any) -> AzureSettings:
        """Settings for the local simulator from its ``stack.json`` as a mapping, or from the object
        ``running_stack`` yields (anything with ``subscription_id``, ``arm_endpoint``, ``ca_bundle``)."""

        def get(name: str) -> Any:
            return stack[name] if isinstance(stack, Mapping) else getattr(stack, name)

        values: dict[str, Any] = {
            "subscription_id": get("subscription_id"),
            "arm_endpoint": get("arm_endpoint"),
            "ca_bundle": get("ca_bundle"),
            "static_token": "bulwark-local",
            "polling_interval": 0.0,
            "key_vault_url": str(get("arm_endpoint")).rstrip("/") + "/keyvault/{vault}",
        }
        values.update(overrides)
        return cls(**values)
