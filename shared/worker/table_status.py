"""The job-status record on Azure Table storage (Azurite locally).

Table ``bulwarkjobs`` (by default), PartitionKey ``job``, RowKey = the job id, one entity per job
replaced on every write: ``attempt``, ``state``, ``updated``, ``progress_bytes``, ``result`` (JSON
text), ``error``, ``error_code``, ``retryable``. The function app reaches the table with its
storage connection; a worker with the table endpoint from its job spec and its managed identity
(Azurite on loopback: the emulator's well-known development account).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.core.errors import StorageAuthError, StorageError, TransientStorageError, redact
from shared.services.job_spec import StatusRef
from shared.services.job_status import JobStatus
from shared.storage.location import EMULATOR_ACCOUNT, EMULATOR_KEY

__all__ = ["DEFAULT_TABLE", "TableJobStatusStore"]

DEFAULT_TABLE = "bulwarkjobs"
_PARTITION = "job"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class TableJobStatusStore:
    def __init__(self, client: TableClient) -> None:
        self._client = client
        self._created = False

    @classmethod
    def from_connection_string(cls, connection_string: str, table: str = DEFAULT_TABLE) -> TableJobStatusStore:
        try:
            client = TableClient.from_connection_string(connection_string, table_name=table)
        except ValueError as exc:
            raise StorageError(f"the storage connection string is not valid: {redact(str(exc))}") from None
        return cls(client)

    @classmethod
    def for_reference(cls, reference: StatusRef, *, client_id: str | None = None) -> TableJobStatusStore:
        """The table a job spec names, reached with the worker's own identity."""
        parts = urlsplit(reference.endpoint)
        credential: Any
        if (parts.hostname or "") in _LOOPBACK and parts.path.strip("/") == EMULATOR_ACCOUNT:
            credential = AzureNamedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY)
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=client_id)
        return cls(TableClient(reference.endpoint, reference.table, credential=credential))

    @property
    def endpoint(self) -> str:
        """The table service endpoint (no credential in it): what a job spec's status reference holds."""
        url: str = self._client.url
        return url.split("?", 1)[0]

    @property
    def table(self) -> str:
        name: str = self._client.table_name
        return name

    def put(self, status: JobStatus) -> None:
        entity = {
            "PartitionKey": _PARTITION,
            "RowKey": status.job_id,
            "attempt": status.attempt,
            "state": status.state,
            "updated": status.updated,
            "progress_bytes": status.progress_bytes,
            "result": json.dumps(dict(status.result)) if status.result is not None else "",
            "error": status.error or "",
            "error_code": status.error_code or "",
            "retryable": status.retryable,
            "started": status.started,
        }
        self._ensure_table()
        try:
            self._client.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise _translate(exc, f"write the status of job {status.job_id}") from None

    def get(self, job_id: str) -> JobStatus | None:
        try:
            entity = self._client.get_entity(_PARTITION, job_id)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _translate(exc, f"read the status of job {job_id}") from None
        doc = dict(entity)
        doc["job_id"] = job_id
        return JobStatus.from_dict(doc)

    def close(self) -> None:
        self._client.close()

    def _ensure_table(self) -> None:
        if self._created:
            return
        try:
            self._client.create_table()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise _translate(exc, f"create the job-status table {self.table}") from None
        self._created = True


def _translate(exc: AzureError, action: str) -> StorageError:
    summary = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if isinstance(exc, ClientAuthenticationError):
        return StorageAuthError(
            f"Table storage refused the credential to {action}: {summary}",
            hint="give the identity the 'Storage Table Data Contributor' role on the account",
        )
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    if status is None or status in (408, 429) or status >= 500:
        return TransientStorageError(f"could not {action}: {summary}", hint="it is retried")
    return StorageError(f"could not {action}: {summary}")
