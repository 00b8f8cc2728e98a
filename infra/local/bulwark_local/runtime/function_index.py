"""Load a Python v2 function app and index its functions the way the Functions host does.

The Python worker imports the app module, finds the one ``FunctionRegister`` (a ``func.FunctionApp``
or ``df.DFApp``) among its globals, calls ``get_functions()`` and sends each function's
``function.json`` (``Function.get_dict_repr()``) to the host, which reads the bindings from it. This
module does exactly that and turns each binding list into a typed :class:`FunctionSpec`; nothing
is guessed from names or decorators.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

from azure.functions import FunctionRegister

from .errors import AppLoadError

__all__ = [
    "ActivityFunction",
    "AuthLevel",
    "FunctionIndex",
    "FunctionSpec",
    "HttpFunction",
    "OrchestratorFunction",
    "TimerFunction",
    "index_app",
    "load_app",
]

_TRIGGER_TYPES = {"httpTrigger", "timerTrigger", "orchestrationTrigger", "activityTrigger"}
_SUPPORTED_INPUTS = {"durableClient"}
_CONTEXT_PARAMETER = "context"


class AuthLevel(Enum):
    ANONYMOUS = "anonymous"
    FUNCTION = "function"
    ADMIN = "admin"


@dataclass(frozen=True)
class FunctionSpec:
    """What every indexed function has: its name, callable and binding names."""

    name: str
    callable: Callable[..., Any]
    trigger_parameter: str
    client_parameter: str | None = None
    """Name of the ``durableClient`` input binding, if the function has one."""
    wants_context: bool = False
    """The Python signature has a ``context`` parameter that is not a binding (``func.Context``)."""
    bindings: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class HttpFunction(FunctionSpec):
    route: str = ""
    methods: tuple[str, ...] | None = None
    """Upper-case methods the trigger accepts; ``None`` accepts every method."""
    auth_level: AuthLevel = AuthLevel.FUNCTION


@dataclass(frozen=True)
class TimerFunction(FunctionSpec):
    schedule: str = ""
    run_on_startup: bool = False
    use_monitor: bool | None = None
    """``None`` lets the runtime decide, as Azure does (on unless the period is under a minute)."""


@dataclass(frozen=True)
class OrchestratorFunction(FunctionSpec):
    @property
    def user_function(self) -> Callable[..., Any]:
        """The user's generator function (``Orchestrator.create`` keeps it on the handler)."""
        inner: Callable[..., Any] = getattr(self.callable, "orchestrator_function", self.callable)
        return inner


@dataclass(frozen=True)
class ActivityFunction(FunctionSpec):
    pass


@dataclass(frozen=True)
class FunctionIndex:
    """All functions of one app, by kind. Durable names are matched case-insensitively, like DTFx."""

    http: tuple[HttpFunction, ...]
    timers: tuple[TimerFunction, ...]
    orchestrators: Mapping[str, OrchestratorFunction]
    activities: Mapping[str, ActivityFunction]
    app_root: Path | None = None

    def orchestrator(self, name: str) -> OrchestratorFunction | None:
        return self.orchestrators.get(name.lower())

    def activity(self, name: str) -> ActivityFunction | None:
        return self.activities.get(name.lower())

    @property
    def count(self) -> int:
        return len(self.http) + len(self.timers) + len(self.orchestrators) + len(self.activities)


def load_app(target: str) -> tuple[FunctionRegister, ModuleType]:
    """Import ``module`` or ``module:attribute`` and return the function app it defines.

    Without an attribute the module must define exactly one ``FunctionRegister``, as the worker
    requires. The current directory is importable, as the app root is for the worker.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name:
        raise AppLoadError(f"no module given in {target!r}", hint="pass --app MODULE[:ATTRIBUTE]")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise AppLoadError(
            f"cannot import the function app module {module_name!r}: {type(exc).__name__}: {exc}",
            hint="run from the app's root directory, or pass a dotted module path that is importable",
        ) from exc
    if attribute:
        app = getattr(module, attribute, None)
        if not isinstance(app, FunctionRegister):
            raise AppLoadError(f"{module_name}.{attribute} is not a function app (func.FunctionApp or df.DFApp)")
        return app, module
    apps = [value for value in vars(module).values() if isinstance(value, FunctionRegister)]
    if len(apps) != 1:
        found = "no function app" if not apps else f"{len(apps)} function apps"
        raise AppLoadError(
            f"module {module_name!r} defines {found}; the worker needs exactly one",
            hint=f"pass --app {module_name}:ATTRIBUTE to choose one",
        )
    return apps[0], module


def index_app(app: FunctionRegister, *, app_root: Path | None = None) -> FunctionIndex:
    """Index ``app`` through ``app.get_functions()`` and each function's function.json bindings."""
    # get_functions() remembers the names it has seen to reject duplicates, so a second call on
    # the same app object (a second runtime in one test process) would reject every function.
    # The worker calls it once per process; start each indexing from a clean slate.
    app.functions_bindings = {}
    try:
        functions = app.get_functions()
    except ValueError as exc:
        raise AppLoadError(f"the function app does not index: {exc}") from exc

    http: list[HttpFunction] = []
    timers: list[TimerFunction] = []
    orchestrators: dict[str, OrchestratorFunction] = {}
    activities: dict[str, ActivityFunction] = {}
    for function in functions:
        name = function.get_function_name()
        if not name:
            raise AppLoadError("a function has no name")
        metadata = json.loads(function.get_function_json())
        bindings: list[dict[str, Any]] = list(metadata.get("bindings", []))
        spec = _build_spec(name, function.get_user_function(), bindings)
        if isinstance(spec, HttpFunction):
            http.append(spec)
        elif isinstance(spec, TimerFunction):
            timers.append(spec)
        elif isinstance(spec, OrchestratorFunction):
            durable_name = _durable_name(bindings, "orchestration", name)
            _add_unique(orchestrators, durable_name, spec, "orchestrator")
        elif isinstance(spec, ActivityFunction):
            durable_name = _durable_name(bindings, "activity", name)
            _add_unique(activities, durable_name, spec, "activity")
    return FunctionIndex(
        http=tuple(http),
        timers=tuple(timers),
        orchestrators=orchestrators,
        activities=activities,
        app_root=app_root,
    )


def _build_spec(name: str, fn: Callable[..., Any], bindings: list[dict[str, Any]]) -> FunctionSpec:
    triggers = [b for b in bindings if b.get("type") in _TRIGGER_TYPES]
    if len(triggers) != 1:
        kinds = sorted({str(b.get("type")) for b in bindings})
        raise AppLoadError(
            f"function {name!r} has bindings {kinds}; the local runtime serves HTTP, timer, "
            "orchestration and activity triggers",
            hint="run functions with other triggers on Azure or Core Tools",
        )
    trigger = triggers[0]
    client: str | None = None
    for binding in bindings:
        if binding is trigger or binding.get("name") == "$return":
            continue
        kind = binding.get("type")
        if binding.get("direction", "IN").upper() != "IN" or kind not in _SUPPORTED_INPUTS:
            raise AppLoadError(
                f"function {name!r} uses a {kind!r} binding, which the local runtime does not provide",
                hint="only durableClient input bindings are supported besides the trigger",
            )
        client = str(binding["name"])

    binding_names = {str(trigger["name"])} | ({client} if client else set())
    wants_context = _check_parameters(name, fn, binding_names)
    common: dict[str, Any] = {
        "name": name,
        "callable": fn,
        "trigger_parameter": str(trigger["name"]),
        "client_parameter": client,
        "wants_context": wants_context,
        "bindings": tuple(bindings),
    }
    kind = trigger["type"]
    if kind == "httpTrigger":
        methods = trigger.get("methods")
        return HttpFunction(
            **common,
            route=str(trigger.get("route") or name),
            methods=tuple(str(m).upper() for m in methods) if methods else None,
            auth_level=AuthLevel(str(trigger.get("authLevel", "function")).lower()),
        )
    if kind == "timerTrigger":
        return TimerFunction(
            **common,
            schedule=str(trigger.get("schedule", "")),
            run_on_startup=bool(trigger.get("runOnStartup", False)),
            use_monitor=trigger.get("useMonitor"),
        )
    if client:
        raise AppLoadError(f"durable function {name!r} cannot take a durableClient binding")
    if kind == "orchestrationTrigger":
        return OrchestratorFunction(**common)
    return ActivityFunction(**common)


def _check_parameters(name: str, fn: Callable[..., Any], binding_names: set[str]) -> bool:
    """The worker's load check: Python parameters and bindings must name the same things."""
    parameters = set(inspect.signature(fn).parameters)
    wants_context = _CONTEXT_PARAMETER in parameters and _CONTEXT_PARAMETER not in binding_names
    if wants_context:
        parameters.discard(_CONTEXT_PARAMETER)
    if parameters != binding_names:
        raise AppLoadError(
            f"cannot load function {name!r}: its parameters {sorted(parameters)} do not match "
            f"its bindings {sorted(binding_names)}",
            hint="name each parameter after its binding (input_name=, arg_name=, client_name=)",
        )
    return wants_context


def _durable_name(bindings: list[dict[str, Any]], key: str, default: str) -> str:
    for binding in bindings:
        if binding.get(key):
            return str(binding[key])
    return default


def _add_unique(table: dict[str, Any], name: str, spec: FunctionSpec, kind: str) -> None:
    if name.lower() in table:
        raise AppLoadError(f"two {kind} functions are named {name!r} (names ignore case)")
    table[name.lower()] = spec
