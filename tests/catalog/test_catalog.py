"""Catalog implementations against the contract: in memory, and Azure Table storage on Azurite."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator

import pytest
from azure.data.tables import TableClient, TableServiceClient
from bulwark_local.azurite import Azurite

from shared.catalog.memory import InMemoryCatalog
from shared.catalog.table import (
    POINTER_PARTITION,
    AzureTableCatalog,
    inverted_time,
    resource_partition,
    time_of_row,
)
from shared.core.errors import ConfigError, IntegrityError
from tests.catalog.contract import CatalogContract, at, point, session
from tests.policy.documents import VM

_names = itertools.count()


class TestInMemoryCatalog(CatalogContract):
    @pytest.fixture
    def catalog(self) -> InMemoryCatalog:
        return InMemoryCatalog()


@pytest.fixture
def tables(azurite: Azurite) -> Iterator[tuple[TableClient, TableClient]]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    number = next(_names)
    sessions = service.get_table_client(f"sessions{number}")
    points = service.get_table_client(f"points{number}")
    yield sessions, points
    sessions.delete_table()
    points.delete_table()


@pytest.mark.azurite
class TestAzureTableCatalog(CatalogContract):
    @pytest.fixture
    def catalog(self, tables: tuple[TableClient, TableClient]) -> AzureTableCatalog:
        catalog = AzureTableCatalog(*tables)
        catalog.ensure_tables()
        return catalog

    def test_key_layout(self, catalog: AzureTableCatalog, tables: tuple[TableClient, TableClient]) -> None:
        sessions, points = tables
        catalog.save_session(session("prod-vms@20240601T020000Z"))
        pointer = sessions.get_entity(POINTER_PARTITION, "prod-vms@20240601T020000Z")
        row = f"{inverted_time(at(0))}_prod-vms@20240601T020000Z"
        assert (pointer["PolicyId"], pointer["SessionRow"]) == ("prod-vms", row)
        entity = sessions.get_entity("prod-vms", row)
        assert (entity["Status"], entity["Trigger"], entity["SessionId"]) == ("Running", "schedule", pointer["RowKey"])
        catalog.add_point(point("p1", time=at(1)))
        entity = points.get_entity(resource_partition(VM), f"{inverted_time(at(1))}_p1")
        assert (entity["ResourceId"], entity["Kind"], entity["Size"].value) == (VM, "image", 10 * 2**30)

    def test_damaged_session_is_an_integrity_error(
        self, catalog: AzureTableCatalog, tables: tuple[TableClient, TableClient]
    ) -> None:
        sessions, _ = tables
        catalog.save_session(session("s1"))
        row = f"{inverted_time(at(0))}_s1"
        sessions.upsert_entity({"PartitionKey": "prod-vms", "RowKey": row, "DocFormat": "json", "DocChunks": 1,
                                "Doc0": '{"session_id": "s1"}'})  # fmt: skip
        with pytest.raises(IntegrityError, match="The stored record of the session is not valid"):
            catalog.get_session("s1")

    def test_missing_tables_are_a_config_error(self, azurite: Azurite) -> None:
        service = TableServiceClient.from_connection_string(azurite.connection_string)
        catalog = AzureTableCatalog(service.get_table_client("nosessions"), service.get_table_client("nopoints"))
        with pytest.raises(ConfigError, match="The table 'nosessions' does not exist"):
            catalog.save_session(session("s1"))
        with pytest.raises(ConfigError, match="The table 'nopoints' does not exist"):
            catalog.list_points(VM)


def test_inverted_time_sorts_newest_first_and_inverts() -> None:
    times = [at(h) for h in (0, 1, 24 * 365 * 30)] + [at(0) + dt.timedelta(microseconds=1)]
    keys = [inverted_time(t) for t in times]
    assert all(len(key) == 19 for key in keys)
    assert sorted(keys) == [inverted_time(t) for t in sorted(times, reverse=True)]
    assert [time_of_row(f"{key}_x") for key in keys] == times


def test_resource_partition_ignores_case_and_is_a_valid_key() -> None:
    assert resource_partition(VM) == resource_partition(VM.upper())
    assert len(resource_partition(VM)) == 32
    assert not set(resource_partition(VM)) & set("/\\#?")
