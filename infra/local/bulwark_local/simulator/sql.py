"""Microsoft.Sql: logical servers, databases, copy, BACPAC export/import, and the SQL admin API.

Shapes follow the recordings (test_mgmt_sql.test_server / test_database) and the facts doc §2.3:

- Server and database PUT/DELETE answer 202 with ``{"operation": "CreateLogicalDatabase"|...,
  "startTime"}``, ``Azure-AsyncOperation`` (``{RG}/providers/Microsoft.Sql/locations/{loc}/
  databaseAzureAsyncOperation/{id}``) and ``Location`` (``.../databaseOperationResults/{id}``); polls
  answer ``{"name", "status", "startTime"}``; the SDK's final GET reads the resource.
- Every server has ``master`` (kind ``v12.0,system``, sku System, ``managedBy`` the server): a
  backup must skip it. Database copy is ``createMode: Copy`` + ``sourceDatabaseId``, onto any server
  whose location the body names (a staging server in another region too).
- Export (``POST .../databases/{db}/export``) and import (``POST .../servers/{s}/import`` new,
  ``POST .../databases/{db}/import`` into an empty one) answer 202 with ``Azure-AsyncOperation``
  ``{S}/providers/Microsoft.Sql/locations/{loc}/importExportAzureAsyncOperation/{id}`` and
  ``Location`` ``.../importExportOperationResults/{id}``, whose final GET is the
  ``ImportExportOperationResult``. The work happens at once: export writes a BACPAC (bacpac.py)
  into the storage account at ``storageUri`` (Azurite) with the given account key
  (``StorageAccessKey``) or SAS token (``SharedAccessKey``); import reads one back.
- Export failures end the operation ``Failed`` with ``ImportExportJobError`` and Azure's message
  shape ``The ImportExport operation with Request Id '...' failed due to '...'``: a wrong admin
  login or password, external references or unsupported principals in the database (its
  "features"), the server firewall (mode ``firewall``: the job error Azure reports when "Allow Azure
  services" is off; mode ``gateway-timeout``: the other documented symptom, the POST itself answers
  504 GatewayTimeout), storage errors, or ``timeout`` (the operation stays InProgress for 20
  simulated hours, then fails).

Database contents live in sqldata.py; the admin routes at the end (``/_bulwark/sql/...``) change
rows, switch failure modes and answer the pre-flight catalog questions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from .admin import AdminError, admin_body
from .arm import ArmError, Context, Route, json_response, lro_headers, route
from .bacpac import BacpacError, Package, TableSchema, build_bacpac, decode_rows, model_xml, read_bacpac
from .sqldata import (
    PRESETS,
    SqlDataError,
    TableStore,
    change_rows,
    generate_table,
    schema_of,
    split_name,
    table_record,
)
from .state import JsonDict, StateStore

NAMESPACE = "Microsoft.Sql"
SERVER_TYPE = "Microsoft.Sql/servers"
DATABASE_TYPE = "Microsoft.Sql/servers/databases"
EXPORT_LIMIT_BYTES = 200 * 1024**3
EXPORT_MAX_SECONDS = 20 * 3600
FAILURE_MODES = ("none", "external-references", "unsupported-logins", "firewall", "gateway-timeout", "timeout")
EXPORT_SERVICE_IP = "52.236.184.163"  # what the firewall error names as the blocked client

_RG = "/subscriptions/{subscription}/resourceGroups/{resource_group}"
_SUB = "/subscriptions/{subscription}"
_SERVER = _RG + "/providers/Microsoft.Sql/servers/{server}"
_DATABASE = _SERVER + "/databases/{database}"

_DTU_OBJECTIVES = {
    "Basic": ("Basic", 5, 2 * 1024**3),
    "S0": ("Standard", 10, 250 * 1024**3),
    "S1": ("Standard", 20, 250 * 1024**3),
    "S2": ("Standard", 50, 250 * 1024**3),
    "S3": ("Standard", 100, 1024**4),
    "P1": ("Premium", 125, 500 * 1024**3),
    "P2": ("Premium", 250, 500 * 1024**3),
}
_VCORE = re.compile(r"^(GP|BC|HS)(_S)?_(Gen5|Gen4|8IM|8IH|DC)(?:_(\d+))?$", re.IGNORECASE)
_VCORE_TIERS = {"GP": "GeneralPurpose", "BC": "BusinessCritical", "HS": "Hyperscale"}

_log = logging.getLogger("bulwark_local.simulator.sql")


class ImportExportFailure(Exception):
    """Why an import or export job failed (the text after ``failed due to``); never holds a secret."""


def location_key(location: str) -> str:
    return location.replace(" ", "").lower()


def az_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _legacy_time(moment: dt.datetime) -> str:
    """``2/2/2020 8:33:27 PM``: how ImportExportOperationResult reports times (not ISO)."""
    hour = moment.hour % 12 or 12
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {'AM' if moment.hour < 12 else 'PM'}"


def _password_hash(password: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()


class SqlProvider:
    def __init__(self, state: StateStore, store: TableStore) -> None:
        self._state = state
        self._store = store
        logging.getLogger("azure").setLevel(logging.WARNING)  # the storage SDK logs URLs at INFO

    def routes(self) -> list[Route]:
        return [
            route("GET", _SUB + "/providers/Microsoft.Sql/servers", lambda c: self._list_servers(c, False)),
            route("GET", _RG + "/providers/Microsoft.Sql/servers", lambda c: self._list_servers(c, True)),
            route("GET", _SERVER, lambda c: json_response(self._server(c)["doc"])),
            route("PUT", _SERVER, self._put_server),
            route("DELETE", _SERVER, self._delete_server),
            route("GET", _SERVER + "/usages", self._server_usages),
            route("GET", _SERVER + "/firewallRules", self._list_rules),
            route("GET", _SERVER + "/firewallRules/{rule}", self._get_rule),
            route("PUT", _SERVER + "/firewallRules/{rule}", self._put_rule),
            route("DELETE", _SERVER + "/firewallRules/{rule}", self._delete_rule),
            route("POST", _SERVER + "/import", self._import_new),
            route("GET", _SERVER + "/databases", self._list_databases),
            route("GET", _DATABASE, lambda c: json_response(self._database(c)["doc"])),
            route("PUT", _DATABASE, self._put_database),
            route("PATCH", _DATABASE, self._patch_database),
            route("DELETE", _DATABASE, self._delete_database),
            route("GET", _DATABASE + "/usages", self._database_usages),
            route("POST", _DATABASE + "/export", self._export),
            route("POST", _DATABASE + "/import", self._import_existing),
            route("POST", _DATABASE + "/move", self._rename_database),
            # Microsoft.Sql puts its database/server operation URLs under the resource group.
            route(
                "GET",
                _RG + "/providers/Microsoft.Sql/locations/{location}/{collection}/{op_id}",
                lambda c: c.operations.poll(c, c.params["op_id"]),
            ),
        ]

    # -- lookups -------------------------------------------------------------------------------

    @staticmethod
    def server_id(ctx: Context) -> str:
        return f"{ctx.resource_group_id()}/providers/{NAMESPACE}/servers/{ctx.params['server']}"

    def _server(self, ctx: Context) -> JsonDict:
        ctx.require_resource_group()
        record = self._state.get("resources", self.server_id(ctx))
        if record is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{SERVER_TYPE}/{ctx.params['server']}' under resource group "
                f"'{ctx.params['resource_group']}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        return record

    def _database(self, ctx: Context, name: str | None = None) -> JsonDict:
        self._server(ctx)
        name = name or ctx.params["database"]
        record = self._state.get("resources", f"{self.server_id(ctx)}/databases/{name}")
        if record is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The requested resource of type '{DATABASE_TYPE}' with name '{name}' was not found.",
            )
        return record

    def _children(self, parent: str, collection: str) -> list[JsonDict]:
        prefix = f"{parent.lower()}/{collection.lower()}/"
        return [
            record
            for key, record in self._state.items("resources")
            if key.startswith(prefix) and "/" not in key[len(prefix) :]
        ]

    def _start(
        self,
        ctx: Context,
        location: str,
        *,
        kind: str,
        monitor: Any = None,
        error: JsonDict | None = None,
        complete_at: dt.datetime | None = None,
        op_id: str | None = None,
    ) -> dict[str, str]:
        """An operation in Microsoft.Sql's shape; ``kind`` is database, server or importExport."""
        op_id = op_id or str(uuid.uuid4())
        resource_group = kind != "importExport"
        urls = ctx.operations.start(
            ctx,
            namespace=NAMESPACE,
            collection=f"{kind}AzureAsyncOperation",
            location=location_key(location),
            monitor=monitor,
            with_p=False,
            scope=ctx.resource_group_id() if resource_group else None,
            location_collection=f"{kind}OperationResults",
            status_body={"name": op_id, "startTime": az_time(ctx.state.now())},
            error=error,
            complete_at=complete_at,
            op_id=op_id,
        )
        return lro_headers(ctx, urls)

    # -- servers -------------------------------------------------------------------------------

    def _list_servers(self, ctx: Context, in_group: bool) -> Response:
        if in_group:
            ctx.require_resource_group()
        prefix = (ctx.resource_group_id() if in_group else f"/subscriptions/{ctx.subscription()}").lower() + "/"
        items = [
            record["doc"]
            for key, record in self._state.items("resources")
            if key.startswith(prefix) and "/providers/microsoft.sql/servers/" in key and key.count("/") == 8
        ]
        return ctx.list_response(items)

    def _put_server(self, ctx: Context) -> Response:
        ctx.require_resource_group()
        body = ctx.json()
        server_id = self.server_id(ctx)
        name = ctx.params["server"]
        props = body.get("properties") or {}
        existing = self._state.get("resources", server_id)
        if existing is None:
            location = body.get("location")
            if not isinstance(location, str) or not location:
                raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
            login = props.get("administratorLogin")
            password = props.get("administratorLoginPassword")
            if not login or not password:
                raise ArmError(
                    400,
                    "InvalidParameterValue",
                    "Invalid value given for parameter Login/Password. Specify administratorLogin and "
                    "administratorLoginPassword for a new server.",
                )
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,61}[a-z0-9]", name):
                raise ArmError(
                    400,
                    "InvalidResourceName",
                    f"Server name '{name}' is not valid: use 2-63 lower-case letters, digits and hyphens.",
                )
            salt = secrets.token_hex(8)
            doc: JsonDict = {
                "kind": "v12.0",
                "properties": {
                    "administratorLogin": login,
                    "version": props.get("version", "12.0"),
                    "state": "Ready",
                    "fullyQualifiedDomainName": f"{name}.database.windows.net",
                    "privateEndpointConnections": [],
                    "minimalTlsVersion": props.get("minimalTlsVersion", "1.2"),
                    "publicNetworkAccess": props.get("publicNetworkAccess", "Enabled"),
                    "restrictOutboundNetworkAccess": "Disabled",
                },
                "location": location,
                "id": server_id,
                "name": name,
                "type": SERVER_TYPE,
            }
            if body.get("tags"):
                doc["tags"] = body["tags"]
            private: JsonDict = {"salt": salt, "passwordSha256": _password_hash(str(password), salt)}
            self._state.put("resources", server_id, {"doc": doc, "private": private})
            self._put_master(ctx, doc)
        else:
            doc = existing["doc"]
            if body.get("tags") is not None:
                doc["tags"] = body["tags"]
            if props.get("administratorLoginPassword"):
                existing["private"]["passwordSha256"] = _password_hash(
                    str(props["administratorLoginPassword"]), existing["private"]["salt"]
                )
            self._state.put("resources", server_id, existing)
        headers = self._start(ctx, doc["location"], kind="server", monitor=doc)
        return json_response({"operation": "UpsertLogicalServer", "startTime": az_time(ctx.state.now())}, 202, headers)

    def _put_master(self, ctx: Context, server: JsonDict) -> None:
        master_id = f"{server['id']}/databases/master"
        doc = _database_doc(
            master_id,
            "master",
            server["location"],
            {"name": "System", "tier": "System", "capacity": 0},
            "System2",
            32212254720,
            ctx.state.now(),
            kind="v12.0,system",
        )
        doc["managedBy"] = server["id"]
        self._state.put("resources", master_id, {"doc": doc, "private": {"system": True, "tables": []}})

    def _delete_server(self, ctx: Context) -> Response:
        ctx.require_resource_group()
        server_id = self.server_id(ctx)
        record = self._state.get("resources", server_id)
        if record is None:
            return Response(status=204)
        with self._state.lock:
            for key, _ in self._state.items("resources"):
                if key.startswith(server_id.lower() + "/"):
                    self._state.delete("resources", key)
            self._state.delete("resources", server_id)
        headers = self._start(ctx, record["doc"]["location"], kind="server")
        return json_response({"operation": "DropLogicalServer", "startTime": az_time(ctx.state.now())}, 202, headers)

    def _server_usages(self, ctx: Context) -> Response:
        server = self._server(ctx)["doc"]
        usages = [
            {
                "name": name,
                "resourceName": server["name"],
                "displayName": "Database Throughput Unit Quota",
                "currentValue": 0.0,
                "limit": 54000.0,
                "unit": "DTUs",
                "nextResetTime": None,
            }
            for name in ("server_dtu_quota", "server_dtu_quota_current")
        ]
        return json_response({"value": usages})

    # -- firewall rules (kept, not enforced: the export firewall failure is a per-database mode) --

    def _rule_id(self, ctx: Context) -> str:
        return f"{self.server_id(ctx)}/firewallRules/{ctx.params['rule']}"

    def _list_rules(self, ctx: Context) -> Response:
        self._server(ctx)
        return ctx.list_response([r["doc"] for r in self._children(self.server_id(ctx), "firewallRules")])

    def _get_rule(self, ctx: Context) -> Response:
        self._server(ctx)
        record = self._state.get("resources", self._rule_id(ctx))
        if record is None:
            raise ArmError(404, "ResourceNotFound", f"The firewall rule '{ctx.params['rule']}' was not found.")
        return json_response(record["doc"])

    def _put_rule(self, ctx: Context) -> Response:
        server = self._server(ctx)["doc"]
        props = ctx.json().get("properties") or {}
        for field in ("startIpAddress", "endIpAddress"):
            if not isinstance(props.get(field), str):
                raise ArmError(400, "InvalidParameterValue", f"Invalid value given for parameter {field}.")
        existing = self._state.get("resources", self._rule_id(ctx))
        doc = {
            "id": self._rule_id(ctx),
            "name": ctx.params["rule"],
            "type": "Microsoft.Sql/servers/firewallRules",
            "location": server["location"],
            "kind": "v12.0",
            "properties": {"startIpAddress": props["startIpAddress"], "endIpAddress": props["endIpAddress"]},
        }
        self._state.put("resources", doc["id"], {"doc": doc, "private": {}})
        return json_response(doc, 200 if existing else 201)

    def _delete_rule(self, ctx: Context) -> Response:
        self._server(ctx)
        return Response(status=200 if self._state.delete("resources", self._rule_id(ctx)) else 204)

    # -- databases -----------------------------------------------------------------------------

    def _list_databases(self, ctx: Context) -> Response:
        self._server(ctx)
        return ctx.list_response([r["doc"] for r in self._children(self.server_id(ctx), "databases")])

    def _put_database(self, ctx: Context) -> Response:
        server = self._server(ctx)["doc"]
        body = ctx.json()
        name = ctx.params["database"]
        database_id = f"{server['id']}/databases/{name}"
        props = body.get("properties") or {}
        mode = props.get("createMode") or "Default"
        if name.lower() == "master":
            raise ArmError(400, "ReservedResourceName", "The database name 'master' is reserved.")
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        if location_key(location) != location_key(server["location"]):
            raise ArmError(
                400,
                "InvalidResourceLocation",
                f"The database location '{location}' must be the location of its server '{server['name']}' "
                f"('{server['location']}'). To copy a database to another region, PUT it on a server there.",
            )
        existing = self._state.get("resources", database_id)
        if existing is not None and mode == "Default":
            return self._update_database(ctx, existing, body)
        if existing is not None:
            raise ArmError(
                409,
                "DatabaseAlreadyExists",
                f"The database '{name}' already exists on server "
                f"'{server['name']}'. Choose another name or delete it first.",
            )
        private: JsonDict = {"tables": [], "features": {}, "exportFailure": "none", "changes": 0}
        if mode == "Copy":
            source_id = str(props.get("sourceDatabaseId") or "")
            source = self._state.get("resources", source_id) if source_id else None
            if source is None or source["doc"].get("type") != DATABASE_TYPE:
                raise ArmError(
                    404,
                    "SourceDatabaseNotFound",
                    f"The source database '{source_id}' does not exist. Give sourceDatabaseId as a database "
                    "resource id.",
                )
            if source["private"].get("system"):
                raise ArmError(400, "InvalidSourceDatabase", "The master database cannot be copied.")
            for field in ("tables", "features", "model", "changes"):
                if field in source["private"]:
                    private[field] = source["private"][field]
            private["copiedFrom"] = source["doc"]["id"]
        elif mode != "Default":
            raise ArmError(
                400,
                "InvalidCreateMode",
                f"createMode '{mode}' is not simulated; use Default or Copy (import with POST .../import).",
            )
        sku, objective, max_size = normalize_sku(body.get("sku"))
        doc = _database_doc(
            database_id,
            name,
            server["location"],
            sku,
            objective,
            int(props.get("maxSizeBytes") or max_size),
            ctx.state.now(),
            collation=props.get("collation"),
        )
        if body.get("tags"):
            doc["tags"] = body["tags"]
        self._state.put("resources", database_id, {"doc": doc, "private": private})
        headers = self._start(ctx, server["location"], kind="database", monitor=doc)
        operation = "CreateDatabaseAsCopy" if mode == "Copy" else "CreateLogicalDatabase"
        return json_response({"operation": operation, "startTime": az_time(ctx.state.now())}, 202, headers)

    def _update_database(self, ctx: Context, record: JsonDict, body: JsonDict) -> Response:
        doc = record["doc"]
        if body.get("sku"):
            sku, objective, _ = normalize_sku(body["sku"])
            doc["sku"] = sku
            doc["properties"].update(
                currentSku=sku, currentServiceObjectiveName=objective, requestedServiceObjectiveName=objective
            )
        max_size = (body.get("properties") or {}).get("maxSizeBytes")
        if max_size:
            doc["properties"]["maxSizeBytes"] = int(max_size)
        if body.get("tags") is not None:
            doc["tags"] = body["tags"]
        self._state.put("resources", doc["id"], record)
        headers = self._start(ctx, doc["location"], kind="database", monitor=doc)
        return json_response(
            {"operation": "UpdateLogicalDatabase", "startTime": az_time(ctx.state.now())}, 202, headers
        )

    def _patch_database(self, ctx: Context) -> Response:
        return self._update_database(ctx, self._database(ctx), ctx.json())

    def _delete_database(self, ctx: Context) -> Response:
        self._server(ctx)
        name = ctx.params["database"]
        if name.lower() == "master":
            raise ArmError(400, "CannotDropSystemDatabase", "The master database cannot be dropped.")
        record = self._state.get("resources", f"{self.server_id(ctx)}/databases/{name}")
        if record is None:
            return Response(status=204)
        self._state.delete("resources", record["doc"]["id"])
        headers = self._start(ctx, record["doc"]["location"], kind="database")
        return json_response({"operation": "DropLogicalDatabase", "startTime": az_time(ctx.state.now())}, 202, headers)

    def _rename_database(self, ctx: Context) -> Response:
        """Databases.Rename: ``{"id": <the new id>}`` on the same server; 200 with no body."""
        record = self._database(ctx)
        if record["private"].get("system") or record["doc"]["name"].lower() == "master":
            raise ArmError(400, "CannotRenameSystemDatabase", "A system database cannot be renamed.")
        target = str((ctx.json() or {}).get("id") or "")
        server = self.server_id(ctx)
        prefix = f"{server}/databases/"
        new_name = target[len(prefix) :] if target.lower().startswith(prefix.lower()) else ""
        if not new_name or "/" in new_name:
            raise ArmError(
                400, "InvalidResourceId", f"The target id '{target}' does not name a database on server '{server}'."
            )
        if self._state.get("resources", target) is not None:
            raise ArmError(409, "DatabaseAlreadyExists", f"The database '{new_name}' already exists.")
        self._state.delete("resources", record["doc"]["id"])
        record["doc"]["id"] = f"{prefix}{new_name}"
        record["doc"]["name"] = new_name
        self._state.put("resources", record["doc"]["id"], record)
        return Response(status=200)

    def _database_usages(self, ctx: Context) -> Response:
        record = self._database(ctx)
        doc = record["doc"]
        size = float(database_size(record))
        limit = float(doc["properties"]["maxSizeBytes"])
        if ctx.api_version < "2015":  # the recording's old shape
            return json_response(
                {
                    "value": [
                        {
                            "name": "database_size",
                            "resourceName": doc["name"],
                            "displayName": "Database Size",
                            "currentValue": size,
                            "limit": limit,
                            "unit": "Bytes",
                            "nextResetTime": None,
                        }
                    ]
                }
            )
        usage = {
            "id": f"{doc['id']}/usages/database_size",
            "name": "database_size",
            "type": "Microsoft.Sql/servers/databases/usages",
            "properties": {"displayName": "Database Size", "currentValue": size, "limit": limit, "unit": "Bytes"},
        }
        return json_response({"value": [usage]})

    # -- export and import ---------------------------------------------------------------------

    def _export(self, ctx: Context) -> Response:
        server = self._server(ctx)
        record = self._database(ctx)
        doc = record["doc"]
        if record["private"].get("system"):
            raise ArmError(400, "InvalidDatabaseName", "The master database cannot be exported.")
        request = _import_export_request(ctx.json(), new_database=False)
        request_id = str(uuid.uuid4())
        started = ctx.state.now()
        result = _operation_result(
            request_id,
            "Export",
            started,
            ctx.state.now(),
            server["doc"],
            doc["name"],
            request["storageUri"],
            resource_id=f"{doc['id']}/importExportOperationResults/{request_id}",
        )
        error: JsonDict | None = None
        complete_at: dt.datetime | None = None
        try:
            mode = record["private"].get("exportFailure", "none")
            if mode == "gateway-timeout":
                raise ArmError(
                    504,
                    "GatewayTimeout",
                    "The gateway did not receive a response from 'Microsoft.Sql' within the specified time period.",
                )
            if mode == "timeout":
                complete_at = started + dt.timedelta(seconds=EXPORT_MAX_SECONDS)
                raise ImportExportFailure(
                    "The operation was cancelled because it did not complete within the maximum allowed time of "
                    "20 hours. Export a smaller database, or a copy while writes are stopped."
                )
            self._check_access(server, doc["name"], request, mode)
            self._check_exportable(record)
            package = self.export_package(record, started)
            _write_blob(request, package)
            _log.info("exported %s (%d bytes) as request %s", doc["id"], len(package), request_id)
        except ImportExportFailure as failure:
            error = _job_error(request_id, str(failure))
            _log.info("export of %s failed: %s", doc["id"], failure)
        headers = self._start(
            ctx,
            server["doc"]["location"],
            kind="importExport",
            monitor=result,
            error=error,
            complete_at=complete_at,
            op_id=request_id,
        )
        return json_response({"operation": "ExportDatabase", "startTime": az_time(started)}, 202, headers)

    def export_package(self, record: JsonDict, moment: dt.datetime) -> bytes:
        private = record["private"]
        tables = [(schema_of(t), self._store.get(t["data"]), int(t.get("rows") or 0)) for t in private["tables"]]
        model = self._store.get(private["model"]) if private.get("model") else model_xml([t for t, _, _ in tables])
        return build_bacpac(
            record["doc"]["name"], model, tables, moment=moment, source_size_kb=database_size(record) // 1024
        )

    def _check_access(self, server: JsonDict, database: str, request: JsonDict, mode: str) -> None:
        name = server["doc"]["name"]
        if mode == "firewall":
            raise ImportExportFailure(
                "Error encountered during the service operation. ; Exception Microsoft.SqlServer.Management.Dac."
                "Services.ServiceException:Unable to authenticate request; Inner exception System.Data.SqlClient."
                f"SqlException:Cannot open server '{name}' requested by the login. Client with IP address "
                f"'{EXPORT_SERVICE_IP}' is not allowed to access the server. To enable access, use the Windows Azure "
                "Management Portal or run sp_set_firewall_rule on the master database to create a firewall rule "
                "for this IP address or address range. It may take up to five minutes for this change to take "
                "effect."
            )
        private = server["private"]
        login = request["administratorLogin"]
        password = str(request.get("administratorLoginPassword") or "")
        if (
            login.lower() != server["doc"]["properties"]["administratorLogin"].lower()
            or _password_hash(password, private["salt"]) != private["passwordSha256"]
        ):
            raise ImportExportFailure(f"Login failed for user '{login}'.")

    def _check_exportable(self, record: JsonDict) -> None:
        features = record["private"].get("features") or {}
        references = features.get("externalReferences") or []
        if references:
            errors = " ".join(
                f"Error SQL71562: Error validating element {ref['referencingObject']}: "
                f"{str(ref.get('referencingType', 'VIEW')).title()}: {ref['referencingObject']} has an unresolved "
                f"reference to object {_external_name(ref)}. External references are not supported when creating "
                "a package from this platform."
                for ref in references
            )
            raise ImportExportFailure(
                "Error encountered during the service operation. One or more unsupported elements were found in "
                f"the schema used as part of a data package. {errors}"
            )
        principals = features.get("unsupportedPrincipals") or []
        if principals:
            errors = " ".join(
                f"Error SQL71564: Element User: [{p['name']}] has an unsupported property AuthenticationType set "
                "and is not supported when used as part of a data package."
                for p in principals
            )
            raise ImportExportFailure(
                "Error encountered during the service operation. One or more unsupported elements were found in "
                f"the schema used as part of a data package. {errors}"
            )
        size = database_size(record)
        if size > EXPORT_LIMIT_BYTES:
            raise ImportExportFailure(
                f"The database is {size} bytes; export to Azure Blob storage supports BACPAC files up to 200 GB. "
                "Export with SqlPackage to local storage instead."
            )

    def _import_new(self, ctx: Context) -> Response:
        server = self._server(ctx)
        request = _import_export_request(ctx.json(), new_database=True)
        name = str(request["databaseName"])
        database_id = f"{server['doc']['id']}/databases/{name}"
        if self._state.get("resources", database_id) is not None:
            raise ArmError(
                409,
                "DatabaseAlreadyExists",
                f"The database '{name}' already exists on server "
                f"'{server['doc']['name']}'. Import into a new name, or delete it first.",
            )
        return self._run_import(ctx, server, request, database_id, name, existing=None)

    def _import_existing(self, ctx: Context) -> Response:
        server = self._server(ctx)
        record = self._database(ctx)
        request = _import_export_request(ctx.json(), new_database=False)
        return self._run_import(ctx, server, request, record["doc"]["id"], record["doc"]["name"], existing=record)

    def _run_import(
        self,
        ctx: Context,
        server: JsonDict,
        request: JsonDict,
        database_id: str,
        name: str,
        existing: JsonDict | None,
    ) -> Response:
        request_id = str(uuid.uuid4())
        started = ctx.state.now()
        result = _operation_result(
            request_id,
            "Import",
            started,
            started,
            server["doc"],
            name,
            request["storageUri"],
            resource_id=f"{server['doc']['id']}/importExportOperationResults/{request_id}",
        )
        error: JsonDict | None = None
        try:
            self._check_access(server, name, request, "none")
            if existing is not None and (existing["private"].get("tables") or existing["private"].get("system")):
                raise ImportExportFailure(
                    "Data cannot be imported into target because it contains one or more user objects. Import "
                    "should be performed against a new, empty database."
                )
            try:
                package = read_bacpac(_read_blob(request))
            except BacpacError as failure:
                raise ImportExportFailure(f"The BACPAC file is not valid: {failure}") from failure
            damaged = _unreadable_table(package)
            if damaged is not None:
                # Like DacFx: the schema is deployed and the tables before the bad one loaded, then the
                # import fails and leaves that half-imported database behind for the caller to delete.
                index, reason = damaged
                schema = package.tables[index][0]
                half = Package(package.model, package.tables[:index])
                self._create_imported(ctx, server["doc"], request, database_id, name, half, existing)
                raise ImportExportFailure(
                    f"Could not import package. Error SQL72014: .Net SqlClient Data Provider: the data of table "
                    f"[{schema.schema}].[{schema.name}] cannot be read ({reason}). Error SQL72045: Script execution "
                    "error. The database is left as it was when the error occurred."
                )
            self._create_imported(ctx, server["doc"], request, database_id, name, package, existing)
            _log.info("imported %s as request %s", database_id, request_id)
        except ImportExportFailure as failure:
            error = _job_error(request_id, str(failure))
        headers = self._start(
            ctx, server["doc"]["location"], kind="importExport", monitor=result, error=error, op_id=request_id
        )
        return json_response({"operation": "ImportDatabase", "startTime": az_time(started)}, 202, headers)

    def _create_imported(
        self,
        ctx: Context,
        server: JsonDict,
        request: JsonDict,
        database_id: str,
        name: str,
        package: Package,
        existing: JsonDict | None,
    ) -> None:
        tables = [table_record(schema, data, _row_count(schema, data), self._store) for schema, data in package.tables]
        private: JsonDict = {
            "tables": tables,
            "features": {},
            "exportFailure": "none",
            "changes": 0,
            "model": self._store.put(package.model),
        }
        if existing is not None:
            existing["private"].update(private)
            self._state.put("resources", database_id, existing)
            return
        objective = request.get("serviceObjectiveName") or "S0"
        sku, objective, max_size = normalize_sku({"name": objective})
        doc = _database_doc(
            database_id,
            name,
            server["location"],
            sku,
            objective,
            int(request.get("maxSizeBytes") or max_size),
            ctx.state.now(),
        )
        self._state.put("resources", database_id, {"doc": doc, "private": private})


# -- documents and requests ----------------------------------------------------------------------


def normalize_sku(requested: Any) -> tuple[JsonDict, str, int]:
    """``(sku, currentServiceObjectiveName, default maxSizeBytes)`` for a requested sku (default S0)."""
    requested = requested if isinstance(requested, dict) else {}
    name = str(requested.get("name") or "S0")
    capacity = requested.get("capacity")
    if name in _DTU_OBJECTIVES:
        tier, dtus, max_size = _DTU_OBJECTIVES[name]
        return {"name": tier, "tier": tier, "capacity": dtus}, name, max_size
    if name in ("Basic", "Standard", "Premium"):
        for objective, (tier, dtus, max_size) in _DTU_OBJECTIVES.items():
            if tier == name and (capacity is None or dtus == capacity):
                return {"name": tier, "tier": tier, "capacity": dtus}, objective, max_size
    found = _VCORE.match(name)
    if found:
        prefix, serverless, family, cores = found.groups()
        cores_value = int(cores or capacity or 2)
        tier = _VCORE_TIERS[prefix.upper()]
        sku_name = f"{prefix.upper()}{'_S' if serverless else ''}_{family}"
        sku = {"name": sku_name, "tier": tier, "family": family, "capacity": cores_value}
        return sku, f"{sku_name}_{cores_value}", 32 * 1024**3
    return dict(requested) | {"name": name}, name, 32 * 1024**3


def _database_doc(
    database_id: str,
    name: str,
    location: str,
    sku: JsonDict,
    objective: str,
    max_size: int,
    created: dt.datetime,
    *,
    kind: str = "v12.0,user",
    collation: str | None = None,
) -> JsonDict:
    collation = collation or "SQL_Latin1_General_CP1_CI_AS"
    properties: JsonDict = {
        "collation": collation,
        "maxSizeBytes": max_size,
        "status": "Online",
        "databaseId": str(uuid.uuid4()),
        "creationDate": az_time(created),
        "currentServiceObjectiveName": objective,
        "requestedServiceObjectiveName": objective,
        "defaultSecondaryLocation": "northeurope" if location_key(location) != "northeurope" else "westeurope",
        "catalogCollation": "SQL_Latin1_General_CP1_CI_AS",
        "zoneRedundant": False,
        "readScale": "Disabled",
        "currentSku": dict(sku),
        "currentBackupStorageRedundancy": "Geo",
        "requestedBackupStorageRedundancy": "Geo",
        "maintenanceConfigurationId": "/subscriptions/00000000-0000-0000-0000-000000000000/providers/"
        "Microsoft.Maintenance/publicMaintenanceConfigurations/SQL_Default",
        "isLedgerOn": False,
        "isInfraEncryptionEnabled": False,
    }
    if kind == "v12.0,user":
        properties["earliestRestoreDate"] = az_time(created + dt.timedelta(minutes=30))
    return {
        "sku": dict(sku),
        "kind": kind,
        "properties": properties,
        "location": location,
        "id": database_id,
        "name": name,
        "type": DATABASE_TYPE,
    }


def database_size(record: JsonDict) -> int:
    """Reported size: the features override, else the table data plus a fixed overhead (8 MiB)."""
    features = record["private"].get("features") or {}
    if features.get("reportedSizeBytes"):
        return int(features["reportedSizeBytes"])
    return sum(int(t.get("bytes") or 0) for t in record["private"].get("tables", [])) + 8 * 1024 * 1024


def _unreadable_table(package: Package) -> tuple[int, str] | None:
    """The first table whose bcp data ends inside a row (its index, why); tables of types the codec
    does not read (``decimal``) are taken as they are."""
    for index, (schema, data) in enumerate(package.tables):
        try:
            decode_rows(schema.columns, data)
        except BacpacError as error:
            if "truncated" in str(error) or "length prefix" in str(error):
                return index, str(error)
        except UnicodeDecodeError:
            continue
    return None


def _row_count(schema: TableSchema, data: bytes) -> int | None:
    if not data:
        return 0
    try:
        return len(decode_rows(schema.columns, data))
    except (BacpacError, UnicodeDecodeError):
        return None


def _external_name(reference: JsonDict) -> str:
    parts = [
        reference.get(k) for k in ("referencedServer", "referencedDatabase", "referencedSchema", "referencedEntity")
    ]
    return ".".join(f"[{p}]" for p in parts if p)


def _import_export_request(body: JsonDict, *, new_database: bool) -> JsonDict:
    """Validate an ExportDatabaseDefinition / Import*DatabaseDefinition body (flat, not under properties)."""
    required = ["storageKeyType", "storageKey", "storageUri", "administratorLogin"]
    if new_database:
        required.append("databaseName")
    for field in required:
        if not isinstance(body.get(field), str) or not body[field]:
            raise ArmError(
                400,
                "InvalidParameterValue",
                f"Invalid value given for parameter {field[0].upper() + field[1:]}. Specify a valid parameter value.",
            )
    if body["storageKeyType"] not in ("StorageAccessKey", "SharedAccessKey"):
        raise ArmError(
            400,
            "InvalidParameterValue",
            f"storageKeyType '{body['storageKeyType']}' is not simulated; use StorageAccessKey (an account key) or "
            "SharedAccessKey (a SAS token).",
        )
    parts = urlsplit(body["storageUri"])
    blob_name = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if parts.scheme not in ("http", "https") or parts.path.count("/") < 2 or not blob_name:
        raise ArmError(
            400,
            "InvalidParameterValue",
            "Invalid value given for parameter StorageUri: give the blob URL https://<account>.blob.core.windows.net/"
            "<container>/<name>.bacpac (path-style http://127.0.0.1:<port>/<account>/<container>/<name> locally).",
        )
    if blob_name.endswith(".") or len(blob_name) >= 128:
        raise ArmError(
            400, "InvalidParameterValue", "The blob name must be shorter than 128 characters and must not end with '.'."
        )
    if parts.query:
        raise ArmError(400, "InvalidParameterValue", "StorageUri must not carry a query; pass a SAS as storageKey.")
    return body


def _operation_result(
    request_id: str,
    request_type: str,
    queued: dt.datetime,
    modified: dt.datetime,
    server: JsonDict,
    database: str,
    blob_uri: str,
    *,
    resource_id: str,
) -> JsonDict:
    kind = "databases/" if request_type == "Export" else ""
    return {
        "properties": {
            "requestId": request_id,
            "requestType": request_type,
            "queuedTime": _legacy_time(queued),
            "lastModifiedTime": _legacy_time(modified),
            "blobUri": blob_uri,
            "serverName": server["properties"]["fullyQualifiedDomainName"],
            "databaseName": database,
            "status": "Completed",
            "privateEndpointConnections": [],
        },
        "id": resource_id,
        "name": request_id,
        "type": f"Microsoft.Sql/servers/{kind}importExportOperationResults",
    }


def _job_error(request_id: str, reason: str) -> JsonDict:
    return {
        "code": "ImportExportJobError",
        "message": f"The ImportExport operation with Request Id '{request_id}' failed due to '{reason}'.",
    }


# -- the storage account behind storageUri (Azurite locally) -------------------------------------


def _blob_client(request: JsonDict) -> Any:
    from azure.storage.blob import BlobClient

    uri = str(request["storageUri"])
    key = str(request["storageKey"])
    options: JsonDict = {"retry_total": 1, "connection_timeout": 10, "read_timeout": 120}
    if request["storageKeyType"] == "SharedAccessKey":
        return BlobClient.from_blob_url(f"{uri}?{key.lstrip('?')}", **options)
    parts = urlsplit(uri)
    host = parts.hostname or ""
    account = host.split(".", 1)[0] if ".blob." in host else parts.path.lstrip("/").split("/", 1)[0]
    return BlobClient.from_blob_url(uri, credential={"account_name": account, "account_key": key}, **options)


def _storage_failure(error: Exception) -> ImportExportFailure:
    """Azure's wording; only the status and error code travel (SDK messages can hold the SAS URL)."""
    from azure.core.exceptions import HttpResponseError

    if isinstance(error, HttpResponseError) and error.status_code:
        code = getattr(error, "error_code", None) or ""
        reason = {403: "Forbidden", 404: "Not Found", 409: "Conflict"}.get(error.status_code, "Error")
        detail = f" ({code})" if code else ""
        return ImportExportFailure(
            "An unexpected error was encountered while trying to access Azure Storage: The remote server returned "
            f"an error: ({error.status_code}) {reason}{detail}."
        )
    return ImportExportFailure(
        "An unexpected error was encountered while trying to access Azure Storage: Unable to connect to the remote "
        f"server ({type(error).__name__})."
    )


def _write_blob(request: JsonDict, data: bytes) -> None:
    from azure.core.exceptions import AzureError

    try:
        _blob_client(request).upload_blob(data, overwrite=True)
    except (AzureError, ValueError, OSError) as error:
        raise _storage_failure(error) from None


def _read_blob(request: JsonDict) -> bytes:
    from azure.core.exceptions import AzureError

    try:
        data: bytes = _blob_client(request).download_blob().readall()
    except (AzureError, ValueError, OSError) as error:
        raise _storage_failure(error) from None
    return data


# -- admin API: /_bulwark/sql/... ---------------------------------------------------------------

DEFAULT_EXTERNAL_REFERENCE: JsonDict = {
    "referencingObject": "[dbo].[vArchivedOrders]",
    "referencingType": "VIEW",
    "referencedServer": None,
    "referencedDatabase": "ArchiveDb",
    "referencedSchema": "dbo",
    "referencedEntity": "Orders",
}
DEFAULT_UNSUPPORTED_PRINCIPAL: JsonDict = {
    "name": "CONTOSO\\backup-operators",
    "type": "WINDOWS_GROUP",
    "authenticationType": "WINDOWS",
}


class SqlAdmin:
    """Admin routes for simulated databases; ``db`` is a database resource id."""

    def __init__(self, state: StateStore, store: TableStore) -> None:
        self._state = state
        self._store = store

    def routes(self) -> dict[tuple[str, str], Callable[[Request], Response]]:
        return {
            ("GET", "/sql/catalog"): self._catalog,
            ("PATCH", "/sql/catalog"): self._patch_catalog,
            ("POST", "/sql/fail"): self._fail,
            ("POST", "/sql/change"): self._change,
            ("POST", "/sql/tables"): self._populate,
        }

    def _record(self, request: Request) -> JsonDict:
        target = request.args.get("db", "")
        record = self._state.get("resources", target) if target else None
        if record is None or record["doc"].get("type") != DATABASE_TYPE:
            raise AdminError(404, f"no SQL database {target!r} (give its resource id)")
        return record

    def catalog(self, record: JsonDict) -> JsonDict:
        private = record["private"]
        features = private.get("features") or {}
        return {
            "database": record["doc"]["id"],
            "system": bool(private.get("system")),
            "externalReferences": features.get("externalReferences") or [],
            "unsupportedPrincipals": features.get("unsupportedPrincipals") or [],
            "sizeBytes": database_size(record),
            "exportFailure": private.get("exportFailure", "none"),
            "changes": private.get("changes", 0),
            "tables": [
                {
                    "schema": t["schema"],
                    "name": t["name"],
                    "rows": t.get("rows"),
                    "bytes": t.get("bytes"),
                    "sha256": t["data"],
                    "columns": [c["name"] for c in t["columns"]],
                }
                for t in private.get("tables", [])
            ],
        }

    def _catalog(self, request: Request) -> Response:
        return json_response(self.catalog(self._record(request)))

    def _patch_catalog(self, request: Request) -> Response:
        body = admin_body(request)
        allowed = {"externalReferences", "unsupportedPrincipals", "reportedSizeBytes"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise AdminError(400, f"unknown catalog fields {unknown}; use {sorted(allowed)}")
        with self._state.lock:
            record = self._record(request)
            features = dict(record["private"].get("features") or {})
            features.update(body)
            record["private"]["features"] = features
            self._state.put("resources", record["doc"]["id"], record)
        return json_response(self.catalog(record))

    def _fail(self, request: Request) -> Response:
        mode = str(admin_body(request).get("mode", ""))
        if mode not in FAILURE_MODES:
            raise AdminError(400, f"unknown export failure mode {mode!r}; use one of {', '.join(FAILURE_MODES)}")
        with self._state.lock:
            record = self._record(request)
            private = record["private"]
            features = dict(private.get("features") or {})
            if mode == "none":
                features.pop("externalReferences", None)
                features.pop("unsupportedPrincipals", None)
                private["exportFailure"] = "none"
            elif mode == "external-references":
                features["externalReferences"] = features.get("externalReferences") or [DEFAULT_EXTERNAL_REFERENCE]
            elif mode == "unsupported-logins":
                features["unsupportedPrincipals"] = features.get("unsupportedPrincipals") or [
                    DEFAULT_UNSUPPORTED_PRINCIPAL
                ]
            else:
                private["exportFailure"] = mode
            private["features"] = features
            self._state.put("resources", record["doc"]["id"], record)
        return json_response(self.catalog(record))

    def _change(self, request: Request) -> Response:
        body = admin_body(request)
        count = int(body.get("rows", 10))
        if count <= 0:
            raise AdminError(400, "rows must be positive")
        with self._state.lock:
            record = self._record(request)
            tables = record["private"].get("tables") or []
            if not tables:
                raise AdminError(409, f"{record['doc']['id']} has no tables; fill it with POST /_bulwark/sql/tables")
            wanted = body.get("table")
            index = 0
            if wanted:
                schema, name = split_name(str(wanted))
                matches = [
                    i
                    for i, t in enumerate(tables)
                    if (t["schema"].lower(), t["name"].lower()) == (schema.lower(), name.lower())
                ]
                if not matches:
                    known = ", ".join(f"{t['schema']}.{t['name']}" for t in tables)
                    raise AdminError(404, f"no table {wanted!r} in the database; tables: {known}")
                index = matches[0]
            generation = int(record["private"].get("changes", 0)) + 1
            try:
                tables[index], changed = change_rows(tables[index], count, generation, self._store)
            except SqlDataError as error:
                raise AdminError(409, str(error)) from error
            record["private"]["changes"] = generation
            self._state.put("resources", record["doc"]["id"], record)
        table = tables[index]
        return json_response(
            {
                "table": f"{table['schema']}.{table['name']}",
                "rowsChanged": changed,
                "sha256": table["data"],
                "changes": generation,
            }
        )

    def _populate(self, request: Request) -> Response:
        body = admin_body(request)
        specs = body.get("tables")
        if specs is None:
            preset = str(body.get("preset", ""))
            if preset not in PRESETS:
                raise AdminError(400, f"give tables or a preset ({', '.join(sorted(PRESETS))})")
            specs = PRESETS[preset]
        if not isinstance(specs, list):
            raise AdminError(400, "tables must be a list of {name, kind, rows}")
        with self._state.lock:
            record = self._record(request)
            if record["private"].get("system"):
                raise AdminError(409, "master holds no user tables")
            if record["private"].get("tables") and not body.get("replace"):
                raise AdminError(409, f"{record['doc']['id']} already has tables; pass replace=true to overwrite")
            seed = str(body.get("seed", record["doc"]["name"]))
            try:
                tables = [generate_table(spec, seed, self._store) for spec in specs]
            except SqlDataError as error:
                raise AdminError(400, str(error)) from error
            record["private"]["tables"] = tables
            record["private"].pop("model", None)
            self._state.put("resources", record["doc"]["id"], record)
        return json_response(self.catalog(record), 201)
