"""The local Functions host: wires the app, the engine, the HTTP listeners and the timers.

This is the composition root; everything else receives its collaborators. Typical use::

    host = LocalFunctionsHost.from_module("function_app", HostOptions(state_dir=Path(".local/rt")))
    with host:
        ...  # HTTP on host.base_url, orchestrations through host.engine
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from azure.durable_functions.models.utils.df_serialization import df_dumps
from azure.functions import FunctionRegister

from .clock import Clock, SystemClock
from .engine import DurableEngine, EngineOptions
from .function_index import FunctionIndex, TimerFunction, index_app, load_app
from .host_config import HostConfig, load_host_config
from .http_server import HttpEndpoints, HttpListener, Request
from .invoker import FunctionInvoker, HttpReply
from .management import ManagementApi, ManagementUrls
from .schedule import TimerTriggerRunner
from .store import TERMINAL_STATUSES, InstanceRecord, StateStore

__all__ = ["HostOptions", "LocalFunctionsHost"]

_LOG = logging.getLogger("bulwark_local.runtime")


@dataclass(frozen=True)
class HostOptions:
    state_dir: Path | None = None
    """Where ``state.sqlite`` lives; ``None`` keeps state in memory (lost on exit)."""
    host: str = "127.0.0.1"
    port: int = 7071
    """Public port; 0 picks a free one."""
    key: str | None = None
    """The function/host key; without one, keys are not checked (as under Core Tools)."""
    clock: Clock | None = None
    paranoid: bool = False
    max_concurrent_activities: int | None = None
    """Overrides ``maxConcurrentActivityFunctions`` from host.json."""
    timers: bool = True
    """Fire timer triggers (tests that drive orchestrations alone may turn them off)."""


class LocalFunctionsHost:
    """Runs one function app: HTTP triggers, timer triggers and Durable orchestrations."""

    def __init__(
        self, app: FunctionRegister, options: HostOptions | None = None, *, app_root: Path | None = None
    ) -> None:
        self.options = options or HostOptions()
        self.functions: FunctionIndex = index_app(app, app_root=app_root)
        self.config: HostConfig = load_host_config(app_root)
        self.clock: Clock = self.options.clock or SystemClock()
        state_path = self.options.state_dir / "state.sqlite" if self.options.state_dir else None
        self.store = StateStore(state_path)
        self.invoker = FunctionInvoker()
        self.engine = DurableEngine(
            functions=self.functions,
            invoker=self.invoker,
            store=self.store,
            clock=self.clock,
            options=EngineOptions(
                max_concurrent_activities=(
                    self.options.max_concurrent_activities or self.config.max_concurrent_activities
                ),
                paranoid=self.options.paranoid,
            ),
        )
        self._public = HttpListener(self.options.host, self.options.port, self._serve_public, name="http")
        self._rpc = HttpListener("127.0.0.1", 0, self._serve_rpc, name="durable-rpc")
        self.urls = ManagementUrls(
            public_base=f"{self._public.origin}/runtime/webhooks/durabletask",
            rpc_base=f"{self._rpc.origin}/durabletask/",
            hub_name=self.config.hub_name,
            key=self.options.key,
        )
        self._endpoints = HttpEndpoints(
            functions=self.functions.http,
            route_prefix=self.config.route_prefix,
            invoker=self.invoker,
            management=ManagementApi(self.engine, self.urls),
            urls=self.urls,
            key=self.options.key,
        )
        self._timers = [
            TimerTriggerRunner(spec, clock=self.clock, store=self.store, invoke=self._fire_timer)
            for spec in (self.functions.timers if self.options.timers else ())
        ]
        self._started = False

    @classmethod
    def from_module(cls, target: str, options: HostOptions | None = None) -> LocalFunctionsHost:
        """Load ``module[:attribute]`` as the worker would and build a host for it."""
        app, module = load_app(target)
        module_file = getattr(module, "__file__", None)
        return cls(app, options, app_root=Path(module_file).resolve().parent if module_file else None)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalFunctionsHost:
        self._rpc.start()
        self._public.start()
        self.engine.start()
        for timer in self._timers:
            timer.start()
        self._started = True
        _LOG.info(
            "runtime ready on %s: %d HTTP, %d timer, %d orchestrator and %d activity functions; keys %s; state %s",
            self.base_url,
            len(self.functions.http),
            len(self.functions.timers),
            len(self.functions.orchestrators),
            len(self.functions.activities),
            "required" if self.options.key else "not checked",
            self.options.state_dir or "in memory",
        )
        return self

    def stop(self) -> None:
        for timer in self._timers:
            timer.stop()
        if self._started:
            self._public.stop()
            self.engine.stop()
            self._rpc.stop()
        self.invoker.close()
        self.store.close()
        self._started = False

    def __enter__(self) -> LocalFunctionsHost:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._public.origin

    @property
    def port(self) -> int:
        return self._public.port

    # -- conveniences for tests and scripts ----------------------------------------------------

    def start_new(self, orchestrator: str, client_input: Any = None, *, instance_id: str | None = None) -> str:
        """Start an orchestration with ``client_input`` serialised as the Python client does."""
        body = json.dumps(df_dumps(client_input)) if client_input is not None else None
        return self.engine.start_new(orchestrator, input_json=body, instance_id=instance_id)

    def raise_event(self, instance_id: str, event_name: str, data: Any = None) -> None:
        """Raise an event whose data reaches ``wait_for_external_event`` unchanged."""
        self.engine.raise_event(instance_id, event_name, json.dumps(data))

    def wait_for_completion(self, instance_id: str, *, timeout: float = 30.0) -> InstanceRecord:
        return self.engine.wait_for_status(instance_id, TERMINAL_STATUSES, timeout=timeout)

    # -- wiring ------------------------------------------------------------------------------------

    def _serve_public(self, request: Request) -> HttpReply:
        return self._endpoints.public(request)

    def _serve_rpc(self, request: Request) -> HttpReply:
        return self._endpoints.rpc(request)

    def _fire_timer(self, spec: TimerFunction, timer_json: str) -> None:
        client = self.urls.client_binding() if spec.client_parameter else None
        self.invoker.run_timer(spec, timer_json, client)
