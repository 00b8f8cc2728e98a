"""PolicyStore implementations against the contract: in memory, and Azure Table storage on Azurite."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.data.tables import TableClient, TableServiceClient
from bulwark_local.azurite import Azurite

from shared.core.errors import (
    ConfigError,
    IntegrityError,
    StorageAuthError,
    StorageError,
    TransientStorageError,
    UsageError,
)
from shared.policy.azure_table import pack_document, translate_table_error, unpack_document
from shared.policy.store import InMemoryPolicyStore
from shared.policy.table_store import PARTITION, AzureTablePolicyStore
from tests.policy.store_contract import PolicyStoreContract, make

_names = itertools.count()


class TestInMemoryPolicyStore(PolicyStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryPolicyStore:
        return InMemoryPolicyStore()


@pytest.fixture
def table(azurite: Azurite) -> Iterator[TableClient]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    client = service.get_table_client(f"policies{next(_names)}")
    yield client
    client.delete_table()


@pytest.mark.azurite
class TestAzureTablePolicyStore(PolicyStoreContract):
    @pytest.fixture
    def store(self, table: TableClient) -> AzureTablePolicyStore:
        store = AzureTablePolicyStore(table)
        store.ensure_table()
        store.ensure_table()  # idempotent
        return store

    def test_entity_layout(self, store: AzureTablePolicyStore, table: TableClient) -> None:
        store.create(make())
        entity = table.get_entity(PARTITION, "prod-vms")
        assert entity["SchemaVersion"] == 1
        assert entity["Enabled"] is True
        assert entity["DocFormat"] == "json" and entity["DocChunks"] == 1
        assert json.loads(entity["Doc0"])["id"] == "prod-vms"

    def test_missing_table_is_a_config_error(self, azurite: Azurite) -> None:
        service = TableServiceClient.from_connection_string(azurite.connection_string)
        store = AzureTablePolicyStore(service.get_table_client("nosuchtable"))
        with pytest.raises(ConfigError, match="The table 'nosuchtable' does not exist"):
            store.get("prod-vms")
        with pytest.raises(ConfigError):
            store.create(make())

    def test_damaged_entity_is_an_integrity_error(self, store: AzureTablePolicyStore, table: TableClient) -> None:
        table.create_entity({"PartitionKey": PARTITION, "RowKey": "broken", "DocFormat": "json", "DocChunks": 2})
        with pytest.raises(IntegrityError, match="The stored entity of policy 'broken' is damaged"):
            store.get("broken")


# -- documents across properties ------------------------------------------------------------------------


def test_documents_are_chunked_as_text_then_compressed() -> None:
    small = {"a": "b"}
    assert pack_document(small, what="x") == {"DocFormat": "json", "DocChunks": 1, "Doc0": '{"a":"b"}'}
    medium = {"items": [f"item-{i}" for i in range(20_000)]}
    packed = pack_document(medium, what="x")
    assert packed["DocFormat"] == "json" and packed["DocChunks"] > 1
    assert all(len(packed[f"Doc{i}"]) <= 32_000 for i in range(packed["DocChunks"]))
    assert unpack_document(packed, what="x") == medium
    large = {"items": [f"item-{i}" for i in range(100_000)]}
    packed = pack_document(large, what="x")
    assert packed["DocFormat"] == "json+zlib"
    assert unpack_document(packed, what="x") == large
    unicode = {"description": "Sicherung für Übersee ✓"}
    assert unpack_document(pack_document(unicode, what="x"), what="x") == unicode


def test_documents_too_large_even_compressed_are_refused() -> None:
    rng = random.Random(1)
    huge = {"noise": [rng.getrandbits(64) for _ in range(200_000)]}
    with pytest.raises(UsageError, match="policy 'p' is too large to store"):
        pack_document(huge, what="policy 'p'")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ClientAuthenticationError("denied"), StorageAuthError),
        (ServiceRequestError("connection refused"), TransientStorageError),
        (ResourceNotFoundError("gone"), StorageError),
    ],
)
def test_sdk_errors_are_translated(exc: Exception, expected: type[Exception]) -> None:
    translated = translate_table_error(exc, "policy 'p'", "policies")  # type: ignore[arg-type]
    assert type(translated) is expected
    assert "policy 'p'" in str(translated)


def test_throttling_is_transient_and_keys_are_redacted() -> None:
    exc = HttpResponseError("Server busy; AccountKey=abc123 sig=xyz")
    exc.status_code = 503
    translated = translate_table_error(exc, "policy 'p'", "policies")
    assert isinstance(translated, TransientStorageError)
    assert "abc123" not in str(translated) and "xyz" not in str(translated)
