"""The function app indexes the way the Azure Functions Python worker indexes it.

``function_app.app.get_functions()`` is what the worker calls at start-up; each function's
function.json bindings are what the host reads. The expectations are derived, not listed, so that
adding a function does not mean editing this test:

* every trigger decorator in ``functions/**`` (AST) must be indexed with the binding it declares:
  ``route`` -> httpTrigger with that route and those methods (and an http output), ``timer_trigger``
  -> timerTrigger with a six-field NCRONTAB schedule, ``orchestration_trigger`` /
  ``activity_trigger`` -> orchestrationTrigger / activityTrigger named from ``functions/names.py``,
  ``durable_client_input`` -> a durableClient input; a decorated function that is not indexed means
  its blueprint is not registered in function_app.py;
* every Durable name an orchestrator or trigger calls (``call_activity*``, ``call_sub_orchestrator*``,
  ``start_new`` with ``names.X``) is registered with the right trigger;
* every registered orchestrator and activity takes its name from ``functions/names.py``.
"""

from __future__ import annotations

import ast
import importlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.infra.trees import ROOT

TRIGGERS = {
    "route": "httpTrigger",
    "timer_trigger": "timerTrigger",
    "schedule": "timerTrigger",
    "orchestration_trigger": "orchestrationTrigger",
    "activity_trigger": "activityTrigger",
    "entity_trigger": "entityTrigger",
}
INPUTS = {"durable_client_input": "durableClient"}
ACTIVITY_CALLS = {"call_activity", "call_activity_with_retry"}
ORCHESTRATOR_CALLS = {"call_sub_orchestrator", "call_sub_orchestrator_with_retry", "start_new"}


@dataclass
class Declared:
    """A function in functions/** as its decorators declare it."""

    where: str
    trigger: str
    arguments: dict[str, Any]
    inputs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class Indexed:
    name: str
    bindings: tuple[dict[str, Any], ...]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [b for b in self.bindings if b.get("type") == kind]


@pytest.fixture(scope="module")
def indexed() -> dict[tuple[str, str], Indexed]:
    """The app's functions, by the (module, name) of the user's Python function."""
    import function_app

    found: dict[tuple[str, str], Indexed] = {}
    names = Counter()
    # get_functions() rejects names it saw in an earlier call on the same app object (another test
    # in this process may have indexed it); the host indexes once per worker process: start afresh.
    function_app.app.functions_bindings = {}
    for function in function_app.app.get_functions():
        user = function.get_user_function()
        user = getattr(user, "orchestrator_function", user)  # Orchestrator.create keeps the generator here
        bindings = tuple(json.loads(function.get_function_json())["bindings"])
        found[(user.__module__, user.__qualname__)] = Indexed(function.get_function_name(), bindings)
        names[function.get_function_name()] += 1
    duplicates = sorted(name for name, count in names.items() if count > 1)
    assert not duplicates, f"function names registered twice: {duplicates}"
    return found


def _value(node: ast.expr, module: Any) -> Any:
    """A decorator argument's value, evaluated in its module (names.X, constants, literals)."""
    return eval(compile(ast.Expression(node), "<decorator>", "eval"), vars(module))


def declared_functions() -> dict[tuple[str, str], Declared]:
    found: dict[tuple[str, str], Declared] = {}
    for path in sorted((ROOT / "functions").rglob("*.py")):
        module_name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = None
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            trigger: tuple[str, dict[str, Any]] | None = None
            inputs: list[tuple[str, dict[str, Any]]] = []
            for decorator in node.decorator_list:
                if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
                    continue
                method = decorator.func.attr
                if method not in TRIGGERS and method not in INPUTS:
                    continue
                module = module or importlib.import_module(module_name)
                arguments = {k.arg: _value(k.value, module) for k in decorator.keywords if k.arg}
                if method == "route" and decorator.args:
                    arguments.setdefault("route", _value(decorator.args[0], module))
                if method in TRIGGERS:
                    assert trigger is None, f"{module_name}.{node.name} has two triggers"
                    trigger = (TRIGGERS[method], arguments)
                else:
                    inputs.append((INPUTS[method], arguments))
            if trigger is not None:
                found[(module_name, node.name)] = Declared(f"{path.relative_to(ROOT)}:{node.lineno}", *trigger, inputs)
            else:
                assert not inputs, f"{module_name}.{node.name} has input bindings but no trigger"
    return found


def durable_calls() -> dict[str, set[str]]:
    """Durable names the code calls, by the trigger they need: {"activityTrigger": {...}, ...}."""
    from functions import names

    calls: dict[str, set[str]] = {"activityTrigger": set(), "orchestrationTrigger": set()}
    for path in sorted((ROOT / "functions").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            first = node.args[0]
            if not (
                isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name) and first.value.id == "names"
            ):
                continue
            name = getattr(names, first.attr)
            if node.func.attr in ACTIVITY_CALLS:
                calls["activityTrigger"].add(name)
            elif node.func.attr in ORCHESTRATOR_CALLS:
                calls["orchestrationTrigger"].add(name)
    return calls


def test_every_declared_function_is_indexed_with_its_bindings(indexed: dict[tuple[str, str], Indexed]) -> None:
    declared = declared_functions()
    assert len(declared) >= 20, f"only {len(declared)} trigger decorators found in functions/"
    problems: list[str] = []
    for key, declaration in declared.items():
        function = indexed.get(key)
        if function is None:
            problems.append(f"{declaration.where} is not indexed: is its blueprint registered in function_app.py?")
            continue
        triggers = function.of_type(declaration.trigger)
        if len(triggers) != 1 or triggers[0].get("direction", "").upper() != "IN":
            problems.append(f"{declaration.where}: expected one {declaration.trigger} binding, got {function.bindings}")
            continue
        problems += _check_trigger(declaration, function, triggers[0])
        for kind, arguments in declaration.inputs:
            names = [b.get("name") for b in function.of_type(kind)]
            if arguments.get("client_name") not in names:
                problems.append(f"{declaration.where}: no {kind} input named {arguments.get('client_name')!r}")
    undeclared = sorted(f.name for key, f in indexed.items() if key not in declared)
    assert not undeclared, f"indexed functions not declared by a decorator in functions/: {undeclared}"
    assert not problems, "\n".join(problems)


def _check_trigger(declaration: Declared, function: Indexed, binding: dict[str, Any]) -> list[str]:
    from bulwark_local.runtime.schedule import NcrontabSchedule

    from functions import names

    where, arguments = declaration.where, declaration.arguments
    durable_names = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    if declaration.trigger == "httpTrigger":
        problems = []
        methods = sorted(m.upper() for m in arguments.get("methods") or [])
        if binding.get("route") != arguments.get("route") or sorted(binding.get("methods") or []) != methods:
            problems.append(f"{where}: indexed as {binding.get('route')} {binding.get('methods')}")
        if not methods:
            problems.append(f"{where}: an HTTP route must name its methods")
        if str(binding.get("authLevel", "")).upper() != "FUNCTION" and "auth_level" not in arguments:
            problems.append(f"{where}: authLevel {binding.get('authLevel')} (every route needs a function key)")
        outputs = [b for b in function.of_type("http") if b.get("direction", "").upper() == "OUT"]
        if not outputs:
            problems.append(f"{where}: no http output binding")
        return problems
    if declaration.trigger == "timerTrigger":
        schedule = binding.get("schedule", "")
        if schedule != arguments.get("schedule") or len(str(schedule).split()) != 6:
            return [f"{where}: timer schedule {schedule!r} is not the declared six-field NCRONTAB expression"]
        NcrontabSchedule(schedule)  # raises on an invalid expression
        return []
    key = "orchestration" if declaration.trigger == "orchestrationTrigger" else "activity"
    name = arguments.get(key)
    if name not in durable_names:
        return [f"{where}: {key} name {name!r} does not come from functions/names.py"]
    if function.name != name or binding.get(key) != name:
        return [f"{where}: registered as {function.name!r} / {binding.get(key)!r}, expected {name!r}"]
    return []


def test_every_durable_name_called_is_registered_with_the_right_trigger(
    indexed: dict[tuple[str, str], Indexed],
) -> None:
    registered: dict[str, set[str]] = {"activityTrigger": set(), "orchestrationTrigger": set()}
    for function in indexed.values():
        for kind, names in registered.items():
            if function.of_type(kind):
                names.add(function.name)
    calls = durable_calls()
    assert len(calls["activityTrigger"]) >= 10 and calls["orchestrationTrigger"], calls
    for kind, called in calls.items():
        missing = sorted(called - registered[kind])
        assert not missing, f"called but not registered with an {kind}: {missing}"


def test_http_routes_are_unambiguous(indexed: dict[tuple[str, str], Indexed]) -> None:
    pairs = Counter(
        (binding["route"], method.upper())
        for function in indexed.values()
        for binding in function.of_type("httpTrigger")
        for method in binding.get("methods") or ["*"]
    )
    clashes = sorted(pair for pair, count in pairs.items() if count > 1)
    assert not clashes, f"routes served by two functions: {clashes}"


def test_the_local_runtime_indexes_every_function(indexed: dict[tuple[str, str], Indexed]) -> None:
    """The single-machine mode serves the same app: its index must accept every binding."""
    from bulwark_local.runtime.function_index import index_app

    import function_app

    function_app.app.functions_bindings = {}  # a fresh process indexes once (see the fixture)
    assert index_app(function_app.app, app_root=ROOT).count == len(indexed)
