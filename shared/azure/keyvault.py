"""Key Vault secrets: ``SecretClient`` (azure-keyvault-secrets), for the secret-resolver port.

A ``keyvault`` secret reference names a vault and a secret; :class:`KeyVaultSecrets` reads the
secret's latest version with the process's credential (the worker's or the app's managed
identity in Azure, the static token against the simulator). One SDK client per vault, built on
first use; SDK errors are translated here, once, into ``shared.core.errors`` with what to do next.

The vault's URL comes from ``AzureSettings.key_vault_url`` (``https://{vault}.vault.azure.net`` in
Azure; the simulator serves vaults under its ARM endpoint). Against the simulator the challenge's
resource (``vault.azure.net``) cannot match the loopback host, so resource verification is off
there only. The value never enters a log line or an exception message.
"""

from __future__ import annotations

import threading

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.secrets import SecretClient

from shared.core.errors import AzureApiError, AzureAuthError, BulwarkError, ConfigError, TransientAzureError, redact

from .settings import AzureSettings

__all__ = ["KeyVaultSecrets", "vault_url"]

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def vault_url(settings: AzureSettings, vault: str) -> str:
    """The data-plane URL of the vault named ``vault``."""
    return settings.key_vault_url.format(vault=vault)


class KeyVaultSecrets:
    """Reads secrets (their latest version) from any vault the settings can address."""

    def __init__(self, settings: AzureSettings, credential: TokenCredential) -> None:
        self._settings = settings
        self._credential = credential
        self._lock = threading.Lock()
        self._clients: dict[str, SecretClient] = {}

    def get(self, vault: str, name: str) -> str:
        """The value of secret ``name`` in vault ``vault``."""
        try:
            secret = self._client(vault).get_secret(name)
        except BulwarkError:
            raise
        except Exception as exc:  # the SDK's errors, translated once
            raise _translate(exc, vault, name) from None
        if not secret.value:
            raise ConfigError(
                f"Key Vault {vault} secret {name} is empty",
                hint=f"set it: az keyvault secret set --vault-name {vault} --name {name} --file <file holding it>",
            )
        return secret.value

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    def _client(self, vault: str) -> SecretClient:
        with self._lock:
            client = self._clients.get(vault)
            if client is None:
                options: dict[str, object] = {"logging_enable": False}
                if self._settings.ca_bundle:
                    options["connection_verify"] = self._settings.ca_bundle
                if self._settings.static_token:
                    options["verify_challenge_resource"] = False  # the simulator: see the module docstring
                client = SecretClient(vault_url(self._settings, vault), self._credential, **options)
                self._clients[vault] = client
            return client


def _translate(exc: BaseException, vault: str, name: str) -> BulwarkError:
    """An SDK failure of reading a secret as an actionable error (the value is never in it)."""
    where = f"Key Vault {vault} secret {name}"
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    reason = _reason(exc)
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return ConfigError(
            f"{where} does not exist ({reason})",
            hint=f"create it (az keyvault secret set --vault-name {vault} --name {name} "
            "--file <file>) or fix the policy's secret name",
        )
    if isinstance(exc, ClientAuthenticationError) and status is None:
        return AzureAuthError(
            f"no Azure token to read {where} ({reason})",
            hint="turn on the managed identity (AZURE_CLIENT_ID for a user-assigned one), or run `az login`",
        )
    if status == 403 and "disabled" in reason.lower():
        return ConfigError(f"{where} is disabled ({reason})", hint="enable the secret's current version")
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return AzureAuthError(
            f"Key Vault refused to give {where} to this identity ({reason})",
            hint="grant the identity the 'Key Vault Secrets User' role on the vault (or a get-secret access policy)",
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError) or status in _TRANSIENT_STATUS:
        return TransientAzureError(
            f"a temporary failure stopped reading {where} ({reason})",
            hint="it is retried; if it persists, check the vault's network rules and https://status.azure.com",
        )
    if isinstance(exc, AzureError | ValueError):
        return AzureApiError(f"reading {where} failed ({reason})")
    return AzureApiError(f"reading {where} failed ({type(exc).__name__})")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HttpResponseError) and exc.error is not None and exc.error.message:
        text = f"{exc.error.code}: {exc.error.message}" if exc.error.code else str(exc.error.message)
    else:
        text = str(exc) or type(exc).__name__
    line = next((part.strip() for part in text.splitlines() if part.strip()), type(exc).__name__)
    return redact(line)[:300]
