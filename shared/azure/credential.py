"""Credentials: azure-identity's DefaultAzureCredential in Azure, a static bearer token for the simulator."""

from __future__ import annotations

from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential
from azure.identity import DefaultAzureCredential

from .settings import AzureSettings

__all__ = ["StaticTokenCredential", "build_credential"]

_FAR_FUTURE = 4_102_444_800  # 2100-01-01: a static token does not expire


class StaticTokenCredential:
    """Hands out one fixed bearer token. For the local simulator, which accepts any token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._token, _FAR_FUTURE)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(self._token, _FAR_FUTURE)

    def __repr__(self) -> str:
        return "StaticTokenCredential(<token hidden>)"


def build_credential(settings: AzureSettings) -> TokenCredential:
    """The static token when the settings carry one (the simulator), else DefaultAzureCredential
    (managed identity in Azure, the developer's az login elsewhere)."""
    if settings.static_token:
        return StaticTokenCredential(settings.static_token)
    return DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)
