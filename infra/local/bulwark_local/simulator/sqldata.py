"""The contents of simulated SQL databases: tables as native-bcp blobs, generated or imported.

A database's private record lists its tables (schema, columns, row count, data digest); the bytes
live in a content-addressed folder (``<state>/sql/tables/<sha256>.bcp``), so a copy shares them and
state.json stays small. Unchanged tables keep their digest, hence byte-identical BCP members in
every export.

Generated tables come from templates (``KINDS``) and a seed, deterministically: the same database
and table spec always give the same bytes. ``change_rows`` rewrites a few rows of one table
(a deterministic function of the table's current bytes and a change counter).
"""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bacpac import BacpacError, Column, Row, TableSchema, Value, decode_rows, encode_rows

JsonDict = dict[str, Any]

_WORDS: tuple[str, ...] = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
)
_WORDS += ("lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor")
_WORDS += ("whiskey", "xray", "yankee", "zulu", "order", "ship", "invoice", "pallet", "crate")
_CITIES = ("Amsterdam", "Berlin", "Dublin", "Lisbon", "Madrid", "Oslo", "Paris", "Prague", "Vienna", "Warsaw")
_STATUSES = ("New", "Paid", "Packed", "Shipped", "Delivered", "Returned")
_CATEGORIES = ("Bikes", "Components", "Clothing", "Accessories", "Tools")


class SqlDataError(Exception):
    """A table operation the simulator cannot do (unknown table, undecodable data...)."""


@dataclass(frozen=True)
class Template:
    columns: tuple[Column, ...]
    primary_key: str
    row: Callable[[random.Random, int], Row]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


KINDS: dict[str, Template] = {
    "customers": Template(
        (
            Column("CustomerId", "int", nullable=False),
            Column("Name", "nvarchar", 100, nullable=False),
            Column("Email", "nvarchar", 200),
            Column("City", "nvarchar", 60),
            Column("CreditLimitCents", "bigint", nullable=False),
        ),
        "CustomerId",
        lambda rng, i: (
            i,
            f"{_text(rng, 2).title()} {i}",
            f"customer{i}@example.org",
            rng.choice(_CITIES),
            rng.randrange(10_000, 10_000_000),
        ),
    ),
    "orders": Template(
        (
            Column("OrderId", "int", nullable=False),
            Column("CustomerId", "int", nullable=False),
            Column("AmountCents", "bigint", nullable=False),
            Column("Status", "nvarchar", 20, nullable=False),
            Column("Notes", "nvarchar", is_max=True),
        ),
        "OrderId",
        lambda rng, i: (
            i,
            rng.randrange(1, 2000),
            rng.randrange(100, 5_000_000),
            rng.choice(_STATUSES),
            _text(rng, rng.randrange(12, 30)),
        ),
    ),
    "products": Template(
        (
            Column("ProductId", "int", nullable=False),
            Column("Name", "nvarchar", 100, nullable=False),
            Column("Category", "nvarchar", 50),
            Column("PriceCents", "bigint", nullable=False),
        ),
        "ProductId",
        lambda rng, i: (i, f"{_text(rng, 2).title()} {i}", rng.choice(_CATEGORIES), rng.randrange(99, 500_000)),
    ),
    "warehouses": Template(
        (
            Column("WarehouseId", "int", nullable=False),
            Column("Name", "nvarchar", 100, nullable=False),
            Column("Region", "nvarchar", 50),
        ),
        "WarehouseId",
        lambda rng, i: (i, f"Warehouse {rng.choice(_CITIES)} {i}", rng.choice(("EU-West", "EU-North", "EU-South"))),
    ),
    "movements": Template(
        (
            Column("MovementId", "int", nullable=False),
            Column("ProductId", "int", nullable=False),
            Column("WarehouseId", "int", nullable=False),
            Column("Quantity", "int", nullable=False),
            Column("Reference", "nvarchar", 64),
        ),
        "MovementId",
        lambda rng, i: (
            i,
            rng.randrange(1, 300),
            rng.randrange(1, 12),
            rng.randrange(-50, 500),
            f"REF-{rng.randrange(16**8):08X}",
        ),
    ),
}

# The demo databases (seed.py) and a small set for tests.
PRESETS: dict[str, list[JsonDict]] = {
    "sales": [
        {"name": "dbo.Customers", "kind": "customers", "rows": 2000},
        {"name": "dbo.Orders", "kind": "orders", "rows": 24000},  # ~7 MB of bcp (1 MB zipped)
        {"name": "dbo.Products", "kind": "products", "rows": 300},
    ],
    "inventory": [
        {"name": "dbo.Warehouses", "kind": "warehouses", "rows": 12},
        {"name": "dbo.StockMovements", "kind": "movements", "rows": 6000},
    ],
    "tiny": [
        {"name": "dbo.Customers", "kind": "customers", "rows": 50},
        {"name": "dbo.Orders", "kind": "orders", "rows": 200},
        {"name": "dbo.Products", "kind": "products", "rows": 20},
    ],
}


class TableStore:
    """Content-addressed table data: ``put(bytes) -> sha256``, ``get(sha256) -> bytes``."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._folder / f"{digest}.bcp"
        if not path.exists():
            temporary = path.with_suffix(f".{uuid.uuid4().hex}.tmp")  # concurrent puts of one digest
            temporary.write_bytes(data)
            os.replace(temporary, path)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return (self._folder / f"{digest}.bcp").read_bytes()
        except FileNotFoundError:
            raise SqlDataError(f"table data {digest} is missing from the simulator state") from None


def schema_of(record: JsonDict) -> TableSchema:
    return TableSchema(
        record["schema"],
        record["name"],
        tuple(Column.from_json(c) for c in record["columns"]),
        record.get("primaryKey"),
    )


def table_record(schema: TableSchema, data: bytes, rows: int | None, store: TableStore) -> JsonDict:
    return {
        "schema": schema.schema,
        "name": schema.name,
        "columns": [c.to_json() for c in schema.columns],
        "primaryKey": schema.primary_key,
        "rows": rows,
        "bytes": len(data),
        "data": store.put(data),
    }


def split_name(name: str) -> tuple[str, str]:
    """``dbo.Orders``, ``[dbo].[Orders]`` or ``Orders`` -> ``("dbo", "Orders")``."""
    cleaned = name.replace("[", "").replace("]", "")
    schema, _, table = cleaned.rpartition(".")
    return (schema or "dbo"), table


def generate_table(spec: JsonDict, seed: str, store: TableStore) -> JsonDict:
    """A table from ``{"name": "dbo.Orders", "kind": "orders", "rows": N}`` (deterministic per seed)."""
    kind = str(spec.get("kind", ""))
    if kind not in KINDS:
        raise SqlDataError(f"unknown table kind {kind!r}; use one of {', '.join(sorted(KINDS))}")
    rows = int(spec.get("rows", 100))
    if rows < 0:
        raise SqlDataError("rows must be >= 0")
    template = KINDS[kind]
    schema_name, table_name = split_name(str(spec.get("name") or kind.title()))
    schema = TableSchema(schema_name, table_name, template.columns, template.primary_key)
    rng = random.Random(f"{seed}/{schema.key}/{kind}")
    data = encode_rows(template.columns, (template.row(rng, i) for i in range(1, rows + 1)))
    return table_record(schema, data, rows, store)


def change_rows(record: JsonDict, count: int, generation: int, store: TableStore) -> tuple[JsonDict, int]:
    """Rewrite ``count`` rows of a table (text columns get a marker, numbers move); returns the new record."""
    schema = schema_of(record)
    data = store.get(record["data"])
    try:
        rows = decode_rows(schema.columns, data)
    except (BacpacError, UnicodeDecodeError) as error:
        raise SqlDataError(
            f"table {schema.key} cannot be changed by the simulator: its data uses a type the simulator's "
            f"bcp codec does not read ({error})"
        ) from error
    if not rows:
        raise SqlDataError(f"table {schema.key} has no rows to change")
    editable = [
        index
        for index, column in enumerate(schema.columns)
        if column.name != schema.primary_key and (column.type in ("nvarchar", "varchar") or column.type == "bigint")
    ]
    if not editable:
        raise SqlDataError(f"table {schema.key} has no text or bigint column the simulator can change")
    rng = random.Random(f"change/{record['data']}/{generation}")
    chosen = sorted(rng.sample(range(len(rows)), min(count, len(rows))))
    for index in chosen:
        values = list(rows[index])
        column_index = rng.choice(editable)
        column = schema.columns[column_index]
        values[column_index] = _changed_value(column, values[column_index], generation, index)
        rows[index] = tuple(values)
    new_data = encode_rows(schema.columns, rows)
    updated = dict(record)
    updated["data"] = store.put(new_data)
    updated["bytes"] = len(new_data)
    return updated, len(chosen)


def _changed_value(column: Column, value: Value, generation: int, index: int) -> Value:
    if column.type == "bigint":
        return (int(value) if isinstance(value, int) else 0) + generation * 7 + 1
    marker = f"~c{generation}r{index}"
    text = value if isinstance(value, str) else ""
    limit = column.length if column.length and not column.is_max else None
    if limit is not None:
        return (marker + text)[:limit]
    return marker + text
