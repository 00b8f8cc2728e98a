"""Catalog probes: what a SQL pre-flight learns from inside a database (``ports.SqlCatalogProbe``).

* :class:`DbApiCatalogProbe` runs T-SQL through any DB-API 2.0 connection (pyodbc with ODBC Driver
  18, or pymssql; the composition root supplies ``connect``): cross-database and cross-server
  references from ``sys.sql_expression_dependencies`` and synonyms, Windows-authenticated users
  from ``sys.database_principals``, and the allocated size from ``sys.dm_db_partition_stats``.
* :class:`SimulatorCatalogProbe` asks the local simulator, which does not speak TDS, the same
  questions at ``/_bulwark/sql/catalog`` (local mode and tests).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from shared.core.errors import SourceError

from .model import DatabaseCatalog, ExternalReference, SqlDatabaseInfo, UnsupportedPrincipal

__all__ = ["DbApiCatalogProbe", "SimulatorCatalogProbe"]

EXTERNAL_REFERENCES_SQL = """
SELECT QUOTENAME(OBJECT_SCHEMA_NAME(d.referencing_id)) + '.' + QUOTENAME(OBJECT_NAME(d.referencing_id)),
       o.type_desc, d.referenced_server_name, d.referenced_database_name, d.referenced_schema_name,
       d.referenced_entity_name
FROM sys.sql_expression_dependencies AS d
JOIN sys.objects AS o ON o.object_id = d.referencing_id
WHERE d.referenced_database_name IS NOT NULL OR d.referenced_server_name IS NOT NULL
UNION ALL
SELECT QUOTENAME(SCHEMA_NAME(s.schema_id)) + '.' + QUOTENAME(s.name), 'SYNONYM',
       PARSENAME(s.base_object_name, 4), PARSENAME(s.base_object_name, 3), PARSENAME(s.base_object_name, 2),
       PARSENAME(s.base_object_name, 1)
FROM sys.synonyms AS s
WHERE PARSENAME(s.base_object_name, 3) IS NOT NULL AND PARSENAME(s.base_object_name, 3) <> DB_NAME()
"""

UNSUPPORTED_PRINCIPALS_SQL = """
SELECT name, type_desc, authentication_type_desc
FROM sys.database_principals
WHERE type IN ('U', 'G') OR authentication_type_desc = 'WINDOWS'
"""

SIZE_SQL = "SELECT CAST(SUM(reserved_page_count) AS bigint) * 8192 FROM sys.dm_db_partition_stats"


class _Cursor(Protocol):
    def execute(self, operation: str, /) -> object: ...

    def fetchall(self) -> Sequence[Sequence[Any]]: ...

    def close(self) -> object: ...


class _Connection(Protocol):
    def cursor(self) -> _Cursor: ...

    def close(self) -> object: ...


class DbApiCatalogProbe:
    """T-SQL over a DB-API connection that ``connect(database)`` opens (and the probe closes)."""

    def __init__(self, connect: Callable[[SqlDatabaseInfo], _Connection]) -> None:
        self._connect = connect

    def probe(self, database: SqlDatabaseInfo) -> DatabaseCatalog:
        try:
            connection = self._connect(database)
        except Exception as exc:  # drivers raise their own types: report the failure, typed
            raise SourceError(
                f"Cannot connect to database '{database.name}' on server '{database.server_name}' for the "
                f"export pre-flight ({type(exc).__name__}).",
                hint="allow the function app through the server's firewall and give its identity a database user",
            ) from None
        try:
            cursor = connection.cursor()
            try:
                references = tuple(
                    ExternalReference(str(r[0]), str(r[1]), _opt(r[2]), _opt(r[3]), _opt(r[4]), str(r[5]))
                    for r in _rows(cursor, EXTERNAL_REFERENCES_SQL)
                )
                principals = tuple(
                    UnsupportedPrincipal(str(r[0]), str(r[1]), str(r[2]))
                    for r in _rows(cursor, UNSUPPORTED_PRINCIPALS_SQL)
                )
                size_rows = _rows(cursor, SIZE_SQL)
                size = int(size_rows[0][0]) if size_rows and size_rows[0][0] is not None else None
            finally:
                cursor.close()
        finally:
            connection.close()
        return DatabaseCatalog(references, principals, size)


class SimulatorCatalogProbe:
    """The local simulator's answer to the same questions (its admin endpoint, loopback only)."""

    def __init__(self, admin_endpoint: str, ca_bundle: str | None, *, timeout: float = 30.0) -> None:
        self._endpoint = admin_endpoint.rstrip("/")
        self._context = ssl.create_default_context(cafile=ca_bundle)
        self._timeout = timeout

    def probe(self, database: SqlDatabaseInfo) -> DatabaseCatalog:
        url = f"{self._endpoint}/sql/catalog?db={quote(database.id, safe='')}"
        try:
            with urllib.request.urlopen(url, context=self._context, timeout=self._timeout) as response:
                doc = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SourceError(
                f"The local simulator did not answer the pre-flight for '{database.name}' ({exc}).",
                hint="is the local stack running? (`make stack-up`)",
            ) from exc
        return DatabaseCatalog(
            external_references=tuple(
                ExternalReference(
                    referencing_object=str(r.get("referencingObject", "")),
                    referencing_type=str(r.get("referencingType", "VIEW")),
                    referenced_server=r.get("referencedServer"),
                    referenced_database=r.get("referencedDatabase"),
                    referenced_schema=r.get("referencedSchema"),
                    referenced_entity=str(r.get("referencedEntity", "")),
                )
                for r in doc.get("externalReferences") or []
            ),
            unsupported_principals=tuple(
                UnsupportedPrincipal(
                    str(p.get("name", "")), str(p.get("type", "")), str(p.get("authenticationType", ""))
                )
                for p in doc.get("unsupportedPrincipals") or []
            ),
            size_bytes=int(doc["sizeBytes"]) if doc.get("sizeBytes") is not None else None,
        )


def _rows(cursor: _Cursor, sql: str) -> Sequence[Sequence[Any]]:
    cursor.execute(sql)
    return cursor.fetchall()


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
