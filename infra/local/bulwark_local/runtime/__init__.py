"""A local Azure Functions + Durable Functions host for the unmodified Bulwark function app.

It indexes a Python v2 function app through the SDK's own function metadata, serves its HTTP
triggers, fires its timer triggers, and runs its orchestrations and activities through the
azure-functions-durable JSON protocol with the Durable extension's replay semantics, keeping
state in SQLite so that a killed runtime resumes where it stopped. See ``docs`` in the package
modules; the command line is ``python -m bulwark_local.runtime``.

Public surface:

* :class:`LocalFunctionsHost`, :class:`HostOptions`: run an app (HTTP, timers, orchestrations);
* :class:`DurableEngine`, :class:`EngineOptions`: the orchestration engine alone;
* :class:`ManualClock`, :class:`SystemClock`, :class:`Clock`: the clock everything runs on;
* :class:`RuntimeStatus`, :class:`InstanceRecord`, :class:`StateStore`: instance state;
* :func:`lint_orchestrators`, :func:`replay_recorded`, :class:`Finding`: determinism checks;
* the error tree in :mod:`.errors`.
"""

from .clock import Clock, ManualClock, SystemClock
from .determinism import Finding, lint_function, lint_orchestrators, replay_recorded
from .engine import DurableEngine, EngineOptions
from .errors import (
    AppLoadError,
    InstanceExistsError,
    InstanceGoneError,
    InstanceNotFoundError,
    LocalRuntimeError,
    NonDeterminismError,
    ScheduleError,
    UnknownFunctionError,
)
from .function_index import FunctionIndex, index_app, load_app
from .host import HostOptions, LocalFunctionsHost
from .store import InstanceRecord, RuntimeStatus, StateStore

__all__ = [
    "AppLoadError",
    "Clock",
    "DurableEngine",
    "EngineOptions",
    "Finding",
    "FunctionIndex",
    "HostOptions",
    "InstanceExistsError",
    "InstanceGoneError",
    "InstanceNotFoundError",
    "InstanceRecord",
    "LocalFunctionsHost",
    "LocalRuntimeError",
    "ManualClock",
    "NonDeterminismError",
    "RuntimeStatus",
    "ScheduleError",
    "StateStore",
    "SystemClock",
    "UnknownFunctionError",
    "index_app",
    "lint_function",
    "lint_orchestrators",
    "load_app",
    "replay_recorded",
]
