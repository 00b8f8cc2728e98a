"""Running the function app under the local runtime for a test module: env, policies, HTTP calls."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient
from bulwark_local.runtime import HostOptions, LocalFunctionsHost
from bulwark_local.stack import Stack

from shared.policy.document import policy_from_dict
from shared.policy.table_store import AzureTablePolicyStore
from shared.wiring import POLICIES_TABLE, reset_services
from tests.worker.estate import put_resource_group

KEY = "app-test-function-key"
WORKER_GROUP = "bulwark-workers"


class LogBook(logging.Handler):
    """Every log record of the process, formatted (what an operator's log would show)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a broken record must not break the test
            self.lines.append(str(record.msg))


def call(
    url: str, method: str = "GET", body: Any = None, *, key: str | None = KEY, raw: bytes | None = None
) -> tuple[int, bytes]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, method=method, data=data)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("x-functions-key", key)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def policy_document(
    stack: Stack, resource_group: str, repository: str, secret: Path, policy_id: str, **changes: Any
) -> dict[str, Any]:
    """A policy over the VMs tagged app=web in ``resource_group``: keep 1 snapshot, image-level on."""
    group = f"/subscriptions/{stack.subscription_id}/resourceGroups/{resource_group}"
    document: dict[str, Any] = {
        "id": policy_id,
        "scope": {"resource_groups": [group], "tags": ["app=web"]},
        "schedule": {"time_zone": "UTC", "daily": {"times": ["03:00"]}},
        "snapshots": {"keep": 1},
        "image_backup": {
            "enabled": True,
            "schedule": {"time_zone": "UTC", "weekly": {"weekday": "sat", "time": "22:00"}},
            "retention": {"days": 7},
        },
        "repository": {"location": repository, "region": stack.location},
        "encryption": {"passphrase": {"file": str(secret)}},
        "concurrency": {"resources_in_flight": 2, "workers_in_flight": 2},
    }
    document.update(changes)
    return document


def store_policy(stack: Stack, document: dict[str, Any]) -> None:
    with TableClient.from_connection_string(stack.storage_connection_string, table_name=POLICIES_TABLE) as table:
        store = AzureTablePolicyStore(table)
        store.ensure_table()
        store.create(policy_from_dict(document))


@contextmanager
def running_app(
    stack: Stack, work: Path, *, env: dict[str, str] | None = None, **options: Any
) -> Iterator[tuple[LocalFunctionsHost, LogBook]]:
    """The unmodified function_app on the local runtime, configured for ``stack`` (workers through the
    simulator's Container Instances, polled every second), logging into a LogBook."""
    put_resource_group(stack, WORKER_GROUP)
    book = LogBook()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(book)
    root.setLevel(logging.DEBUG)
    patch = pytest.MonkeyPatch()
    patch.setenv("BULWARK_LOCAL_STACK", str(Path(stack.state_dir) / "stack.json"))
    patch.setenv("BULWARK_WORKER_RESOURCE_GROUP", WORKER_GROUP)
    patch.setenv("BULWARK_JOB_POLL_SECONDS", "1")
    patch.setenv("BULWARK_STATE_DIR", str(work / "state"))
    for name, value in (env or {}).items():
        patch.setenv(name, value)
    settings: dict[str, Any] = {"port": 0, "key": KEY, "timers": False, "state_dir": work / "runtime"}
    settings.update(options)
    host = LocalFunctionsHost.from_module("function_app", HostOptions(**settings))
    try:
        with host:
            yield host, book
    finally:
        root.removeHandler(book)
        root.setLevel(previous_level)
        reset_services()
        patch.undo()


def start_session(host: LocalFunctionsHost, policy_id: str, body: Any = None) -> str:
    status, raw = call(f"{host.base_url}/api/policies/{policy_id}/run", "POST", body)
    assert status == 202, raw
    instance_id: str = json.loads(raw)["id"]
    return instance_id


def wait_session(host: LocalFunctionsHost, instance_id: str, *, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, raw = call(f"{host.base_url}/api/sessions/{instance_id}")
        assert status == 200, raw
        document: dict[str, Any] = json.loads(raw)
        if document["runtime_status"] in ("Completed", "Failed", "Terminated"):
            return document
        assert time.monotonic() < deadline, f"session {instance_id} did not finish: {document}"
        time.sleep(0.5)


_SAS_SIGNATURE = re.compile(rb"sig=(?!REDACTED)[^&\s'\"]+")


def assert_no_secrets(
    *,
    runtime_state: Path,
    http_bodies: list[bytes],
    logs: list[str],
    stack_state: Path,
    secrets: list[str],
    worker_marker: str = "saved point",
) -> None:
    """No secret and no SAS signature in orchestration state (history, inputs, outputs, custom
    status), HTTP answers, the app's logs (with the workers' output) or the simulator's logs."""
    haystacks: dict[str, bytes] = {
        "runtime state (history, inputs, outputs, custom status)": b"".join(
            p.read_bytes() for p in runtime_state.rglob("*") if p.is_file()
        ),
        "HTTP answers": b"\n".join(http_bodies),
        "app logs (with the workers' output)": "\n".join(logs).encode(),
        "simulator log": b"".join(p.read_bytes() for p in stack_state.rglob("*.log") if p.stat().st_size < 50_000_000),
    }
    # The scan must have had something to scan.
    assert len(haystacks["runtime state (history, inputs, outputs, custom status)"]) > 10_000
    assert any(worker_marker in line for line in logs)  # the workers' own output is in there too
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret.encode() not in text, (where, secret[:4])
        assert not _SAS_SIGNATURE.search(text), where


def determinism_check(runtime_state: Path) -> str:
    """Run the CI determinism check over the app and the recorded histories; returns its report."""
    done = subprocess.run(
        [sys.executable, "-m", "bulwark_local.runtime.check", "--app", "function_app", "--state", str(runtime_state)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stderr
