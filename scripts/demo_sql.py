"""The SQL part of `make demo` (scripts/demo.py): a reference BACPAC export of a database, and the
comparison of a restored BACPAC's members with it."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

REFERENCE_CONTAINER = "demo-reference-exports"


def is_sql(resource_id: str) -> bool:
    return "/providers/microsoft.sql/servers/" in resource_id.lower()


def connection_fields(connection_string: str) -> dict[str, str]:
    """``Key=Value;...`` as a dict (the keys as written)."""
    fields = {}
    for part in connection_string.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def timeless_origin(origin: bytes) -> bytes:
    """Origin.xml without what differs between two exports of the same data: identity and times."""
    return re.sub(rb"<(Identity|Start|End)>[^<]*</\1>", rb"<\1/>", origin)


def bacpac_differences(restored: Path, reference: Path) -> list[str]:
    """The members of ``restored`` that differ from ``reference`` (Origin.xml up to its identity and
    times); an empty list when every member is identical."""
    with zipfile.ZipFile(restored) as mine, zipfile.ZipFile(reference) as theirs:
        if mine.namelist() != theirs.namelist():
            return [f"members: {sorted(set(mine.namelist()) ^ set(theirs.namelist()))}"]
        differ = []
        for name in theirs.namelist():
            left, right = mine.read(name), theirs.read(name)
            if name == "Origin.xml":
                left, right = timeless_origin(left), timeless_origin(right)
            if left != right:
                differ.append(name)
        return differ


def member_count(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return len(archive.namelist())


def export_reference(stack: Any, database_id: str, login: str, password: str, target: Path) -> Path:
    """Export ``database_id`` now through the (simulated) import/export service into Azurite and
    download it to ``target``: what the database holds, to compare a restored BACPAC with."""
    from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

    from shared.azure.clients import AzureClients
    from shared.azure.model import BacpacLocation, SasUrl, Secret, SqlLogin
    from shared.azure.settings import AzureSettings

    fields = connection_fields(stack.storage_connection_string)
    name = f"{target.stem}.bacpac"
    with BlobServiceClient.from_connection_string(stack.storage_connection_string) as service:
        container = service.get_container_client(REFERENCE_CONTAINER)
        if not container.exists():
            container.create_container()
        token = generate_blob_sas(
            fields["AccountName"],
            REFERENCE_CONTAINER,
            name,
            account_key=fields["AccountKey"],
            permission=BlobSasPermissions(read=True, write=True, create=True),
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        )
        url = f"{str(service.url).rstrip('/')}/{REFERENCE_CONTAINER}/{name}?{token}"
        clients = AzureClients(AzureSettings.for_local_stack(asdict(stack)))
        try:
            clients.sql().export_database(
                database_id, destination=BacpacLocation.from_sas(SasUrl(url)), login=SqlLogin(login, Secret(password))
            )
        finally:
            clients.close()
        blob = container.get_blob_client(name)
        target.write_bytes(blob.download_blob().readall())
        blob.delete_blob()
    return target
