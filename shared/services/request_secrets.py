"""Which secret references a caller of the app's HTTP API may name (a SQL restore's login, the
passphrase of a repository it names).

A reference is never a secret itself: it says where the app finds one. On the local stack a file
on this machine is fine, since the caller is the machine's own user. In Azure the caller holds
only a function key, and a file reference would have the app read whatever file it names on its
own host and hand it on as a password, so there only the app's own Key Vault may be named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.core.errors import ConfigError

from .job_spec import SecretRef

__all__ = ["RequestSecrets"]

_INLINE = frozenset({"password", "value", "secret", "passphrase"})


@dataclass(frozen=True)
class RequestSecrets:
    key_vault: str | None
    """The app's Key Vault (``BULWARK_KEY_VAULT``), if it has one."""
    files: bool
    """Whether file references are accepted: on the local stack only."""

    def parse(self, raw: object) -> SecretRef:
        """``{"key_vault_secret": name}``, ``{"file": path}`` or a full reference object, checked
        against this rule; ConfigError saying what to send instead."""
        if not isinstance(raw, Mapping):
            raise ConfigError("must be a reference object")
        if set(raw) & _INLINE:
            raise ConfigError("holds what looks like an inline secret, which is never accepted")
        if "key_vault_secret" in raw and "kind" not in raw:
            if not self.key_vault:
                raise ConfigError("names a Key Vault secret, but the app has no Key Vault (BULWARK_KEY_VAULT)")
            return SecretRef("keyvault", vault=self.key_vault, name=str(raw["key_vault_secret"]))
        reference = SecretRef("file", path=str(raw["file"])) if "file" in raw and "kind" not in raw else None
        reference = reference or SecretRef.from_dict(raw)
        if reference.kind == "file" and not self.files:
            raise ConfigError(
                "names a file, which the app accepts only on the local stack; "
                'in Azure name a secret of the app\'s Key Vault: {"key_vault_secret": "name"}'
            )
        if reference.kind == "keyvault" and self.key_vault and reference.vault != self.key_vault:
            raise ConfigError(
                f"names the vault '{reference.vault}', but the app reads secrets only from its own, "
                f'\'{self.key_vault}\': send {{"key_vault_secret": "name"}}'
            )
        return reference
