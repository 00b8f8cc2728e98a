"""Determinism checks for orchestrators: a static scan of their code and a replay of histories.

``lint_orchestrators`` reads each orchestrator's source (the generator behind the SDK handler)
and flags calls that make replays diverge:

    DET001  wall clock      datetime.now/utcnow/today, date.today, time.time/monotonic/...
    DET002  randomness      random.*, secrets.*, os.urandom
    DET003  fresh ids       uuid.uuid1/uuid4
    DET004  environment     os.environ, os.getenv
    DET005  blocking sleep  time.sleep (use a durable timer)

Imports are resolved, so ``from time import time as now`` or ``import random as rnd`` are seen.
Only the orchestrator's own body is scanned, not the helpers it calls.

``replay_recorded`` re-runs every orchestrator over the histories stored in a runtime's state
directory and reports any whose replay no longer matches (scheduled other steps, or reached
another output): what would break in-flight instances after a code change.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LocalRuntimeError
from .function_index import FunctionIndex
from .history import EventType, HistoryEvent
from .invoker import FunctionInvoker
from .replay import Replayer
from .store import RuntimeStatus, StateStore

__all__ = ["Finding", "lint_function", "lint_orchestrators", "replay_recorded"]

_RULES: dict[str, tuple[str, str]] = {
    "datetime.datetime.now": ("DET001", "use context.current_utc_datetime"),
    "datetime.datetime.utcnow": ("DET001", "use context.current_utc_datetime"),
    "datetime.datetime.today": ("DET001", "use context.current_utc_datetime"),
    "datetime.date.today": ("DET001", "use context.current_utc_datetime.date()"),
    "time.time": ("DET001", "use context.current_utc_datetime"),
    "time.time_ns": ("DET001", "use context.current_utc_datetime"),
    "time.monotonic": ("DET001", "use context.current_utc_datetime"),
    "time.perf_counter": ("DET001", "use context.current_utc_datetime"),
    "time.localtime": ("DET001", "use context.current_utc_datetime"),
    "time.gmtime": ("DET001", "use context.current_utc_datetime"),
    "random": ("DET002", "draw random values in an activity"),
    "secrets": ("DET002", "draw random values in an activity"),
    "os.urandom": ("DET002", "draw random values in an activity"),
    "uuid.uuid1": ("DET003", "use context.new_uuid()"),
    "uuid.uuid4": ("DET003", "use context.new_uuid()"),
    "os.environ": ("DET004", "read settings in an activity or pass them in the input"),
    "os.getenv": ("DET004", "read settings in an activity or pass them in the input"),
    "os.environb": ("DET004", "read settings in an activity or pass them in the input"),
    "time.sleep": ("DET005", "use context.create_timer"),
}


@dataclass(frozen=True)
class Finding:
    """One determinism problem, with where it is and what to do."""

    rule: str
    orchestrator: str
    message: str
    location: str | None = None
    instance_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.rule} {self.message}"


def lint_orchestrators(functions: FunctionIndex) -> list[Finding]:
    """Scan every orchestrator of the app; an empty list means nothing was found."""
    findings: list[Finding] = []
    for name in sorted(functions.orchestrators):
        spec = functions.orchestrators[name]
        findings.extend(lint_function(spec.name, spec.user_function))
    return findings


def lint_function(orchestrator: str, function: Callable[..., Any]) -> list[Finding]:
    """Scan one orchestrator function's body for non-deterministic calls."""
    try:
        lines, first_line = inspect.getsourcelines(function)
        path = inspect.getsourcefile(function) or "<unknown>"
        module_source = Path(path).read_text(encoding="utf-8") if Path(path).is_file() else ""
    except (OSError, TypeError) as exc:
        return [Finding("DET000", orchestrator, f"source not available for the scan: {exc}")]
    aliases = _imported_names(ast.parse(module_source)) if module_source else {}
    tree = ast.parse(textwrap.dedent("".join(lines)))
    aliases.update(_imported_names(tree))
    findings: list[Finding] = []
    seen: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute | ast.Name):
            continue
        dotted = _dotted(node)
        if dotted is None:
            continue
        head, _, rest = dotted.partition(".")
        if head not in aliases:
            continue
        qualified = aliases[head] + (f".{rest}" if rest else "")
        rule = _rule_for(qualified)
        if rule is None:
            continue
        line = first_line + node.lineno - 1
        key = (line, rule[0])
        if key in seen:
            continue
        seen.add(key)
        code, advice = rule
        findings.append(
            Finding(
                rule=code,
                orchestrator=orchestrator,
                message=f"orchestrator {orchestrator!r} uses {qualified}: {advice}",
                location=f"{_relative(path)}:{line}",
            )
        )
    return sorted(findings, key=lambda f: (f.location or "", f.rule))


def replay_recorded(functions: FunctionIndex, store: StateStore, invoker: FunctionInvoker) -> list[Finding]:
    """Replay every stored history through today's orchestrator code."""
    findings: list[Finding] = []
    for record in store.list_instances():
        history = store.history(record.instance_id)
        if not history:
            continue
        spec = functions.orchestrator(record.name)
        if spec is None:
            findings.append(
                Finding("REPLAY", record.name, "the orchestrator no longer exists", None, record.instance_id)
            )
            continue
        played = [dict(event, IsPlayed=True) for event in _without_trailing_episode_end(history)]
        state = invoker.run_orchestrator(
            spec,
            json.dumps(
                {
                    "history": played,
                    "input": json.loads(record.input) if record.input is not None else None,
                    "instanceId": record.instance_id,
                    "isReplaying": True,
                    "parentInstanceId": record.parent.instance_id if record.parent else None,
                    "upperSchemaVersion": 1,
                    "upperSchemaVersionNew": 3,
                    "longRunningTimerIntervalDuration": "3.00:00:00",
                    "maximumShortTimerDuration": "6.00:00:00",
                }
            ),
        )
        replayer = Replayer(orchestrator=record.name, instance_id=record.instance_id, execution_id=record.execution_id)
        try:
            outcome = replayer.replay(played, state.get("actions") or [], int(state.get("schemaVersion") or 0))
        except LocalRuntimeError as exc:
            findings.append(Finding("REPLAY", record.name, exc.message, None, record.instance_id))
            continue
        if outcome.decisions and record.status is not RuntimeStatus.FAILED:
            first = outcome.decisions[0]
            findings.append(
                Finding(
                    "REPLAY",
                    record.name,
                    f"the replay schedules {first.describe()} (sequence id {first.sequence_id}) "
                    "that the recorded history does not have",
                    None,
                    record.instance_id,
                )
            )
        if record.status is RuntimeStatus.COMPLETED and record.output is not None:
            replayed = state.get("output")
            if not state.get("isDone") or replayed != json.loads(record.output):
                findings.append(
                    Finding(
                        "REPLAY",
                        record.name,
                        f"the replay returns {json.dumps(replayed)[:200]} but the instance "
                        f"completed with {record.output[:200]}",
                        None,
                        record.instance_id,
                    )
                )
    return findings


def _without_trailing_episode_end(history: list[HistoryEvent]) -> list[HistoryEvent]:
    return [event for event in history if event["EventType"] != EventType.EXECUTION_COMPLETED]


def _imported_names(tree: ast.AST) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    names[head] = head
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _rule_for(qualified: str) -> tuple[str, str] | None:
    candidates: Iterable[str] = (qualified, qualified.rsplit(".", 1)[0], qualified.split(".")[0])
    for candidate in candidates:
        if candidate in _RULES:
            if candidate in ("random", "secrets") and qualified == candidate:
                return None  # the bare module name (e.g. passed around) is not a call
            return _RULES[candidate]
    return None


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
