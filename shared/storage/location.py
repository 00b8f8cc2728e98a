"""Turn a repository location (a folder or an Azure URL) into a blob store.

Accepted forms (see ``LOCATION_FORMS``):

* a directory path: ``/srv/backups/repo``, ``./repo``;
* ``https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]`` with credentials from the environment:
  ``AZURE_STORAGE_KEY`` (account key), else ``AZURE_STORAGE_SAS_TOKEN``, else the Azure identity
  (``DefaultAzureCredential``: managed identity, ``az login``, workload identity ...);
* ``http(s)://127.0.0.1:PORT/ACCOUNT/CONTAINER[/PREFIX]`` (also ``localhost``): an emulator such as
  Azurite, path-style, with the same credentials, defaulting to Azurite's public development key for
  the account ``devstoreaccount1``;
* ``azure://CONTAINER[/PREFIX]`` with ``AZURE_STORAGE_CONNECTION_STRING``.

The environment is passed in, never read here. The Azure SDK is imported only when a location needs
it, so a directory repository does not pay for importing it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from shared.core.errors import ConfigError, StorageError, UsageError, redact
from shared.storage.directory import DirectoryStore, check_key
from shared.storage.port import BlobStore
from shared.storage.retrying import RetryingBlobStore

if TYPE_CHECKING:
    from shared.storage.azure_blob import AzureBlobStore

__all__ = [
    "EMULATOR_ACCOUNT",
    "EMULATOR_KEY",
    "LOCATION_FORMS",
    "AzureLocation",
    "DirectoryLocation",
    "Location",
    "open_store",
    "parse_location",
]

LOCATION_FORMS = """accepted locations:
  /path/to/folder                                          a directory
  https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]  Azure Blob Storage; credentials from
                                                           AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN
                                                           or your Azure identity
  http://127.0.0.1:PORT/ACCOUNT/CONTAINER[/PREFIX]         a local emulator such as Azurite
  azure://CONTAINER[/PREFIX]                               Azure Blob Storage through
                                                           AZURE_STORAGE_CONNECTION_STRING"""

_ACCOUNT_HOST = re.compile(r"^([a-z0-9]{3,24})\.blob\.[a-z0-9.-]+$")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development key; public, documented by Microsoft, only used on loopback."""


@dataclass(frozen=True)
class DirectoryLocation:
    path: Path


@dataclass(frozen=True)
class AzureLocation:
    container: str
    prefix: str = ""
    account_url: str | None = None
    """``https://ACCOUNT.blob.core.windows.net`` or ``http://127.0.0.1:PORT/ACCOUNT``; ``None``
    when the account comes from ``AZURE_STORAGE_CONNECTION_STRING``."""
    account_name: str | None = None
    emulator: bool = False


Location = DirectoryLocation | AzureLocation


def parse_location(location: str) -> Location:
    """Parse a repository location; raise UsageError naming the accepted forms if it is none."""
    text = location.strip()
    if not text:
        raise _bad(location, "the location is empty")
    if "://" not in text:
        return DirectoryLocation(Path(text))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise _bad(
            location,
            "it has a query or fragment; put a SAS token in AZURE_STORAGE_SAS_TOKEN, not in the location",
        )
    if scheme == "azure":
        container, _, prefix = f"{parts.netloc}{parts.path}".partition("/")
        return AzureLocation(container=_container(location, container), prefix=_prefix(location, prefix))
    if scheme not in ("http", "https"):
        raise _bad(location, f"unknown scheme '{parts.scheme}'")
    host = (parts.hostname or "").lower()
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError as exc:
        raise _bad(location, "the port is not a number") from exc
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    account_host = _ACCOUNT_HOST.match(host)
    if account_host and scheme == "https":
        if not segments:
            raise _bad(location, "the container is missing")
        return AzureLocation(
            container=_container(location, segments[0]),
            prefix=_prefix(location, "/".join(segments[1:])),
            account_url=f"https://{host}{port}",
            account_name=account_host.group(1),
        )
    if host in _LOOPBACK:
        if len(segments) < 2:
            raise _bad(location, "an emulator location needs /ACCOUNT/CONTAINER after the port")
        account = segments[0]
        if not _ACCOUNT.match(account):
            raise _bad(location, f"'{account}' is not a storage account name")
        netloc = f"[{host}]" if ":" in host else host
        return AzureLocation(
            container=_container(location, segments[1]),
            prefix=_prefix(location, "/".join(segments[2:])),
            account_url=f"{scheme}://{netloc}{port}/{account}",
            account_name=account,
            emulator=True,
        )
    if account_host:
        raise _bad(location, "Azure Blob Storage needs https")
    raise _bad(location, f"'{host}' is neither a blob endpoint (ACCOUNT.blob.core.windows.net) nor loopback")


def open_store(location: str, env: Mapping[str, str], *, create: bool = False) -> BlobStore:
    """Open the blob store at ``location``, wrapped to retry transient failures.

    ``env`` holds the environment variables named in the module docstring. With ``create`` the
    folder or container is created if missing (for ``repo init``).
    """
    parsed = parse_location(location)
    if isinstance(parsed, DirectoryLocation):
        if create:
            try:
                parsed.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"Cannot create the folder {parsed.path}: {exc.strerror or exc}.") from exc
        return RetryingBlobStore(DirectoryStore(parsed.path))
    store = _open_azure(parsed, env)
    if create:
        store.ensure_container()
    return RetryingBlobStore(store)


def _open_azure(location: AzureLocation, env: Mapping[str, str]) -> AzureBlobStore:
    from azure.storage.blob import ContainerClient

    from shared.storage.azure_blob import CLIENT_OPTIONS, AzureBlobStore

    if location.account_url is None:
        connection_string = env.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
        if not connection_string:
            raise ConfigError(
                "An azure:// location needs AZURE_STORAGE_CONNECTION_STRING.",
                hint="set it, or use https://ACCOUNT.blob.core.windows.net/CONTAINER instead",
            )
        try:
            client = ContainerClient.from_connection_string(connection_string, location.container, **CLIENT_OPTIONS)
        except ValueError as exc:
            raise ConfigError(
                f"AZURE_STORAGE_CONNECTION_STRING is not a valid connection string: {redact(str(exc))}"
            ) from exc
    else:
        client = ContainerClient(
            location.account_url,
            location.container,
            credential=_credential(location, env),
            **CLIENT_OPTIONS,
        )
    return AzureBlobStore(client, prefix=location.prefix)


def _credential(location: AzureLocation, env: Mapping[str, str]) -> Any:
    from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential

    key = env.get("AZURE_STORAGE_KEY", "").strip()
    sas = env.get("AZURE_STORAGE_SAS_TOKEN", "").strip().lstrip("?")
    if key and sas:
        raise ConfigError(
            "Both AZURE_STORAGE_KEY and AZURE_STORAGE_SAS_TOKEN are set.", hint="unset the one you do not mean"
        )
    if not key and not sas and location.emulator and location.account_name == EMULATOR_ACCOUNT:
        key = EMULATOR_KEY
    if key:
        try:
            base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(
                "AZURE_STORAGE_KEY is not an account key (base64).",
                hint="copy key1 or key2 from the storage account's Access keys",
            ) from exc
        return AzureNamedKeyCredential(location.account_name or "", key)
    if sas:
        return AzureSasCredential(sas)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def _container(location: str, name: str) -> str:
    if not name:
        raise _bad(location, "the container is missing")
    if not _CONTAINER.match(name):
        raise _bad(
            location,
            f"'{name}' is not a container name (3-63 lowercase letters, digits and single hyphens)",
        )
    return name


def _prefix(location: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except UsageError as exc:
            raise _bad(location, f"the prefix is invalid: {exc.message}") from exc
    return prefix


def _bad(location: str, reason: str) -> UsageError:
    return UsageError(f"Cannot use {redact(location)!r} as a repository location: {reason}.", hint=LOCATION_FORMS)
