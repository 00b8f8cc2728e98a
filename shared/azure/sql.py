"""The SQL adapter: servers, databases, staging copies, BACPAC export with pre-flight, import, delete.

:class:`AzureSql` implements ``ports.SqlDatabases`` over azure-mgmt-sql for one subscription. The
export service cannot package some databases and reports it only after minutes or hours, so
:meth:`AzureSql.preflight_export` refuses them first, with SqlExportRefusedError saying what to
change:

* objects that reference other databases or servers (SQL71562) and users the BACPAC format cannot
  carry (SQL71564, e.g. Windows-authenticated), both learnt from inside the database through a
  ``ports.SqlCatalogProbe`` (T-SQL in Azure: ``sql_catalog.DbApiCatalogProbe``);
* a size beyond the export service's 200 GB, from ARM's ``database_size`` usage (and the probe);
* ``master`` and other system databases, which are never exported.

Failures the export service reports anyway (a firewall that shuts it out, a wrong login, the 20-hour
limit) are translated from its ``ImportExportJobError`` message into typed errors with the fix.

Secrets (the admin password, the SAS token or account key of the BACPAC's blob) travel in
``Secret``/``BacpacLocation`` values, go into request bodies only, and never into a message.
Export and import POSTs are retried at most twice on 5xx (azure-core retries POST on 500/503/504;
a duplicated export only rewrites the same blob).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.sql import SqlManagementClient
from azure.mgmt.sql import models as sm

from shared.core.errors import (
    AzureApiError,
    AzureAuthError,
    SourceError,
    SqlExportFailedError,
    SqlExportRefusedError,
    UsageError,
    redact,
)

from .arm import translate_arm_error
from .model import (
    BacpacLocation,
    DatabaseCatalog,
    ExportResult,
    ImportExportOperation,
    Selection,
    SqlDatabaseInfo,
    SqlLogin,
    SqlServerInfo,
)
from .resource_id import ResourceId

__all__ = ["EXPORT_LIMIT_BYTES", "AzureSql"]

EXPORT_LIMIT_BYTES = 200 * 1024**3
"""The export service writes BACPACs of at most 200 GB to Blob storage."""

_SERVER = "Microsoft.Sql/servers"
_DATABASE = "Microsoft.Sql/servers/databases"
_POST_RETRIES = 2
_GB = 1024**3


class AzureSql:
    def __init__(self, client: SqlManagementClient, subscription_id: str) -> None:
        self._client = client
        self._subscription = subscription_id

    # -- discovery -------------------------------------------------------------------------------

    def list_servers(self, resource_group: str | None = None) -> list[SqlServerInfo]:
        try:
            if resource_group is None:
                servers = list(self._client.servers.list())
            else:
                servers = list(self._client.servers.list_by_resource_group(resource_group))
        except AzureError as exc:
            scope = self._group_id(resource_group) if resource_group else f"subscription {self._subscription}"
            raise translate_arm_error(exc, action="list the SQL servers of", resource=scope) from exc
        return sorted((_server_info(s) for s in servers), key=lambda s: s.id.lower())

    def get_server(self, server_id: str) -> SqlServerInfo:
        parsed = self._own_id(server_id, _SERVER)
        try:
            return _server_info(self._client.servers.get(parsed.resource_group, parsed.name))
        except AzureError as exc:
            raise translate_arm_error(exc, action="read", resource=server_id) from exc

    def list_databases(self, server_id: str, *, include_system: bool = False) -> list[SqlDatabaseInfo]:
        """The server's databases by name; ``master`` (and any system database) only on request."""
        parsed = self._own_id(server_id, _SERVER)
        try:
            found = [
                _database_info(d) for d in self._client.databases.list_by_server(parsed.resource_group, parsed.name)
            ]
        except AzureError as exc:
            raise translate_arm_error(exc, action="list the databases of", resource=server_id) from exc
        return sorted((d for d in found if include_system or not d.is_system), key=lambda d: d.name.lower())

    def get_database(self, database_id: str) -> SqlDatabaseInfo:
        parsed = self._own_id(database_id, _DATABASE)
        try:
            database = self._client.databases.get(parsed.resource_group, parsed.names[0], parsed.name)
        except AzureError as exc:
            raise translate_arm_error(exc, action="read", resource=database_id) from exc
        return _database_info(database)

    def discover(self, selection: Selection) -> list[SqlDatabaseInfo]:
        """The user databases a policy selects, sorted by id (see ``model.Selection``).

        ``vm_ids`` may name databases or servers (a server stands for all its user databases);
        ``resource_groups`` are the servers' groups. Tags match the database's tags over its server's.
        """
        servers = {s.id.lower(): s for s in self._servers_in(selection)}
        chosen: dict[str, SqlDatabaseInfo] = {}
        for resource_id in selection.vm_ids:
            parsed = self._own_id(resource_id)
            if parsed.kind.lower() == _DATABASE.lower():
                database = self.get_database(resource_id)
                if database.is_system:
                    raise UsageError(f"'{resource_id}' is a system database, which is never backed up")
                chosen[database.id.lower()] = database
            elif parsed.kind.lower() == _SERVER.lower():
                for database in self.list_databases(resource_id):
                    chosen[database.id.lower()] = database
            else:
                raise UsageError(f"'{resource_id}' is neither a SQL server nor a database")
        for server in servers.values():
            for database in self.list_databases(server.id):
                if selection.wants_tags({**server.tags, **database.tags}):
                    chosen.setdefault(database.id.lower(), database)
        return [
            d
            for key, d in sorted(chosen.items())
            if not selection.excludes(d.id, {**_server_tags(servers, d), **d.tags})
            and not selection.excludes(d.server_id, {})
        ]

    def database_size(self, database: SqlDatabaseInfo) -> int | None:
        """Bytes in use (ARM ``database_size`` usage), or None when Azure does not report it."""
        parsed = self._own_id(database.id, _DATABASE)
        try:
            usages = list(
                self._client.database_usages.list_by_database(parsed.resource_group, parsed.names[0], parsed.name)
            )
        except AzureError as exc:
            raise translate_arm_error(exc, action="read the size of", resource=database.id) from exc
        for usage in usages:
            if str(usage.name).lower() == "database_size":
                value = usage.current_value
                return int(value) if value is not None else None
        return None

    # -- staging copy ----------------------------------------------------------------------------

    def copy_database(
        self,
        source: SqlDatabaseInfo,
        *,
        server_id: str,
        name: str,
        sku: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SqlDatabaseInfo:
        """A transactionally consistent copy of ``source`` on ``server_id`` (e.g. a staging server,
        possibly in another region); returns once the copy is online."""
        if source.is_system:
            raise UsageError(f"system database '{source.name}' cannot be copied")
        server = self.get_server(server_id)
        target_id = f"{server.id}/databases/{name}"
        body = sm.Database(
            location=server.location,
            tags=dict(tags or {}),
            sku=sm.Sku(name=sku) if sku else None,
            properties=sm.DatabaseProperties(create_mode="Copy", source_database_id=source.id),
        )
        try:
            database = self._client.databases.begin_create_or_update(
                server.resource_group, server.name, name, body
            ).result()
        except AzureError as exc:
            raise translate_arm_error(exc, action=f"copy database '{source.name}' to", resource=target_id) from exc
        return _database_info(database)

    def delete_database(self, database_id: str) -> None:
        """Delete a database (a staging copy, a test import); one already gone is not an error."""
        parsed = self._own_id(database_id, _DATABASE)
        if parsed.name.lower() == "master":
            raise UsageError("the master database is never deleted")
        try:
            self._client.databases.begin_delete(parsed.resource_group, parsed.names[0], parsed.name).result()
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise translate_arm_error(exc, action="delete", resource=database_id) from exc

    def rename_database(self, database_id: str, new_name: str) -> SqlDatabaseInfo:
        """Rename a database on its server (ARM's ``move``); the renamed database."""
        parsed = self._own_id(database_id, _DATABASE)
        if parsed.name.lower() == "master":
            raise UsageError("the master database is never renamed")
        target = f"{parsed.parent()}/databases/{new_name}"
        try:
            self._client.databases.rename(
                parsed.resource_group, parsed.names[0], parsed.name, sm.ResourceMoveDefinition(id=target)
            )
        except AzureError as exc:
            raise translate_arm_error(exc, action=f"rename to '{new_name}'", resource=database_id) from exc
        return self.get_database(target)

    # -- export and import -----------------------------------------------------------------------

    def preflight_export(self, database: SqlDatabaseInfo, catalog: DatabaseCatalog) -> int | None:
        """Refuse, before any export starts, what BACPAC cannot export; returns the size in bytes.

        ``catalog`` comes from a ``SqlCatalogProbe``. Raises SqlExportRefusedError naming every
        offending object and what to do about it.
        """
        if database.is_system:
            raise SqlExportRefusedError(
                f"'{database.name}' on server '{database.server_name}' is a system database; it is never exported",
                hint="remove it from the policy (user databases only)",
            )
        problems: list[str] = []
        hints: list[str] = []
        if catalog.external_references:
            listed = "; ".join(r.describe() for r in catalog.external_references[:10])
            more = len(catalog.external_references) - 10
            problems.append(
                f"{len(catalog.external_references)} object(s) reference other databases or servers "
                f"({listed}{f'; and {more} more' if more > 0 else ''}), which BACPAC cannot export (SQL71562)"
            )
            hints.append("rewrite or drop those cross-database references (or move the objects into this database)")
        if catalog.unsupported_principals:
            names = ", ".join(
                f"{p.name} ({p.authentication_type.lower()})" for p in catalog.unsupported_principals[:10]
            )
            problems.append(f"users BACPAC cannot carry: {names} (SQL71564)")
            hints.append("drop those users or replace them with SQL or Microsoft Entra users")
        size = max((s for s in (catalog.size_bytes, self.database_size(database)) if s is not None), default=None)
        if size is not None and size > EXPORT_LIMIT_BYTES:
            problems.append(
                f"it holds {size / _GB:.1f} GiB, over the export service's 200 GB limit for a BACPAC in Blob storage"
            )
            hints.append("shrink it, or exclude it from BACPAC backups and protect it with Azure SQL's own backups")
        if problems:
            raise SqlExportRefusedError(
                f"Database '{database.name}' on server '{database.server_name}' cannot be exported to a BACPAC: "
                + "; ".join(problems)
                + ".",
                hint="; ".join(hints),
            )
        return size

    def export_database(self, database_id: str, *, destination: BacpacLocation, login: SqlLogin) -> ExportResult:
        """Export to a BACPAC blob through Azure's import/export service; waits for it to finish."""
        parsed = self._own_id(database_id, _DATABASE)
        body = _export_body(destination, login)
        try:
            poller = self._client.databases.begin_export(
                parsed.resource_group, parsed.names[0], parsed.name, body, retry_total=_POST_RETRIES
            )
            result = poller.result()
        except AzureError as exc:
            raise _translate_import_export(exc, "export", parsed) from exc
        return _export_result(result, parsed.name)

    def start_export(self, database_id: str, *, destination: BacpacLocation, login: SqlLogin) -> ImportExportOperation:
        """Start an export and return at once (an export can take hours: an activity must not wait
        for it); follow it with ``export_status``. The password and storage key go to Azure only."""
        parsed = self._own_id(database_id, _DATABASE)
        body = _export_body(destination, login)
        try:
            # polling=False: the first answer only; cls hands back its raw response beside the result.
            poller = self._client.databases.begin_export(
                parsed.resource_group,
                parsed.names[0],
                parsed.name,
                body,
                polling=False,
                retry_total=_POST_RETRIES,
                cls=lambda response, deserialized, headers: (response.http_response, deserialized),
            )
            answer, initial = cast(tuple[Any, Any], poller.result())
        except AzureError as exc:
            raise _translate_import_export(exc, "export", parsed) from exc
        if answer.status_code == 200:
            return ImportExportOperation("", "", _export_result(initial, parsed.name))
        return self._operation(answer, parsed.name)

    def export_status(self, operation: ImportExportOperation, database_id: str) -> ExportResult | None:
        """None while the export runs; its result once it succeeded; the translated error if it failed."""
        parsed = self._own_id(database_id, _DATABASE)
        if operation.result is not None:
            return operation.result
        try:
            final = self._finished(operation, "export")
        except AzureError as exc:
            raise _translate_import_export(exc, "export", parsed) from exc
        return None if final is None else _export_result(sm.ImportExportOperationResult(final), parsed.name)

    def start_import(
        self, server_id: str, *, name: str, source: BacpacLocation, login: SqlLogin
    ) -> ImportExportOperation:
        """Start importing a BACPAC into a new database ``name`` and return at once (an import can
        take hours); follow it with ``import_status``."""
        parsed = self._own_id(server_id, _SERVER)
        target = ResourceId.parse(f"{parsed}/databases/{name}")
        try:
            poller = self._client.servers.begin_import_database(
                parsed.resource_group,
                parsed.name,
                _import_body(name, source, login),
                polling=False,
                retry_total=_POST_RETRIES,
                cls=lambda response, deserialized, headers: response.http_response,
            )
            answer = cast(Any, poller.result())
        except AzureError as exc:
            raise _translate_import_export(exc, "import", target) from exc
        if answer.status_code == 200:
            return ImportExportOperation("", "")  # done already: import_status finds the database
        return self._operation(answer, target.name)

    def import_status(self, operation: ImportExportOperation, server_id: str, name: str) -> SqlDatabaseInfo | None:
        """None while the import runs; the new database once it succeeded; the translated error if not."""
        target = ResourceId.parse(f"{self._own_id(server_id, _SERVER)}/databases/{name}")
        if operation.status_url:
            try:
                if self._finished(operation, "import") is None:
                    return None
            except AzureError as exc:
                raise _translate_import_export(exc, "import", target) from exc
        return self.get_database(str(target))

    def _operation(self, answer: Any, name: str) -> ImportExportOperation:
        status_url = answer.headers.get("Azure-AsyncOperation") or ""
        result_url = answer.headers.get("Location") or ""
        if not (status_url or result_url):
            raise AzureApiError(
                f"Azure accepted the import/export of {name} but named no operation to follow",
                hint="run it again; if it persists, use the portal",
            )
        return ImportExportOperation(status_url or result_url, result_url or status_url)

    def _finished(self, operation: ImportExportOperation, action: str) -> dict[str, Any] | None:
        """The operation's final document once it succeeded, None while it runs; HttpResponseError
        when it failed or was cancelled."""
        status = self._get_json(operation.status_url)
        state = str(status.get("status") or status.get("properties", {}).get("status") or "").lower()
        if state in ("failed", "canceled", "cancelled"):
            error = status.get("error") or {}
            text = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
            raise HttpResponseError(message=text or f"the {action} ended {state}")
        if state not in ("succeeded", "completed"):
            return None
        return self._get_json(operation.result_url) if operation.result_url != operation.status_url else status

    def _get_json(self, url: str) -> dict[str, Any]:
        """GET an ARM operation URL through the client's pipeline (auth, retries on 429 and 5xx)."""
        response = self._client.send_request(HttpRequest("GET", url))
        if response.status_code not in (200, 202):
            raise HttpResponseError(response=response)
        document = response.json() if response.content else {}
        return document if isinstance(document, dict) else {}

    def import_database(
        self,
        server_id: str,
        *,
        name: str,
        source: BacpacLocation,
        login: SqlLogin,
        edition: str | None = None,
        service_objective: str | None = None,
        max_size_bytes: int | None = None,
    ) -> SqlDatabaseInfo:
        """Import a BACPAC into a new database ``name`` on ``server_id``; waits for it to finish."""
        parsed = self._own_id(server_id, _SERVER)
        body = _import_body(name, source, login, edition, service_objective, max_size_bytes)
        target = ResourceId.parse(f"{parsed}/databases/{name}")
        try:
            self._client.servers.begin_import_database(
                parsed.resource_group, parsed.name, body, retry_total=_POST_RETRIES
            ).result()
        except AzureError as exc:
            raise _translate_import_export(exc, "import", target) from exc
        return self.get_database(str(target))

    # -- internals -------------------------------------------------------------------------------

    def _servers_in(self, selection: Selection) -> Iterable[SqlServerInfo]:
        if selection.resource_groups:
            for group in selection.resource_groups:
                yield from self.list_servers(group)
        elif not selection.vm_ids:
            yield from self.list_servers()

    def _own_id(self, resource_id: str, expect: str | None = None) -> ResourceId:
        parsed = ResourceId.parse(resource_id, expect=expect)
        if parsed.subscription.lower() != self._subscription.lower():
            raise UsageError(
                f"'{resource_id}' is in subscription {parsed.subscription}, but Bulwark is working on "
                f"subscription {self._subscription}",
                hint="protect each subscription with its own policy",
            )
        return parsed

    def _group_id(self, resource_group: str) -> str:
        return f"/subscriptions/{self._subscription}/resourceGroups/{resource_group}"


def _server_tags(servers: Mapping[str, SqlServerInfo], database: SqlDatabaseInfo) -> Mapping[str, str]:
    server = servers.get(database.server_id.lower())
    return server.tags if server is not None else {}


def _server_info(server: sm.Server) -> SqlServerInfo:
    return SqlServerInfo(
        id=str(server.id),
        name=str(server.name),
        resource_group=ResourceId.parse(str(server.id)).resource_group,
        location=str(server.location),
        fqdn=server.fully_qualified_domain_name,
        administrator_login=server.administrator_login,
        state=server.state,
        tags=dict(server.tags or {}),
    )


def _database_info(database: sm.Database) -> SqlDatabaseInfo:
    parsed = ResourceId.parse(str(database.id))
    kind = str(database.kind or "")
    sku = database.sku
    return SqlDatabaseInfo(
        id=str(database.id),
        name=str(database.name),
        server_id=str(parsed.parent()),
        server_name=parsed.names[0],
        resource_group=parsed.resource_group,
        location=str(database.location),
        status=_text(database.status),
        sku=sku.name if sku is not None else None,
        tier=sku.tier if sku is not None else None,
        max_size_bytes=int(database.max_size_bytes) if database.max_size_bytes is not None else None,
        is_system="system" in kind.lower() or str(database.name).lower() == "master",
        database_id=str(database.database_id) if database.database_id else None,
        tags=dict(database.tags or {}),
    )


def _export_body(destination: BacpacLocation, login: SqlLogin) -> sm.ExportDatabaseDefinition:
    return sm.ExportDatabaseDefinition(
        storage_key_type=destination.key_type,
        storage_key=destination.key.reveal(),
        storage_uri=destination.uri,
        administrator_login=login.login,
        administrator_login_password=login.password.reveal(),
        authentication_type="Sql",
    )


def _import_body(
    name: str,
    source: BacpacLocation,
    login: SqlLogin,
    edition: str | None = None,
    service_objective: str | None = None,
    max_size_bytes: int | None = None,
) -> sm.ImportNewDatabaseDefinition:
    return sm.ImportNewDatabaseDefinition(
        database_name=name,
        edition=edition,
        service_objective_name=service_objective,
        max_size_bytes=str(max_size_bytes) if max_size_bytes is not None else None,
        storage_key_type=source.key_type,
        storage_key=source.key.reveal(),
        storage_uri=source.uri,
        administrator_login=login.login,
        administrator_login_password=login.password.reveal(),
        authentication_type="Sql",
    )


def _export_result(result: Any, database: str) -> ExportResult:
    return ExportResult(
        request_id=str(getattr(result, "request_id", "") or ""),
        database_name=str(getattr(result, "database_name", None) or database),
        blob_uri=str(getattr(result, "blob_uri", "") or ""),
        status=str(getattr(result, "status", "") or ""),
    )


_FIREWALL = re.compile(r"not allowed to access the server|Cannot open server", re.IGNORECASE)


def _translate_import_export(exc: AzureError, action: str, database: ResourceId) -> AzureApiError | SourceError:
    """The import/export service's failures, by what its message says, else the generic translation."""
    text = redact(_message(exc))
    where = f"database '{database.name}' on server '{database.names[0]}'"
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    if "SQL71562" in text or "External references are not supported" in text:
        return SqlExportRefusedError(
            f"The {action} of {where} failed: it references objects in other databases (SQL71562).",
            hint="rewrite or drop the cross-database references; Bulwark's pre-flight lists them",
        )
    if "SQL71564" in text:
        return SqlExportRefusedError(
            f"The {action} of {where} failed: it has users BACPAC cannot carry (SQL71564).",
            hint="drop those users or replace them with SQL or Microsoft Entra users",
        )
    if "Login failed" in text:
        return AzureAuthError(
            f"The {action} service could not sign in to {where} ({_first_sentence(text)}).",
            hint="check the server's administrator login and the password Bulwark is given for it",
        )
    if _FIREWALL.search(text) or status == 504:
        return SqlExportFailedError(
            f"The {action} service could not reach {where} (firewall: {_first_sentence(text)}).",
            hint="turn on 'Allow Azure services and resources to access this server' in the server's networking "
            "settings, or give the export service a private endpoint",
        )
    if "20 hours" in text or "maximum allowed time" in text:
        return SqlExportFailedError(
            f"The {action} of {where} took longer than the service's 20-hour limit and was cancelled.",
            hint="export a copy made on a staging server (no competing load), or a smaller database",
        )
    if "ImportExportJobError" in text or "ImportExport operation" in text:
        return SqlExportFailedError(
            f"The {action} of {where} failed: {_first_sentence(text)}",
            hint="check the BACPAC's storage location and key, then run it again",
        )
    return translate_arm_error(exc, action=action, resource=str(database))


def _message(exc: AzureError) -> str:
    error = getattr(exc, "error", None)
    parts = [str(getattr(error, "code", "") or ""), str(getattr(error, "message", "") or ""), str(exc.message or "")]
    return " ".join(p for p in parts if p)


def _first_sentence(text: str) -> str:
    found = re.search(r"failed due to '(.*)'\.?", text, re.DOTALL)
    body = found.group(1) if found else text
    return body.strip().splitlines()[0][:400] if body.strip() else "no reason given"


def _text(value: object) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


if TYPE_CHECKING:  # mypy checks that the adapter implements its port
    from .ports import SqlDatabases

    def _conforms(sql: AzureSql) -> SqlDatabases:
        return sql
