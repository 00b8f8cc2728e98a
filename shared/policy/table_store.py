"""The PolicyStore port over Azure Table storage (azure-data-tables; Azurite locally).

One entity per policy: PartitionKey ``"policy"`` (policies are few; one partition lists them in one
query), RowKey the policy id, the JSON document across ``Doc*`` properties (see
:mod:`shared.policy.azure_table`), plus ``SchemaVersion`` and ``Enabled`` for people browsing the
table. ETags are the service's; ``update`` and conditional ``delete`` send ``If-Match``.
"""

from __future__ import annotations

from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.data.tables import TableClient, TableEntity, UpdateMode

from shared.core.errors import PolicyConflictError, PolicyExistsError, PolicyNotFoundError
from shared.policy.azure_table import (
    ensure_table,
    etag_of,
    is_missing_entity,
    pack_document,
    translate_table_error,
    unpack_document,
)
from shared.policy.document import policy_from_dict, policy_to_dict
from shared.policy.model import Policy
from shared.policy.store import PolicyStore, StoredPolicy

__all__ = ["PARTITION", "AzureTablePolicyStore"]

PARTITION = "policy"
_SCHEMA_VERSION = 1


class AzureTablePolicyStore:
    """Policies in one Azure table. The caller builds the TableClient (explicit wiring)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def ensure_table(self) -> None:
        ensure_table(self._table)

    def create(self, policy: Policy) -> StoredPolicy:
        entity = self._entity(policy)
        try:
            metadata = self._table.create_entity(entity)
        except ResourceExistsError as exc:
            raise PolicyExistsError(policy.id) from exc
        except AzureError as exc:
            raise self._error(exc, policy.id) from exc
        return StoredPolicy(policy, etag_of(metadata))

    def update(self, policy: Policy, *, etag: str) -> StoredPolicy:
        entity = self._entity(policy)
        try:
            metadata = self._table.update_entity(
                entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except AzureError as exc:
            raise self._error(exc, policy.id) from exc
        return StoredPolicy(policy, etag_of(metadata))

    def get(self, policy_id: str) -> StoredPolicy:
        try:
            entity = self._table.get_entity(PARTITION, policy_id)
        except AzureError as exc:
            raise self._error(exc, policy_id) from exc
        return self._stored(entity)

    def list(self) -> list[StoredPolicy]:
        try:
            entities = list(
                self._table.query_entities("PartitionKey eq @partition", parameters={"partition": PARTITION})
            )
        except AzureError as exc:
            raise self._error(exc, None) from exc
        return [self._stored(entity) for entity in sorted(entities, key=lambda e: str(e["RowKey"]))]

    def delete(self, policy_id: str, *, etag: str | None = None) -> None:
        # The SDK treats deleting a missing entity as success; read first so a wrong id is reported.
        current = self.get(policy_id)
        try:
            self._table.delete_entity(
                PARTITION, policy_id, etag=etag or current.etag, match_condition=MatchConditions.IfNotModified
            )
        except AzureError as exc:
            raise self._error(exc, policy_id) from exc

    def _entity(self, policy: Policy) -> dict[str, Any]:
        document = policy_to_dict(policy)
        policy_from_dict(document)  # validate: nothing invalid is stored
        return {
            "PartitionKey": PARTITION,
            "RowKey": policy.id,
            "SchemaVersion": _SCHEMA_VERSION,
            "Enabled": policy.enabled,
            **pack_document(document, what=f"policy '{policy.id}'"),
        }

    def _stored(self, entity: TableEntity) -> StoredPolicy:
        what = f"policy '{entity['RowKey']}'"
        return StoredPolicy(policy_from_dict(unpack_document(entity, what=what)), etag_of(entity.metadata))

    def _error(self, exc: AzureError, policy_id: str | None) -> Exception:
        """The one translation of this adapter's SDK errors; ``policy_id`` is None for the list."""
        if policy_id is not None and is_missing_entity(exc):
            return PolicyNotFoundError(policy_id)
        if policy_id is not None and isinstance(exc, HttpResponseError) and exc.status_code == 412:
            return PolicyConflictError(policy_id)
        what = f"policy '{policy_id}'" if policy_id is not None else "the policy list"
        return translate_table_error(exc, what, self._table.table_name)


_: type[PolicyStore] = AzureTablePolicyStore
