"""The CLI reports a span per command when the environment names a target, and nothing otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.telemetry.collector import running_collector

ROOT = Path(__file__).resolve().parents[2]


def _bulwark(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_", "BULWARK_"))}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_command_is_one_span_marked_failed_when_it_fails(tmp_path: Path) -> None:
    with running_collector() as collector:
        done = _bulwark({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}, "status", "--stack", str(tmp_path / "no"))
        assert done.returncode == 3 and "does not exist" in done.stderr
        collector.wait_for(lambda c: bool(c.spans), timeout=10)
    [span] = collector.spans
    assert span.name == "bulwark status" and span.service == "bulwark-cli" and span.error


def test_a_bad_setting_is_one_readable_line(tmp_path: Path) -> None:
    done = _bulwark({"BULWARK_TELEMETRY": "loud"}, "status", "--stack", str(tmp_path / "no"))
    assert done.returncode == 3 and done.stderr.strip().count("\n") == 0 and "BULWARK_TELEMETRY" in done.stderr
