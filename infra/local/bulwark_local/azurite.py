"""Start and stop Azurite (Blob, Queue and Table emulator) for tests and the local stack.

Azurite comes from ``node_modules`` (pinned in package.json, installed by ``make setup``). Each
instance listens on free loopback ports, keeps its data in the given folder, and runs in its own
process group so that stopping it also ends any child processes.

Strict mode (no ``--loose``): requests with headers or parameters Azurite does not support fail
instead of being silently ignored, so a test never passes by relying on a feature nobody emulated.
The API-version check is skipped so that a newer SDK works with this pinned Azurite.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from shared.core.errors import ConfigError, StorageError

__all__ = ["ACCOUNT_KEY", "ACCOUNT_NAME", "Azurite", "running_azurite", "start_azurite"]

ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development account; the key is public (documented by Microsoft)."""

HOST = "127.0.0.1"
_REPO_ROOT = Path(__file__).resolve().parents[3]
_SETUP_HINT = "run `make setup` in the repository root to install the pinned Node tools"


@dataclass(frozen=True)
class Azurite:
    """A running Azurite: where it listens and how to reach it."""

    blob_port: int
    queue_port: int
    table_port: int
    workdir: Path
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        """Process id, which is also the process-group id."""
        return self.process.pid

    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.blob_port}/{ACCOUNT_NAME}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://{HOST}:{self.queue_port}/{ACCOUNT_NAME}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{HOST}:{self.table_port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """End the process group: SIGTERM, then SIGKILL after ``timeout`` seconds. Idempotent."""
        if self.process.poll() is not None:
            return  # already ended and reaped: its pid may belong to someone else by now
        _kill_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_azurite(workdir: Path, *, timeout: float = 60.0, repo_root: Path | None = None) -> Azurite:
    """Start Azurite with its data and log (``azurite.log``) in ``workdir``; wait until it answers."""
    executable = (repo_root or _REPO_ROOT) / "node_modules" / ".bin" / "azurite"
    if not executable.exists():
        raise ConfigError(f"Azurite is not installed at {executable}.", hint=_SETUP_HINT)
    if shutil.which("node") is None:
        raise ConfigError("Node.js (`node`) is not on PATH; Azurite needs it.", hint=_SETUP_HINT)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "azurite.log"
    deadline = time.monotonic() + timeout
    for _ in range(3):  # a free port can be taken between our probe and Azurite's bind
        blob_port, queue_port, table_port = _free_ports(3)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    str(executable),
                    *("--blobHost", HOST, "--blobPort", str(blob_port)),
                    *("--queueHost", HOST, "--queuePort", str(queue_port)),
                    *("--tableHost", HOST, "--tablePort", str(table_port)),
                    *("--location", str(workdir)),
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                    "--silent",
                ],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        azurite = Azurite(blob_port, queue_port, table_port, workdir, process)
        with ExitStack() as on_failure:
            on_failure.callback(azurite.stop)
            if _wait_until_ready(azurite, deadline):
                on_failure.pop_all()
                return azurite
        if "EADDRINUSE" not in _tail(log_path) or time.monotonic() >= deadline:
            break
    raise StorageError(
        f"Azurite did not start within {timeout:.0f} s: {_tail(log_path)}",
        hint=f"see {log_path}; {_SETUP_HINT}",
    )


@contextmanager
def running_azurite(workdir: Path, *, timeout: float = 60.0) -> Iterator[Azurite]:
    """Run Azurite for the duration of a ``with`` block."""
    azurite = start_azurite(workdir, timeout=timeout)
    try:
        yield azurite
    finally:
        azurite.stop()


def _wait_until_ready(azurite: Azurite, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if not azurite.is_running():
            return False
        if _answers_http(azurite.blob_port) and _accepts(azurite.queue_port) and _accepts(azurite.table_port):
            return True
        time.sleep(0.1)
    return False


def _answers_http(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", f"/{ACCOUNT_NAME}?comp=list")
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:].strip()
