"""SIGKILL the runtime (a real process) mid-orchestration; the restarted one finishes the work
without running again any activity whose result had been committed."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parents[2]
KEY = "kill-test-key"
RESOURCES = [f"vm{i}" for i in range(6)]


def _spawn(env: dict[str, str], state: Path, sink: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulwark_local.runtime",
            "--app",
            "tests.runtime.sample_app",
            "--port",
            "0",
            "--state",
            str(state),
            "--key-env",
            "BULWARK_TEST_KEY",
            "--no-timers",
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=sink,
    )


def _start_runtime(state: Path, log: Path, output: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = dict(
        os.environ,
        SAMPLE_APP_ACTIVITY_LOG=str(log),
        SAMPLE_APP_ACTIVITY_DELAY="0.4",
        BULWARK_TEST_KEY=KEY,
    )
    with output.open("wb") as sink:  # the child keeps its own descriptor
        process = _spawn(env, state, sink)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"listening on (http://\S+)", output.read_text(encoding="utf-8"))
        if found:
            return process, found.group(1)
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the runtime did not start: " + output.read_text(encoding="utf-8")[-2000:])


def _request(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data)
    request.add_header("x-functions-key", KEY)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def _lines(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def _committed_snapshots(database: Path, instance_id: str) -> set[int]:
    """Task ids whose snapshot result the killed runtime had committed (history or queue)."""
    with sqlite3.connect(database) as db:
        events = [
            json.loads(row[0]) for row in db.execute("SELECT event FROM history WHERE instance_id = ?", (instance_id,))
        ]
        events += [
            json.loads(row[0]) for row in db.execute("SELECT event FROM messages WHERE instance_id = ?", (instance_id,))
        ]
    return {e["TaskScheduledId"] for e in events if e["EventType"] == 5}


def _scheduled_names(database: Path, instance_id: str) -> dict[int, str]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT event FROM history WHERE instance_id = ?", (instance_id,)).fetchall()
    events = [json.loads(row[0]) for row in rows]
    # TaskScheduled.Input is DTFx's parameter array holding the SDK's JSON text of the input.
    return {e["EventId"]: json.loads(json.loads(e["Input"])[0]) for e in events if e["EventType"] == 4}


def test_sigkill_mid_fan_out_then_restart_completes_without_repeating_work(tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "activities.log"
    process, base = _start_runtime(state, log, tmp_path / "first.log")
    try:
        job = {"resources": RESOURCES, "limit": 2, "cooldown_seconds": 1}
        status, _ = _request(f"{base}/api/backups/nightly?instance=kill-1", "POST", job)
        assert status == 202
        deadline = time.monotonic() + 30
        while sum(line.startswith("snapshot_resource") and "start" not in line for line in _lines(log)) < 3:
            assert time.monotonic() < deadline, "the fan-out did not progress"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL

    database = state / "state.sqlite"
    committed = _committed_snapshots(database, "kill-1")
    names = _scheduled_names(database, "kill-1")
    done_before = {name for task_id, name in names.items() if task_id in committed}
    assert done_before, "nothing was committed before the kill"
    assert done_before <= set(RESOURCES)
    assert len(done_before) < len(RESOURCES), "the kill came too late to test anything"

    process, base = _start_runtime(state, log, tmp_path / "second.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            status, payload = _request(f"{base}/runtime/webhooks/durabletask/instances/kill-1")
            if payload["runtimeStatus"] not in ("Pending", "Running"):
                break
            assert time.monotonic() < deadline, f"not finished: {payload}"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)

    assert payload["runtimeStatus"] == "Completed", payload
    assert payload["output"]["snapshots"] == [f"snap-{name}" for name in RESOURCES]
    runs = _lines(log)
    for name in RESOURCES:
        count = runs.count(f"snapshot_resource {name}")
        if name in done_before:
            assert count == 1, f"{name} was committed before the kill but ran {count} times"
        else:
            assert 1 <= count <= 2, f"{name} ran {count} times"  # at-least-once if in flight
    assert runs.count("upload_manifest kill-1") == 3
    assert process.returncode == 0
    logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
    assert KEY not in logs  # the key never reaches the logs
