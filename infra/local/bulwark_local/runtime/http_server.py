"""The runtime's HTTP endpoints, on the standard library's ``ThreadingHTTPServer``.

Two listeners, as on Azure:

* the public one (``--host``/``--port``) serves the app's HTTP triggers under ``/{routePrefix}/``,
  the management webhooks under ``/runtime/webhooks/durabletask/`` and ``/admin/host/ping``;
  functions with auth level ``function`` or ``admin`` and the webhooks need the host key (header
  ``x-functions-key`` or query ``code``) when one is configured, and answer 401 without it;
* the RPC one listens on 127.0.0.1 only, on a free port, and serves the same management API under
  ``/durabletask/`` without a key; it is the ``rpcBaseUrl`` the Durable client talks to.

Request logs name the method, path and status, never the query string (it may hold the key).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .function_index import AuthLevel, HttpFunction
from .invoker import FunctionInvoker, HttpReply, HttpRequestData
from .management import ManagementApi, ManagementUrls
from .routing import RouteTemplate

__all__ = ["HttpEndpoints", "HttpListener", "Request"]

_LOG = logging.getLogger("bulwark_local.runtime.http")
_WEBHOOK_PREFIX = "/runtime/webhooks/durabletask"
_RPC_PREFIX = "/durabletask"
_MAX_BODY = 100 * 1024 * 1024


class Request:
    """One HTTP request as the endpoints see it."""

    def __init__(self, method: str, target: str, headers: Mapping[str, str], body: bytes, origin: str) -> None:
        parts = urlsplit(target)
        self.method = method.upper()
        self.path = parts.path
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.headers = dict(headers)
        self.body = body
        self.url = origin + target


Handler = Callable[[Request], HttpReply]


class HttpEndpoints:
    """Routes requests to HTTP-triggered functions and the management API."""

    def __init__(
        self,
        *,
        functions: Sequence[HttpFunction],
        route_prefix: str,
        invoker: FunctionInvoker,
        management: ManagementApi,
        urls: ManagementUrls,
        key: str | None,
    ) -> None:
        self._routes = sorted(
            ((RouteTemplate.parse(f.route), f) for f in functions), key=lambda pair: pair[0].precedence
        )
        self._prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self._invoker = invoker
        self._management = management
        self._urls = urls
        self._key = key

    def public(self, request: Request) -> HttpReply:
        if request.path == "/admin/host/ping":
            return HttpReply(status=200)
        if request.path == _WEBHOOK_PREFIX or request.path.startswith(_WEBHOOK_PREFIX + "/"):
            if not self._authorised(request):
                return _unauthorised()
            return self._management.handle(
                request.method,
                request.path[len(_WEBHOOK_PREFIX) :],
                request.query,
                request.headers,
                request.body,
            )
        if self._prefix and not (request.path == self._prefix or request.path.startswith(self._prefix + "/")):
            return HttpReply(status=404)
        return self._function(request, request.path[len(self._prefix) :])

    def rpc(self, request: Request) -> HttpReply:
        if not request.path.startswith(_RPC_PREFIX + "/"):
            return HttpReply(status=404)
        return self._management.handle(
            request.method,
            request.path[len(_RPC_PREFIX) :],
            request.query,
            request.headers,
            request.body,
        )

    def _function(self, request: Request, path: str) -> HttpReply:
        method_mismatch = False
        for template, spec in self._routes:
            values = template.match(path)
            if values is None:
                continue
            if spec.methods is not None and request.method not in spec.methods:
                method_mismatch = True
                continue
            if spec.auth_level is not AuthLevel.ANONYMOUS and not self._authorised(request):
                return _unauthorised()
            data = HttpRequestData(
                method=request.method,
                url=request.url,
                headers=request.headers,
                query=request.query,
                route_params=values,
                body=request.body,
            )
            client = self._urls.client_binding() if spec.client_parameter else None
            try:
                return self._invoker.run_http(spec, data, client)
            except Exception:
                _LOG.exception("function %s failed", spec.name)
                return HttpReply(status=500)
        return HttpReply(status=405 if method_mismatch else 404)

    def _authorised(self, request: Request) -> bool:
        if self._key is None:
            return True
        supplied = request.query.get("code") or ""
        for name, value in request.headers.items():
            if name.lower() == "x-functions-key":
                supplied = value
        return hmac.compare_digest(supplied.encode(), self._key.encode())


def _unauthorised() -> HttpReply:
    return HttpReply(status=401)


class HttpListener:
    """A ``ThreadingHTTPServer`` on its own thread that hands every request to ``handler``."""

    def __init__(self, host: str, port: int, handler: Handler, *, name: str) -> None:
        listener = self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "bulwark-local-runtime"

            def _serve(self) -> None:
                started = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                if length > _MAX_BODY:
                    self._reply(HttpReply(status=413))
                    return
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    self.path,
                    {name: value for name, value in self.headers.items()},
                    body,
                    f"http://{self.headers['Host']}" if self.headers.get("Host") else listener.origin,
                )
                try:
                    reply = handler(request)
                except Exception:
                    _LOG.exception("%s %s failed", self.command, request.path)
                    reply = HttpReply(status=500)
                self._reply(reply)
                _LOG.info(
                    "%s %s -> %d (%.0f ms)",
                    self.command,
                    request.path,
                    reply.status,
                    (time.monotonic() - started) * 1000,
                )

            def _reply(self, reply: HttpReply) -> None:
                self.send_response(reply.status)
                for name, value in reply.headers:
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: object) -> None:
                return None  # requests are logged above, without query strings

        self._server = ThreadingHTTPServer((host, port), _RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        host = str(self._server.server_address[0])
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
