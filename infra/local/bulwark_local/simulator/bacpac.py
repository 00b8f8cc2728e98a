"""BACPAC packages as the simulated SQL import/export service writes and reads them.

A BACPAC is a zip (an OPC package) holding, in this order:

- ``model.xml``: the schema (``DataSchemaModel``: one ``SqlTable`` element per table with its
  ``SqlSimpleColumn`` elements and type specifiers);
- ``DacMetadata.xml``: the package name;
- ``[Content_Types].xml``: OPC content types (xml, BCP, rels);
- ``Data/<schema>.<table>/TableData-000-00000.BCP``: the rows of each non-empty table in SQL Server
  *native* bcp format (below);
- ``_rels/.rels``: one relationship per table data part;
- ``Origin.xml``: who exported it and when, plus ``<Checksum Uri="/model.xml">`` = the upper-case
  hex SHA-256 of ``model.xml`` (DacFx refuses a package whose model does not match it).

Native bcp rows, column after column, no row separator: ``NOT NULL`` fixed-size types are their
little-endian bytes; nullable fixed-size types carry a 1-byte length prefix (``0xFF`` = NULL);
``nvarchar(n)``/``varchar(n)``/``varbinary(n)`` a 2-byte length prefix (``0xFFFF`` = NULL);
``(max)`` types an 8-byte prefix (all ones = NULL). ``nvarchar`` is UTF-16-LE. This is the layout
of the real AdventureWorksLT export in ../shared/fixtures (checked against its BuildVersion and
ProductCategory parts).

Members are written deterministically from their content: a table whose rows did not change gives
a byte-identical BCP member, so a backup can deduplicate it across exports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import struct
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

DAC_NS = "http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02"
_NS = {"d": DAC_NS}
COLLATION = "SQL_Latin1_General_CP1_CI_AS"

# Fixed-size types (bytes); integers decode to int, the others stay raw bytes.
FIXED_SIZES = {
    "tinyint": 1,
    "smallint": 2,
    "int": 4,
    "bigint": 8,
    "bit": 1,
    "real": 4,
    "float": 8,
    "smallmoney": 4,
    "money": 8,
    "smalldatetime": 4,
    "datetime": 8,
    "date": 3,
    "uniqueidentifier": 16,
}
_INTEGERS = {"tinyint": "<B", "smallint": "<h", "int": "<i", "bigint": "<q", "bit": "<B"}
_VARIABLE = {"nvarchar", "nchar", "varchar", "char", "varbinary", "binary", "xml"}
# DacFx writes these with their 1-byte length prefix even when the column is NOT NULL.
_ALWAYS_PREFIXED = {"uniqueidentifier", "bit"}

Value = int | str | bytes | None
Row = tuple[Value, ...]


class BacpacError(Exception):
    """A package that cannot be read (not a zip, no model, checksum mismatch, unknown type)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    length: int | None = None
    is_max: bool = False
    nullable: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "length": self.length,
            "isMax": self.is_max,
            "nullable": self.nullable,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Column:
        length = data.get("length")
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            length=int(str(length)) if length is not None else None,
            is_max=bool(data.get("isMax", False)),
            nullable=bool(data.get("nullable", True)),
        )

    @property
    def decodable(self) -> bool:
        return self.type in FIXED_SIZES or self.type in _VARIABLE


@dataclass(frozen=True)
class TableSchema:
    schema: str
    name: str
    columns: tuple[Column, ...] = field(default_factory=tuple)
    primary_key: str | None = None

    @property
    def qualified(self) -> str:
        return f"[{self.schema}].[{self.name}]"

    @property
    def key(self) -> str:
        """``schema.name``, how tables are named in the admin API and the CLI."""
        return f"{self.schema}.{self.name}"

    @property
    def member(self) -> str:
        return f"Data/{self.schema}.{self.name}/TableData-000-00000.BCP"

    @property
    def decodable(self) -> bool:
        return all(column.decodable for column in self.columns)


@dataclass(frozen=True)
class Package:
    """What an import needs from a BACPAC: the model as it was, and each table's raw BCP bytes."""

    model: bytes
    tables: list[tuple[TableSchema, bytes]]


# -- native bcp rows -----------------------------------------------------------------------------


def encode_rows(columns: Sequence[Column], rows: Iterable[Row]) -> bytes:
    out = bytearray()
    for row in rows:
        if len(row) != len(columns):
            raise BacpacError(f"a row has {len(row)} values for {len(columns)} columns")
        for column, value in zip(columns, row, strict=True):
            _encode_value(out, column, value)
    return bytes(out)


def _encode_value(out: bytearray, column: Column, value: Value) -> None:
    if column.type in FIXED_SIZES:
        size = FIXED_SIZES[column.type]
        if value is None:
            if not column.nullable:
                raise BacpacError(f"column {column.name} is NOT NULL")
            out += b"\xff"
            return
        raw = struct.pack(_INTEGERS[column.type], value) if isinstance(value, int) else _raw(column, value)
        if len(raw) != size:
            raise BacpacError(f"column {column.name} ({column.type}) takes {size} bytes, got {len(raw)}")
        if column.nullable or column.type in _ALWAYS_PREFIXED:
            out.append(size)
        out += raw
        return
    if column.type not in _VARIABLE:
        raise BacpacError(f"column {column.name}: type {column.type} is not supported by the simulator's bcp codec")
    wide = column.is_max or column.type == "xml"
    if value is None:
        out += b"\xff" * (8 if wide else 2)
        return
    raw = _text_bytes(column, value)
    out += struct.pack("<Q" if wide else "<H", len(raw))
    out += raw


def _raw(column: Column, value: Value) -> bytes:
    if isinstance(value, bytes):
        return value
    raise BacpacError(f"column {column.name} ({column.type}) needs raw bytes, got {type(value).__name__}")


def _text_bytes(column: Column, value: Value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-16-le" if column.type in ("nvarchar", "nchar", "xml") else "latin-1")
    if isinstance(value, bytes):
        return value
    raise BacpacError(f"column {column.name} ({column.type}) needs text or bytes, got {type(value).__name__}")


def decode_rows(columns: Sequence[Column], data: bytes) -> list[Row]:
    rows: list[Row] = []
    position = 0
    try:
        while position < len(data):
            row: list[Value] = []
            for column in columns:
                value, position = _decode_value(column, data, position)
                row.append(value)
            rows.append(tuple(row))
    except (struct.error, IndexError) as error:
        raise BacpacError(f"truncated bcp data at byte {position}") from error
    return rows


def _decode_value(column: Column, data: bytes, position: int) -> tuple[Value, int]:
    if column.type in FIXED_SIZES:
        size = FIXED_SIZES[column.type]
        if column.nullable or column.type in _ALWAYS_PREFIXED:
            prefix = data[position]
            position += 1
            if prefix == 0xFF:
                return None, position
            if prefix != size:
                raise BacpacError(f"column {column.name}: length prefix {prefix}, expected {size}")
        raw = data[position : position + size]
        if len(raw) != size:
            raise BacpacError(f"truncated bcp data in column {column.name}")
        position += size
        if column.type in _INTEGERS:
            return int(struct.unpack(_INTEGERS[column.type], raw)[0]), position
        return raw, position
    if column.type not in _VARIABLE:
        raise BacpacError(f"column {column.name}: type {column.type} is not supported by the simulator's bcp codec")
    wide = column.is_max or column.type == "xml"
    width = 8 if wide else 2
    (length,) = struct.unpack_from("<Q" if wide else "<H", data, position)
    position += width
    if length == (1 << (8 * width)) - 1:
        return None, position
    raw = data[position : position + length]
    if len(raw) != length:
        raise BacpacError(f"truncated bcp data in column {column.name}")
    position += length
    if column.type in ("nvarchar", "nchar", "xml"):
        return raw.decode("utf-16-le"), position
    if column.type in ("varchar", "char"):
        return raw.decode("latin-1"), position
    return raw, position


# -- model.xml -----------------------------------------------------------------------------------


def model_xml(tables: Sequence[TableSchema], *, collation: str = COLLATION) -> bytes:
    """A ``DataSchemaModel`` with the database options and one ``SqlTable`` per table (sorted)."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<DataSchemaModel FileFormatVersion="1.2" SchemaVersion="2.9" '
        'DspName="Microsoft.Data.Tools.Schema.Sql.SqlAzureV12DatabaseSchemaProvider" CollationLcid="1033" '
        f'CollationCaseSensitive="False" xmlns="{DAC_NS}">',
        "\t<Model>",
        '\t\t<Element Type="SqlDatabaseOptions">',
        f"\t\t\t<Property Name={quoteattr('Collation')} Value={quoteattr(collation)} />",
        '\t\t\t<Property Name="CompatibilityMode" Value="160" />',
        '\t\t\t<Property Name="IsReadCommittedSnapshot" Value="True" />',
        "\t\t</Element>",
    ]
    for schema in sorted({table.schema for table in tables} - {"dbo"}):
        lines.append(f'\t\t<Element Type="SqlSchema" Name={quoteattr(f"[{schema}]")}>')
        lines.append(
            '\t\t\t<Relationship Name="Authorizer"><Entry>'
            '<References ExternalSource="BuiltIns" Name="[dbo]" /></Entry></Relationship>'
        )
        lines.append("\t\t</Element>")
    for table in sorted(tables, key=lambda t: (t.schema.lower(), t.name.lower())):
        lines.extend(_table_xml(table))
    lines += ["\t</Model>", "</DataSchemaModel>", ""]
    return "\r\n".join(lines).encode("utf-8")


def _table_xml(table: TableSchema) -> list[str]:
    lines = [
        f'\t\t<Element Type="SqlTable" Name={quoteattr(table.qualified)}>',
        '\t\t\t<Property Name="IsAnsiNullsOn" Value="True" />',
        '\t\t\t<Relationship Name="Columns">',
    ]
    for column in table.columns:
        name = quoteattr(f"{table.qualified}.[{column.name}]")
        lines.append("\t\t\t\t<Entry>")
        lines.append(f'\t\t\t\t\t<Element Type="SqlSimpleColumn" Name={name}>')
        if not column.nullable:
            lines.append('\t\t\t\t\t\t<Property Name="IsNullable" Value="False" />')
        lines.append('\t\t\t\t\t\t<Relationship Name="TypeSpecifier"><Entry><Element Type="SqlTypeSpecifier">')
        if column.is_max:
            lines.append('\t\t\t\t\t\t\t<Property Name="IsMax" Value="True" />')
        elif column.length is not None:
            lines.append(f'\t\t\t\t\t\t\t<Property Name="Length" Value="{column.length}" />')
        lines.append(
            '\t\t\t\t\t\t\t<Relationship Name="Type"><Entry>'
            f'<References ExternalSource="BuiltIns" Name={quoteattr(f"[{column.type}]")} /></Entry></Relationship>'
        )
        lines.append("\t\t\t\t\t\t</Element></Entry></Relationship>")
        lines.append("\t\t\t\t\t</Element>")
        lines.append("\t\t\t\t</Entry>")
    lines.append("\t\t\t</Relationship>")
    schema_ref = f'<References ExternalSource="BuiltIns" Name="[{escape(table.schema)}]" />'
    if table.schema != "dbo":
        schema_ref = f'<References Name="[{escape(table.schema)}]" />'
    lines.append(f'\t\t\t<Relationship Name="Schema"><Entry>{schema_ref}</Entry></Relationship>')
    lines.append("\t\t</Element>")
    if table.primary_key:
        pk = quoteattr(f"{table.qualified}.[{table.primary_key}]")
        lines += [
            '\t\t<Element Type="SqlPrimaryKeyConstraint">',
            '\t\t\t<Relationship Name="ColumnSpecifications"><Entry><Element Type="SqlIndexedColumnSpecification">'
            f'<Relationship Name="Column"><Entry><References Name={pk} /></Entry></Relationship>'
            "</Element></Entry></Relationship>",
            f'\t\t\t<Relationship Name="DefiningTable"><Entry><References Name={quoteattr(table.qualified)} />'
            "</Entry></Relationship>",
            "\t\t</Element>",
        ]
    return lines


def parse_model(model: bytes) -> list[TableSchema]:
    """The tables (with their simple columns) of a ``model.xml``; user-defined types are resolved."""
    try:
        root = ElementTree.fromstring(model)
    except ElementTree.ParseError as error:
        raise BacpacError(f"model.xml is not XML: {error}") from error
    if root.tag != f"{{{DAC_NS}}}DataSchemaModel":
        raise BacpacError("model.xml is not a DataSchemaModel")
    udts = _user_types(root)
    tables: list[TableSchema] = []
    keys = _primary_keys(root)
    for element in root.iterfind("d:Model/d:Element[@Type='SqlTable']", _NS):
        qualified = element.get("Name", "")
        schema, name = _split_name(qualified)
        columns = []
        for column in element.iterfind("d:Relationship[@Name='Columns']/d:Entry/d:Element", _NS):
            if column.get("Type") != "SqlSimpleColumn":
                continue  # computed columns are not in the data
            columns.append(_column(column, udts))
        tables.append(TableSchema(schema, name, tuple(columns), keys.get(qualified)))
    return tables


def _column(element: ElementTree.Element, udts: dict[str, Column]) -> Column:
    name = _split_name(element.get("Name", ""))[-1]
    nullable = _property(element, "IsNullable") != "False"
    spec = element.find("d:Relationship[@Name='TypeSpecifier']/d:Entry/d:Element", _NS)
    if spec is None:
        return Column(name, "unknown", nullable=nullable)
    reference = spec.find("d:Relationship[@Name='Type']/d:Entry/d:References", _NS)
    type_name = reference.get("Name", "") if reference is not None else ""
    if type_name in ("[sys].[sysname]", "[sysname]"):
        return Column(name, "nvarchar", 128, False, nullable)
    if reference is not None and reference.get("ExternalSource") != "BuiltIns" and type_name in udts:
        base = udts[type_name]
        return Column(name, base.type, base.length, base.is_max, nullable)
    length = _property(spec, "Length")
    return Column(
        name,
        type_name.strip("[]").lower() if reference is not None and reference.get("ExternalSource") else "udt",
        int(length) if length else None,
        _property(spec, "IsMax") == "True",
        nullable,
    )


def _user_types(root: ElementTree.Element) -> dict[str, Column]:
    found: dict[str, Column] = {}
    for element in root.iterfind("d:Model/d:Element[@Type='SqlUserDefinedDataType']", _NS):
        reference = element.find("d:Relationship[@Name='Type']/d:Entry/d:References", _NS)
        if reference is None:
            continue
        length = _property(element, "Length")
        found[element.get("Name", "")] = Column(
            "",
            reference.get("Name", "").strip("[]").lower(),
            int(length) if length else None,
            _property(element, "IsMax") == "True",
        )
    return found


def _primary_keys(root: ElementTree.Element) -> dict[str, str]:
    keys: dict[str, str] = {}
    for element in root.iterfind("d:Model/d:Element[@Type='SqlPrimaryKeyConstraint']", _NS):
        table = element.find("d:Relationship[@Name='DefiningTable']/d:Entry/d:References", _NS)
        column = element.find(".//d:Relationship[@Name='Column']/d:Entry/d:References", _NS)
        if table is not None and column is not None:
            keys[table.get("Name", "")] = _split_name(column.get("Name", ""))[-1]
    return keys


def _property(element: ElementTree.Element, name: str) -> str | None:
    found = element.find(f"d:Property[@Name='{name}']", _NS)
    return found.get("Value") if found is not None else None


def _split_name(qualified: str) -> tuple[str, ...]:
    return tuple(part.strip("[]") for part in qualified.split("].["))


# -- the package ---------------------------------------------------------------------------------


def build_bacpac(
    database_name: str,
    model: bytes,
    tables: Sequence[tuple[TableSchema, bytes, int]],
    *,
    moment: dt.datetime,
    server_version: str = "Microsoft SQL Azure (RTM) - 12.0.2000.8",
    source_size_kb: int = 0,
) -> bytes:
    """The package for ``tables`` (schema, bcp bytes, row count); ``model`` goes in verbatim."""
    stamp = moment.timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:

        def add(name: str, data: bytes, compress: bool = True) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            archive.writestr(info, data)

        add("model.xml", model)
        add("DacMetadata.xml", _dac_metadata(database_name))
        add("[Content_Types].xml", CONTENT_TYPES)
        data_parts = [(table, data) for table, data, _ in tables if data]
        for table, data in data_parts:
            add(table.member, data)
        add("_rels/.rels", _relationships([table for table, _ in data_parts]), compress=False)
        rows = sum(count for _, _, count in tables)
        add(
            "Origin.xml",
            origin_xml(
                model,
                moment=moment,
                server_version=server_version,
                tables=len(tables),
                rows=rows,
                size_kb=source_size_kb,
            ),
            compress=False,
        )
    return buffer.getvalue()


def read_bacpac(data: bytes) -> Package:
    """Tables and model of a package; refuses a package whose Origin.xml checksum does not match."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise BacpacError("the file is not a BACPAC (not a zip archive)") from error
    with archive:
        names = set(archive.namelist())
        for required in ("model.xml", "Origin.xml"):
            if required not in names:
                raise BacpacError(f"the BACPAC has no {required}")
        model = archive.read("model.xml")
        expected = origin_checksum(archive.read("Origin.xml"))
        actual = hashlib.sha256(model).hexdigest().upper()
        if expected is not None and expected.upper() != actual:
            raise BacpacError(f"model.xml checksum {actual} does not match Origin.xml ({expected})")
        tables = []
        for schema in parse_model(model):
            parts = sorted(n for n in names if n.startswith(f"Data/{schema.schema}.{schema.name}/"))
            tables.append((schema, b"".join(archive.read(part) for part in parts)))
    return Package(model, tables)


def origin_checksum(origin: bytes) -> str | None:
    root = ElementTree.fromstring(origin.decode("utf-8-sig"))
    found = root.find("d:Checksums/d:Checksum[@Uri='/model.xml']", _NS)
    return found.text.strip() if found is not None and found.text else None


def origin_xml(
    model: bytes, *, moment: dt.datetime, server_version: str, tables: int, rows: int, size_kb: int
) -> bytes:
    checksum = hashlib.sha256(model).hexdigest().upper()
    text = f"""<?xml version="1.0" encoding="utf-8"?>
<DacOrigin xmlns="{DAC_NS}">
  <PackageProperties>
    <Version>3.1.0.0</Version>
    <ContainsExportedData>true</ContainsExportedData>
    <StreamVersions>
      <Version StreamName="Data">2.0.0.0</Version>
      <Version StreamName="DeploymentContributors">1.0.0.0</Version>
    </StreamVersions>
  </PackageProperties>
  <Operation>
    <Identity>{uuid.uuid4()}</Identity>
    <Start>{moment.isoformat()}</Start>
    <End>{moment.isoformat()}</End>
    <ProductName>Bulwark Azure simulator (SQL import/export)</ProductName>
    <ProductVersion>1.0</ProductVersion>
    <ProductSchema>{DAC_NS}</ProductSchema>
  </Operation>
  <Server>
    <ServerVersion>{escape(server_version)}</ServerVersion>
    <ObjectCounts>
      <Table>{tables}</Table>
    </ObjectCounts>
  </Server>
  <ExportStatistics>
    <SourceDatabaseSize>{size_kb}</SourceDatabaseSize>
    <TableRowCountTotalTag>{rows}</TableRowCountTotalTag>
  </ExportStatistics>
  <Checksums>
    <Checksum Uri="/model.xml">{checksum}</Checksum>
  </Checksums>
  <ModelSchemaVersion>2.9</ModelSchemaVersion>
</DacOrigin>"""
    return b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8")


CONTENT_TYPES = (
    b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Default Extension="xml" ContentType="text/xml" /><Default Extension="BCP" '
    b'ContentType="application/octet-stream" /><Default Extension="rels" '
    b'ContentType="application/vnd.openxmlformats-package.relationships+xml" /></Types>'
)


def _dac_metadata(name: str) -> bytes:
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\r\n'
        f'<DacType xmlns="{DAC_NS}">\r\n  <Name>{escape(name)}</Name>\r\n  <Version>0.0.0.0</Version>\r\n</DacType>'
    )
    return b"\xef\xbb\xbf" + text.encode("utf-8")


def _relationships(tables: Sequence[TableSchema]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><Relationships '
        'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    ]
    for table in tables:
        target = quoteattr("/" + table.member)
        for kind in (f"table={table.name}", f"schema={table.schema}"):
            rel_id = "R" + hashlib.sha256(f"{kind}|{table.member}".encode()).hexdigest()[:16]
            parts.append(f'<Relationship Type={quoteattr(kind)} Target={target} Id="{rel_id}" />')
    parts.append("</Relationships>")
    return b"\xef\xbb\xbf" + "".join(parts).encode("utf-8")
