"""Per-table row counts of a BACPAC, walked from its native bcp data with model.xml's layouts."""

from __future__ import annotations

import struct
import zipfile

import pytest

from shared.sources.bacpac import parse_origin
from shared.sources.bacpac_rows import ColumnLayout, RowCounter, count_rows, parse_layouts
from tests.support.shared_fixtures import ADVENTURE_WORKS_BACPAC

EXPECTED = {
    "dbo.BuildVersion": 1,
    "dbo.ErrorLog": 0,
    "SalesLT.Address": 450,
    "SalesLT.Customer": 847,
    "SalesLT.CustomerAddress": 417,
    "SalesLT.Product": 295,
    "SalesLT.ProductCategory": 41,
    "SalesLT.ProductDescription": 762,
    "SalesLT.ProductModel": 128,
    "SalesLT.ProductModelProductDescription": 762,
    "SalesLT.SalesOrderDetail": 542,
    "SalesLT.SalesOrderHeader": 32,
}


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 22])
def test_adventureworks_tables_count_to_origins_total(piece: int) -> None:
    if not ADVENTURE_WORKS_BACPAC.exists():
        pytest.skip(f"the AdventureWorksLT fixture is not there ({ADVENTURE_WORKS_BACPAC}): ../shared is absent")
    with zipfile.ZipFile(ADVENTURE_WORKS_BACPAC) as archive:
        layouts = parse_layouts(archive.read("model.xml"))
        total = parse_origin(archive.read("Origin.xml")).total_rows
        counts = {}
        for table, layout in layouts.items():
            data = b"".join(archive.read(n) for n in archive.namelist() if n.startswith(f"Data/{table}/"))
            counts[table] = count_rows(layout, (data[i : i + piece] for i in range(0, len(data), piece)))
    assert counts == EXPECTED
    assert sum(EXPECTED.values()) == total == 4277


def test_data_that_ends_inside_a_row_has_no_count() -> None:
    layouts = [ColumnLayout(0, 4), ColumnLayout(2)]  # int NOT NULL, nvarchar(n) NULL
    row = struct.pack("<i", 7) + struct.pack("<H", 4) + "ab".encode("utf-16-le")
    null_row = struct.pack("<i", 8) + b"\xff\xff"
    assert count_rows(layouts, [row + null_row]) == 2
    assert count_rows(layouts, [row + null_row[:5]]) is None
    counter = RowCounter(layouts)
    counter.feed(row[:5])
    assert counter.count() is None
    counter.feed(row[5:])
    assert counter.count() == 1


def test_a_column_of_an_unknown_type_leaves_the_table_uncounted() -> None:
    model = (
        b'<DataSchemaModel xmlns="http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02"><Model>'
        b'<Element Type="SqlTable" Name="[dbo].[T]"><Relationship Name="Columns"><Entry>'
        b'<Element Type="SqlSimpleColumn" Name="[dbo].[T].[g]"><Relationship Name="TypeSpecifier"><Entry>'
        b'<Element Type="SqlTypeSpecifier"><Relationship Name="Type"><Entry>'
        b'<References ExternalSource="BuiltIns" Name="[geography]" /></Entry></Relationship></Element>'
        b"</Entry></Relationship></Element></Entry></Relationship></Element></Model></DataSchemaModel>"
    )
    assert parse_layouts(model) == {"dbo.T": None}
    assert count_rows(None, [b"\x00"]) is None
