"""BACPAC staging blobs: where the SQL export writes, and where a worker reads from.

The export writes through a short-lived SAS signed with the app storage account's key, which
never leaves :class:`BlobBacpacStaging`; a worker downloads with its own managed identity
(:class:`BlobBacpacDownloads`; Azurite's public development account on loopback).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobClient, BlobSasPermissions, BlobServiceClient, generate_blob_sas

from shared.azure.model import STAGING_CONTAINER, BacpacLocation, Secret
from shared.core.errors import SourceError, redact
from shared.storage.location import EMULATOR_ACCOUNT, EMULATOR_KEY

__all__ = ["BlobBacpacDownloads", "BlobBacpacStaging", "BlobBacpacUploads"]
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class BlobBacpacStaging:
    """:class:`BacpacStaging` over the app's storage account (its connection string holds the
    account key, which signs the export's SAS and never leaves this object)."""

    def __init__(self, connection_string: str, container: str = STAGING_CONTAINER) -> None:
        self._service = BlobServiceClient.from_connection_string(connection_string)
        self._container = container
        self._created = False

    def url(self, name: str) -> str:
        return f"{str(self._service.url).split('?', 1)[0].rstrip('/')}/{self._container}/{name}"

    def writable(self, name: str, expiry: dt.datetime) -> BacpacLocation:
        self.ensure_container()
        return self._location(name, BlobSasPermissions(read=True, write=True, create=True), expiry)

    def readable(self, name: str, expiry: dt.datetime) -> BacpacLocation:
        """Where the import service may read ``name``: URL + a read-only SAS."""
        return self._location(name, BlobSasPermissions(read=True), expiry)

    def ensure_container(self) -> None:
        if not self._created:
            with contextlib.suppress(ResourceExistsError):
                self._service.create_container(self._container)
            self._created = True

    def _location(self, name: str, permission: BlobSasPermissions, expiry: dt.datetime) -> BacpacLocation:
        credential = self._service.credential
        token = generate_blob_sas(
            credential.account_name,
            self._container,
            name,
            account_key=credential.account_key,
            permission=permission,
            expiry=expiry,
        )
        return BacpacLocation(self.url(name), Secret("?" + token), "SharedAccessKey")

    def delete(self, name: str) -> bool:
        try:
            self._service.get_blob_client(self._container, name).delete_blob(delete_snapshots="include")
        except ResourceNotFoundError:
            return False
        return True

    def names(self) -> list[str]:
        """The staging blobs there are now (tests, operators)."""
        try:
            return sorted(str(b.name) for b in self._service.get_container_client(self._container).list_blobs())
        except ResourceNotFoundError:
            return []

    def close(self) -> None:
        self._service.close()


class BlobBacpacDownloads:
    """Reads staging BACPACs with the worker's managed identity (Azurite on loopback: the emulator's
    well-known development account, as the job-status table does)."""

    def __init__(self, *, client_id: str | None = None) -> None:
        self._client_id = client_id

    def download(self, url: str, target: Path) -> int:
        credential = _worker_credential(url, self._client_id)
        try:
            with BlobClient.from_blob_url(url, credential=credential) as blob, target.open("wb") as out:
                return int(blob.download_blob(max_concurrency=2).readinto(out))
        except ResourceNotFoundError:
            raise SourceError(f"the staging BACPAC {url} is gone", hint="the session's export must run again") from None
        except AzureError as exc:
            raise SourceError(f"could not read the staging BACPAC {url}: {redact(str(exc).splitlines()[0])}") from None


class BlobBacpacUploads:
    """Writes a rebuilt BACPAC into the staging container with the worker's identity (a restore's
    ``bacpac-restore`` job); the import service then reads it through a SAS the app makes."""

    def __init__(self, *, client_id: str | None = None) -> None:
        self._client_id = client_id

    def upload(self, source: Path, url: str) -> int:
        credential = _worker_credential(url, self._client_id)
        try:
            with BlobClient.from_blob_url(url, credential=credential) as blob, source.open("rb") as data:
                size = source.stat().st_size
                blob.upload_blob(data, length=size, overwrite=True, max_concurrency=2)
                return size
        except AzureError as exc:
            raise SourceError(
                f"could not write the rebuilt BACPAC to {url}: {redact(str(exc).splitlines()[0])}",
                hint="the worker's identity needs Storage Blob Data Contributor on the staging container",
            ) from None


def _worker_credential(url: str, client_id: str | None) -> Any:
    """The worker's identity, or Azurite's public development account on loopback."""
    parts = urlsplit(url)
    if (parts.hostname or "") in _LOOPBACK and unquote(parts.path).strip("/").split("/")[0] == EMULATOR_ACCOUNT:
        return AzureNamedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY)
    return DefaultAzureCredential(managed_identity_client_id=client_id)
