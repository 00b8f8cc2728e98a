"""The determinism check: static scan of orchestrator code and replay of recorded histories."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
from bulwark_local.runtime import (
    HostOptions,
    LocalFunctionsHost,
    ManualClock,
    index_app,
    lint_orchestrators,
    load_app,
    replay_recorded,
)
from bulwark_local.runtime.invoker import FunctionInvoker

MakeHost = Callable[..., LocalFunctionsHost]
ROOT = Path(__file__).resolve().parents[2]


def test_static_scan_flags_clock_random_uuid_and_environment() -> None:
    app, _ = load_app("tests.runtime.bad_app")
    findings = [f for f in lint_orchestrators(index_app(app)) if f.orchestrator == "impure_orchestrator"]
    found = {(f.rule, f.message.split(" uses ")[1].split(":")[0]) for f in findings}
    assert found == {
        ("DET001", "datetime.datetime.now"),
        ("DET003", "uuid.uuid4"),
        ("DET004", "os.environ.get"),
        ("DET002", "random.random"),
        ("DET001", "time.time"),
    }
    assert all(f.location and f.location.startswith("tests/runtime/bad_app.py:") for f in findings)
    assert any("use context.current_utc_datetime" in str(f) for f in findings)


def test_static_scan_passes_the_sample_app() -> None:
    app, _ = load_app("tests.runtime.sample_app")
    assert lint_orchestrators(index_app(app)) == []


def test_check_command_exit_codes() -> None:
    def check(app: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bulwark_local.runtime.check", "--app", app],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    good = check("tests.runtime.sample_app")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = check("tests.runtime.bad_app")
    assert bad.returncode == 1
    assert "DET001 orchestrator 'impure_orchestrator' uses datetime.datetime.now" in bad.stdout


def _greeting_app(activity: str) -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.orchestration_trigger(context_name="context", orchestration="greeting")
    def greeting_v(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        first = yield context.call_activity(activity, "x")
        second = yield context.call_activity("hello", "y")
        return [first, second]

    @app.activity_trigger(input_name="name")
    def hello(name: str) -> str:
        return f"hello {name}"

    @app.activity_trigger(input_name="name")
    def hi(name: str) -> str:
        return f"hi {name}"

    return app


def test_recorded_histories_replay_against_changed_code(tmp_path: Path) -> None:
    clock = ManualClock()
    host = LocalFunctionsHost(
        _greeting_app("hello"), HostOptions(port=0, state_dir=tmp_path, clock=clock, timers=False)
    )
    with host:
        instance_id = host.start_new("greeting")
        assert host.wait_for_completion(instance_id).output == '["hello x", "hello y"]'
        unchanged = replay_recorded(host.functions, host.store, host.invoker)
        assert unchanged == []
        changed = index_app(_greeting_app("hi"))
        invoker = FunctionInvoker()
        try:
            findings = replay_recorded(changed, host.store, invoker)
        finally:
            invoker.close()
    assert len(findings) == 1
    assert findings[0].instance_id == instance_id
    assert "scheduled an activity 'hello' with sequence id 0" in findings[0].message
    assert "this replay scheduled an activity 'hi'" in findings[0].message


def test_check_command_replays_a_state_directory(tmp_path: Path) -> None:
    options = HostOptions(port=0, state_dir=tmp_path, clock=ManualClock(), timers=False)
    with LocalFunctionsHost.from_module("tests.runtime.sample_app", options) as host:
        instance_id = host.start_new("countdown_orchestrator", 0)
        assert host.wait_for_completion(instance_id).output == '"liftoff"'
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bulwark_local.runtime.check",
            "--app",
            "tests.runtime.sample_app",
            "--state",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 histories replayed, 0 findings" in result.stderr
