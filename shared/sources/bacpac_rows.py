"""Row counts of a BACPAC's tables, from the package's own contents.

Where the counts live: nowhere per table. A BACPAC's metadata holds the schema (model.xml) and one
number, the whole database's row total (Origin.xml, ``<ExportStatistics><TableRowCountTotalTag>``:
4277 in AdventureWorksLT); a table without rows simply has no ``Data/<schema>.<table>/`` folder.
So each table's count is found by walking its data members (native bcp: no row separators, each
value a length prefix of 0, 1, 2, 4 or 8 bytes and its bytes) with the column layout model.xml
declares. A count is trusted only when the walk ends exactly at the end of the data, and the
counts are all dropped (None) when they do not add up to Origin.xml's total.

Native bcp layouts, as the Azure export writes them (checked against AdventureWorksLT): fixed-size
``NOT NULL`` values have no prefix, nullable ones a 1-byte prefix (0xFF: NULL), ``bit`` and
``uniqueidentifier`` always one; ``decimal``/``numeric`` a 1-byte prefix and 19 bytes (precision,
scale, sign, 16-byte magnitude); ``(n)varchar(n)``/``(n)char``/``(var)binary(n)`` a 2-byte prefix
(0xFFFF: NULL); ``(max)`` types and ``xml`` an 8-byte prefix; ``text``/``ntext``/``image`` 4 bytes;
``date``/``time``/``datetime2``/``datetimeoffset`` a 1-byte prefix when nullable (``date``: 3 bytes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from xml.etree import ElementTree

__all__ = ["ColumnLayout", "RowCounter", "TableRows", "count_rows", "parse_layouts"]

_NS = "{http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02}"
_FIXED = {
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
    "decimal": 19,
    "numeric": 19,
}
_ALWAYS_PREFIXED = {"bit", "uniqueidentifier", "decimal", "numeric", "time", "datetime2", "datetimeoffset"}
_SHORT = {"nvarchar", "varchar", "nchar", "char", "varbinary", "binary"}
_LONG = {"text", "ntext", "image"}


@dataclass(frozen=True)
class ColumnLayout:
    prefix: int
    """Length-prefix bytes: 0 (then ``size`` bytes follow), 1, 2, 4 or 8."""
    size: int = 0


@dataclass(frozen=True)
class TableRows:
    schema: str
    name: str
    data_bytes: int
    data_members: int
    rows: int | None
    """None when the data could not be walked (an unknown column type), or did not add up."""

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "name": self.name,
            "rows": self.rows,
            "data_bytes": self.data_bytes,
            "data_members": self.data_members,
        }


def _layout(type_name: str, *, nullable: bool, is_max: bool) -> ColumnLayout | None:
    if type_name in _FIXED:
        prefixed = nullable or type_name in _ALWAYS_PREFIXED
        return ColumnLayout(1) if prefixed else ColumnLayout(0, _FIXED[type_name])
    if type_name in ("time", "datetime2", "datetimeoffset"):
        return ColumnLayout(1)
    if type_name == "xml" or (is_max and type_name in _SHORT):
        return ColumnLayout(8)
    if type_name in _SHORT:
        return ColumnLayout(2)
    if type_name in _LONG:
        return ColumnLayout(4)
    return None


def _property(element: ElementTree.Element, name: str) -> str | None:
    for prop in element.findall(f"{_NS}Property"):
        if prop.get("Name") == name:
            return prop.get("Value")
    return None


def _type_of(element: ElementTree.Element) -> tuple[str, bool, str | None]:
    """``(type name, is max, the referenced name)`` of an element's TypeSpecifier."""
    spec = element.find(f"{_NS}Relationship[@Name='TypeSpecifier']/{_NS}Entry/{_NS}Element")
    if spec is None:
        return "", False, None
    reference = spec.find(f"{_NS}Relationship[@Name='Type']/{_NS}Entry/{_NS}References")
    name = reference.get("Name", "") if reference is not None else ""
    built_in = reference is not None and reference.get("ExternalSource") == "BuiltIns"
    return (name.strip("[]").lower() if built_in else ""), _property(spec, "IsMax") == "True", name


def parse_layouts(model: bytes) -> dict[str, list[ColumnLayout] | None]:
    """Each table's ("<schema>.<table>", as Data/ names it) column layouts; None when one column's
    type is unknown. Computed columns are not in the data and are left out."""
    root = ElementTree.fromstring(model)
    aliases: dict[str, tuple[str, bool]] = {"[sys].[sysname]": ("nvarchar", False), "[sysname]": ("nvarchar", False)}
    for element in root.iter(f"{_NS}Element"):
        if element.get("Type") == "SqlUserDefinedDataType":
            base, is_max, _ = _type_of(element)
            if not base:  # the base type is named directly under the element
                reference = element.find(f"{_NS}Relationship[@Name='Type']/{_NS}Entry/{_NS}References")
                base = (reference.get("Name", "") if reference is not None else "").strip("[]").lower()
            aliases[element.get("Name", "")] = (base, is_max)
    tables: dict[str, list[ColumnLayout] | None] = {}
    for element in root.iter(f"{_NS}Element"):
        if element.get("Type") != "SqlTable":
            continue
        schema, _, name = element.get("Name", "").partition("].[")
        key = f"{schema.lstrip('[').replace(']]', ']')}.{name.rstrip(']').replace(']]', ']')}"
        layouts: list[ColumnLayout] | None = []
        columns = element.findall(f"{_NS}Relationship[@Name='Columns']/{_NS}Entry/{_NS}Element")
        for column in columns:
            if column.get("Type") != "SqlSimpleColumn":
                continue
            type_name, is_max, referenced = _type_of(column)
            if referenced in aliases:
                type_name, is_max = aliases[referenced]
            layout = _layout(type_name, nullable=_property(column, "IsNullable") != "False", is_max=is_max)
            if layout is None or layouts is None:
                layouts = None
                continue
            layouts.append(layout)
        tables[key] = layouts
    return tables


class RowCounter:
    """Counts the rows of a table's native bcp data fed in pieces of any size."""

    def __init__(self, layouts: list[ColumnLayout]) -> None:
        self._layouts = layouts
        self._column = 0
        self._skip = 0
        self._in_value = False
        self._pending = b""
        self._broken = not layouts
        self.rows = 0

    def feed(self, data: bytes) -> None:
        if self._broken:
            return
        if self._pending:
            data, self._pending = self._pending + data, b""
        position, end = 0, len(data)
        layouts, count = self._layouts, len(self._layouts)
        while True:
            if self._in_value:
                take = min(self._skip, end - position)
                self._skip -= take
                position += take
                if self._skip:
                    return
                self._in_value = False
                self._column += 1
                if self._column == count:
                    self._column = 0
                    self.rows += 1
            if position == end:
                return
            layout = layouts[self._column]
            if layout.prefix == 0:
                self._skip, self._in_value = layout.size, True
                continue
            if end - position < layout.prefix:
                self._pending = data[position:]
                return
            length = int.from_bytes(data[position : position + layout.prefix], "little")
            position += layout.prefix
            if length == (1 << (8 * layout.prefix)) - 1:
                length = 0  # NULL
            self._skip, self._in_value = length, True

    def count(self) -> int | None:
        """The rows, or None when the data did not end at a row's end."""
        if self._broken or self._pending or self._in_value or self._column:
            return None
        return self.rows


def count_rows(layouts: list[ColumnLayout] | None, pieces: Iterable[bytes]) -> int | None:
    if layouts is None:
        return None
    counter = RowCounter(layouts)
    for piece in pieces:
        counter.feed(piece)
    return counter.count()
