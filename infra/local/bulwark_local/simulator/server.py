"""The simulator process: two threaded HTTPS servers on loopback, sharing one state.

- ARM port: ``/subscriptions/...`` routed through each provider's route table, plus the admin API
  under ``/_bulwark/``. Any ``Authorization: Bearer <token>`` is accepted; none is a 401.
- Data-plane port: managed-disk SAS blobs and the VHD storage accounts (dataplane.py).
- Key Vault secrets on the ARM port under ``/keyvault/{vault}`` (keyvault.py).

A provider is a class with ``routes() -> list[Route]``; compute, network, SQL and Container Instances
plug in the same way (see ``Simulator._providers``), sharing ``Operations`` and the ``StateStore``.
``faults.Faults`` sees every ARM call before it is routed and every data-plane request.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from .aci import AciProvider
from .admin import PREFIX, AdminApi
from .arm import ArmError, Context, Operations, Route, match, resource_group_routes, route
from .compute import ComputeProvider
from .dataplane import DataPlane, SasIssuer
from .faults import Faults, reset_midway
from .keyvault import KeyVaultSecrets
from .network import NetworkProvider
from .pagestore import PageStore
from .sql import SqlAdmin, SqlProvider
from .sqldata import TableStore
from .state import JsonDict, StateStore
from .tls import TlsFiles, ensure_tls

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_log = logging.getLogger("bulwark_local.simulator")


class Simulator:
    def __init__(self, state_dir: Path, *, host: str = "127.0.0.1", arm_port: int = 0, data_port: int = 0) -> None:
        self.state_dir = state_dir
        self._host = host
        self._ports = (arm_port, data_port)
        self._servers: list[BaseWSGIServer] = []
        self._threads: list[threading.Thread] = []
        self.tls: TlsFiles | None = None
        self.arm_url = ""
        self.data_url = ""
        self._pages: PageStore | None = None
        self._aci: AciProvider | None = None

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tls = ensure_tls(self.state_dir / "tls")
        context = self.tls.server_context()
        state = StateStore(self.state_dir)
        pages = PageStore(self.state_dir / "pages")
        self._pages = pages
        data_server = make_server(self._host, self._ports[1], self._data_app, threaded=True, ssl_context=context)
        self.data_url = f"https://{self._host}:{data_server.server_port}"
        sas = SasIssuer(state, pages, self.data_url)
        self._dataplane = DataPlane(state, pages, sas)
        self._state = state
        self._operations = Operations(state)
        self._faults = Faults(state)
        tables = TableStore(self.state_dir / "sql" / "tables")
        self._sql = SqlProvider(state, tables)
        self._aci = AciProvider(state, self.state_dir / "aci", str(self.tls.ca_cert))
        self._routes = self._providers(state, pages, sas)
        extra = {**SqlAdmin(state, tables).routes(), **self._aci.admin_routes(), **self._faults.admin_routes()}
        self._admin = AdminApi(state, pages, self.endpoints, extra)
        self._vaults = KeyVaultSecrets(self.state_dir)
        arm_server = make_server(self._host, self._ports[0], self._arm_app, threaded=True, ssl_context=context)
        self.arm_url = f"https://{self._host}:{arm_server.server_port}"
        for server in (arm_server, data_server):
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"sim-{server.server_port}",
                daemon=True,
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._aci is not None:
            self._aci.shutdown()  # no container process outlives the simulator
        if self._pages is not None:
            self._pages.close()

    def endpoints(self) -> JsonDict:
        assert self.tls is not None
        return {"arm": self.arm_url, "data": self.data_url, "caBundle": str(self.tls.ca_cert)}

    def _providers(self, state: StateStore, pages: PageStore, sas: SasIssuer) -> list[Route]:
        operations = "/subscriptions/{subscription}/providers/{namespace}/locations/{location}/{collection}/{op_id}"
        # Provider routes first: the generic operation route would also match e.g. .../runCommands/{id}.
        table: list[Route] = [
            *resource_group_routes(),
            *ComputeProvider(state, pages, sas).routes(),
            *NetworkProvider(state).routes(),
            *self._sql.routes(),
            *(self._aci.routes() if self._aci else []),
            route(
                "GET",
                operations,
                lambda ctx: ctx.operations.poll(
                    ctx, ctx.params["op_id"], status_only=ctx.params["namespace"].lower() == "microsoft.network"
                ),
            ),
        ]
        return table

    # -- WSGI apps -----------------------------------------------------------------------------

    def _arm_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith(PREFIX + "/") or request.path == PREFIX:
            response = self._admin.handle(request)
        elif self._vaults.handles(request.path):
            response = self._vaults.handle(request)  # Key Vault's own auth challenge, not ARM's 401
        else:
            response = self._arm(request)
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        response.headers["x-ms-correlation-request-id"] = str(uuid.uuid4())
        _log.debug("%s %s -> %s", request.method, request.path, response.status_code)
        return response(environ, start_response)

    def _arm(self, request: Request) -> Response:
        try:
            authorization = request.headers.get("Authorization", "")
            if not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
                raise ArmError(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing or not a Bearer token.",
                )
            found = match(self._routes, request.method, request.path)
            if found is None:
                raise _unknown(request)
            handler, params = found
            fault = self._faults.before_arm(request)
            if fault is not None:
                return fault
            ctx = Context(request, self._state, self._operations, params)
            response = handler.handler(ctx)
            self._faults.after_arm(request, response)
            return response
        except ArmError as error:
            return error.response()
        except Exception as error:  # an edge: the client gets Azure's 500 shape, the log the trace
            _log.exception("internal error on %s %s", request.method, request.path)
            return ArmError(500, "InternalServerError", f"Simulator error: {type(error).__name__}: {error}").response()

    def _data_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        fault = self._faults.data_fault(request)
        if isinstance(fault, Response):
            return fault(environ, start_response)
        try:
            response = self._dataplane.handle(request)
        except Exception:
            _log.exception("internal error on data plane %s %s", request.method, request.path)
            response = Response(b"", status=500)
        if fault == "reset" and response.status_code in (200, 206):
            return reset_midway(environ, start_response, response(environ, start_response))
        return response(environ, start_response)


def _unknown(request: Request) -> ArmError:
    parts = request.path.split("/")
    if "providers" in parts:
        namespace = parts[parts.index("providers") + 1] if len(parts) > parts.index("providers") + 1 else ""
        known = ("microsoft.compute", "microsoft.network", "microsoft.resources", "microsoft.sql",
                 "microsoft.containerinstance")  # fmt: skip
        if namespace.lower() not in known:
            return ArmError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for namespace '{namespace}' in the simulator.",
            )
        return ArmError(
            404,
            "InvalidResourceType",
            f"The resource type for {request.method} {request.path} could not be found in the namespace '{namespace}'.",
        )
    return ArmError(404, "NotFound", f"No route for {request.method} {request.path}.")
