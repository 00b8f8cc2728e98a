"""Adapters the worker's use case runs on: secrets, the repository, managed-disk snapshot sources.

* :class:`SecretResolvers`: ``file`` references are read from disk (local mode: a secret file next
  to the stack); ``keyvault`` references are read from Key Vault with the process's credential
  (:meth:`SecretResolvers.for_azure`; the simulator's vaults locally).
* :class:`StoreRepositoryOpener`: ``open_store`` + ``Repository.open`` with the storage
  credentials of the worker's environment (its managed identity in Azure).
* :class:`ManagedDiskSources`, :class:`VhdBlobSources`: ``ManagedDiskSnapshotSource`` and
  ``PageBlobSnapshotSource`` over the data-plane options of the Azure clients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

from azure.core.credentials import TokenCredential

from shared.azure.keyvault import KeyVaultSecrets
from shared.azure.model import SasUrl
from shared.azure.pageblob import DataPlaneOptions
from shared.azure.settings import AzureSettings
from shared.azure.upload import DiskUpload
from shared.core.clock import Clock
from shared.core.errors import ConfigError
from shared.repo.repository import Repository
from shared.services.job_spec import SecretRef
from shared.services.ports import ChangeAwareSource, SecretResolver, UploadTarget, VhdSource
from shared.sources.managed_disk import ManagedDiskSnapshotSource
from shared.sources.page_blob import PageBlobSnapshotSource
from shared.storage.location import open_store

__all__ = [
    "DiskUploads",
    "FileSecretResolver",
    "ManagedDiskSources",
    "SecretResolvers",
    "StoreRepositoryOpener",
    "VhdBlobSources",
]

_MAX_SECRET_BYTES = 64 * 1024


class FileSecretResolver:
    """A secret kept in a local file (local mode); a trailing newline is not part of it."""

    def resolve(self, reference: SecretRef) -> str:
        path = Path(reference.path or "")
        try:
            if path.stat().st_size > _MAX_SECRET_BYTES:
                raise ConfigError(f"the secret file {path} is larger than 64 KiB; is it the right file?")
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            raise ConfigError(
                f"the secret file {path} does not exist",
                hint="create it (one line: the repository passphrase) or fix the policy's secret reference",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the secret file {path}: {type(exc).__name__}") from None
        if not value:
            raise ConfigError(f"the secret file {path} is empty", hint="write the repository passphrase into it")
        return value


class KeyVaultSecretResolver:
    """A secret in Key Vault: the reference's vault and secret name, its latest version."""

    def __init__(self, secrets: KeyVaultSecrets | None) -> None:
        self._secrets = secrets

    def resolve(self, reference: SecretRef) -> str:
        if self._secrets is None or not reference.vault or not reference.name:
            raise ConfigError(
                f"cannot read {reference.describe()}: this process was started without Azure settings",
                hint="build the resolvers with SecretResolvers.for_azure (the worker and the app do)",
            )
        return self._secrets.get(reference.vault, reference.name)


class SecretResolvers:
    """Dispatches a reference to the resolver of its kind."""

    def __init__(self, by_kind: Mapping[str, SecretResolver] | None = None) -> None:
        defaults: dict[str, SecretResolver] = {"file": FileSecretResolver(), "keyvault": KeyVaultSecretResolver(None)}
        self._by_kind = dict(by_kind or defaults)

    @classmethod
    def for_azure(cls, settings: AzureSettings, credential: TokenCredential) -> SecretResolvers:
        """Files, and Key Vault secrets read with ``credential`` from the vaults ``settings`` address."""
        vaults = KeyVaultSecrets(settings, credential)
        return cls({"file": FileSecretResolver(), "keyvault": KeyVaultSecretResolver(vaults)})

    def resolve(self, reference: SecretRef) -> str:
        resolver = self._by_kind.get(reference.kind)
        if resolver is None:
            raise ConfigError(f"no resolver for secret references of kind {reference.kind!r}")
        return resolver.resolve(reference)


class StoreRepositoryOpener:
    def __init__(self, env: Mapping[str, str], clock: Clock) -> None:
        self._env = dict(env)
        self._clock = clock

    def open(self, location: str, passphrase: str) -> Repository:
        return Repository.open(open_store(location, self._env), passphrase, self._clock)


class VhdBlobSources:
    """Blob snapshots of unmanaged VHDs, read with the data-plane credential (the worker's identity)."""

    def __init__(self, options: DataPlaneOptions) -> None:
        self._options = options

    def open(self, vhd_uri: str, snapshot: str, *, source_id: str) -> AbstractContextManager[VhdSource]:
        return PageBlobSnapshotSource(vhd_uri, snapshot, options=self._options, source_id=source_id)


class ManagedDiskSources:
    def __init__(self, options: DataPlaneOptions) -> None:
        self._options = options

    def open(
        self, sas: SasUrl, *, source_id: str, renew: Callable[[], SasUrl]
    ) -> AbstractContextManager[ChangeAwareSource]:
        return ManagedDiskSnapshotSource(sas, source_id=source_id, options=self._options, renew=renew)


class DiskUploads:
    """Upload disks written through their write SAS (``shared.azure.upload.DiskUpload``)."""

    def __init__(self, options: DataPlaneOptions) -> None:
        self._options = options

    def open(self, sas: SasUrl, size: int) -> AbstractContextManager[UploadTarget]:
        return DiskUpload(sas, size, options=self._options)
