"""Call the app's functions the way the Python worker does.

The worker decodes each trigger payload with the azure-functions converters, passes bindings as
keyword arguments named after them (plus ``context`` when the function asks for one), runs
``async def`` functions on its one event loop and plain functions on threads, and encodes the
return value with the trigger's converter. This module does the same with the same converters:

* orchestrators get the extension's context JSON through ``OrchestrationTriggerConverter`` and
  answer with the OrchestratorState JSON (or raise with it after ``$OutOfProcData$:``);
* activities get their input through ``ActivityTriggerConverter`` and their result is encoded
  by it (the SDK's own ``df_dumps``/``df_loads``);
* HTTP functions get a ``func.HttpRequest`` built by ``HttpRequestConverter`` from the host's
  request datum; their result goes through ``HttpResponseConverter``;
* timer functions get a ``func.TimerRequest`` from the host's timer JSON.

A ``durableClient`` binding receives the client JSON string the extension would pass; the SDK's
own middleware turns it into a ``DurableOrchestrationClient``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from azure.durable_functions.models.utils import http_utils as sdk_http
from azure.functions import Context, meta
from azure.functions._abc import RetryContext, RpcException, TraceContext
from azure.functions.durable_functions import ActivityTriggerConverter, OrchestrationTriggerConverter
from azure.functions.http import HttpRequestConverter, HttpResponseConverter
from azure.functions.timer import TimerRequestConverter

from .function_index import FunctionSpec

__all__ = ["ActivityResult", "FunctionInvoker", "HttpReply", "HttpRequestData"]

_OUT_OF_PROC_LABEL = "$OutOfProcData$:"


@dataclass(frozen=True)
class ActivityResult:
    ok: bool
    result: str | None = None
    """JSON text of the return value (``df_dumps``), when ``ok``."""
    reason: str | None = None
    details: str | None = None


@dataclass(frozen=True)
class HttpRequestData:
    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    route_params: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class FunctionInvoker:
    """Runs user functions; owns the event loop that ``async def`` functions share."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="functions-event-loop", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the event loop, closing the SDK's shared HTTP session first if it made one."""
        if self._loop.is_closed():
            return
        try:
            # azure-functions-durable keeps one aiohttp session per process, bound to the loop that
            # created it; close it with our loop so a later runtime in this process starts clean.
            closer = getattr(sdk_http, "_close_session", None)
            if closer is not None:
                asyncio.run_coroutine_threadsafe(closer(), self._loop).result(timeout=10)
        except Exception:  # closing is best effort; the loop is stopped either way
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # -- generic call ------------------------------------------------------------------------

    def call(self, spec: FunctionSpec, arguments: dict[str, Any]) -> Any:
        """Call ``spec`` with ``arguments`` (binding name -> value) and return its result."""
        kwargs = dict(arguments)
        if spec.wants_context:
            kwargs["context"] = InvocationContext(spec.name)
        function = spec.callable
        if inspect.iscoroutinefunction(function):
            return self._await(function(**kwargs))
        result = function(**kwargs)
        if inspect.isawaitable(result):
            return self._await(result)
        return result

    def _await(self, awaitable: Any) -> Any:
        async def run() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    # -- per trigger ---------------------------------------------------------------------------

    def run_orchestrator(self, spec: FunctionSpec, context_json: str) -> dict[str, Any]:
        """One orchestrator episode: the extension's context JSON in, OrchestratorState out."""
        context = OrchestrationTriggerConverter.decode(
            meta.Datum(type="string", value=context_json), trigger_metadata=None
        )
        try:
            output = self.call(spec, {spec.trigger_parameter: context})
        except Exception as exc:
            message = str(exc)
            if _OUT_OF_PROC_LABEL in message:
                text, _, state_json = message.partition(_OUT_OF_PROC_LABEL)
                state: dict[str, Any] = json.loads(state_json)
                state.setdefault("error", text.strip())
                return state
            return {"isDone": False, "actions": [], "error": f"{type(exc).__name__}: {exc}"}
        encoded = OrchestrationTriggerConverter.encode(output, expected_type=None)
        value = encoded.value
        decoded: dict[str, Any] = json.loads(value) if isinstance(value, str | bytes) else value
        return decoded

    def run_activity(self, spec: FunctionSpec, name: str, input_json: str | None) -> ActivityResult:
        """Run an activity; failures become the reason/details of a TaskFailed event."""
        try:
            argument = ActivityTriggerConverter.decode(
                meta.Datum(type="json", value=input_json if input_json is not None else "null"),
                trigger_metadata=None,
            )
            result = self.call(spec, {spec.trigger_parameter: argument})
            encoded = ActivityTriggerConverter.encode(result, expected_type=None)
        except Exception as exc:
            return ActivityResult(
                ok=False,
                reason=f"Activity function '{name}' failed: {type(exc).__name__}: {exc}",
                details="".join(traceback.format_exception(exc, limit=-8)),
            )
        return ActivityResult(ok=True, result=str(encoded.value))

    def run_http(self, spec: FunctionSpec, request: HttpRequestData, client_json: str | None) -> HttpReply:
        """Run an HTTP-triggered function; an unhandled exception is a 500, as on Azure."""
        datum = meta.Datum(
            type="http",
            value={
                "method": meta.Datum(type="string", value=request.method),
                "url": meta.Datum(type="string", value=request.url),
                "headers": {k: meta.Datum(type="string", value=v) for k, v in request.headers.items()},
                "query": {k: meta.Datum(type="string", value=v) for k, v in request.query.items()},
                "params": {k: meta.Datum(type="string", value=v) for k, v in request.route_params.items()},
                "body": meta.Datum(type="bytes", value=request.body),
            },
        )
        arguments: dict[str, Any] = {spec.trigger_parameter: HttpRequestConverter.decode(datum, trigger_metadata=None)}
        if spec.client_parameter:
            arguments[spec.client_parameter] = client_json
        result = self.call(spec, arguments)
        return _http_reply(result)

    def run_timer(self, spec: FunctionSpec, timer_json: str, client_json: str | None) -> None:
        arguments: dict[str, Any] = {
            spec.trigger_parameter: TimerRequestConverter.decode(
                meta.Datum(type="json", value=timer_json), trigger_metadata=None
            )
        }
        if spec.client_parameter:
            arguments[spec.client_parameter] = client_json
        self.call(spec, arguments)


def _http_reply(result: Any) -> HttpReply:
    if result is None:
        return HttpReply(status=204)
    encoded = HttpResponseConverter.encode(result, expected_type=None)
    if encoded.type == "string":
        text = str(encoded.value)
        return HttpReply(
            status=200,
            headers=[("Content-Type", "text/plain; charset=utf-8")],
            body=text.encode("utf-8"),
        )
    value: dict[str, Any] = encoded.value
    headers = [(name, str(header.value)) for name, header in value["headers"].items()]
    for cookie in value.get("cookies") or []:
        headers.extend(("Set-Cookie", morsel.OutputString()) for morsel in cookie.values())
    body = value["body"].value
    return HttpReply(
        status=int(value["status_code"].value),
        headers=headers,
        body=body if isinstance(body, bytes) else str(body).encode("utf-8"),
    )


class _TraceContext(TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _NoException(RpcException):
    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class _RetryContext(RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> RpcException:
        return _NoException()


class InvocationContext(Context):
    """The ``func.Context`` passed to functions that declare a ``context`` parameter."""

    def __init__(self, function_name: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._local = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        storage: type[threading.local] = self._local  # type: ignore[assignment]
        return storage

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def trace_context(self) -> TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> RetryContext:
        return _RetryContext()
