"""Run the simulator as a child process (tests, the local stack): free ports, wait until it answers."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SimulatorEndpoints:
    arm: str
    data: str
    ca_bundle: str
    pid: int
    state_dir: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def admin(self) -> str:
        return f"{self.arm}/_bulwark"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; reaps the child when this process started it."""
        if self.process is None:
            stop_process(self.pid, timeout=timeout)
            return
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_simulator(state_dir: Path, *, log_file: Path | None = None, timeout: float = 30.0) -> SimulatorEndpoints:
    """Start ``python -m bulwark_local.simulator`` detached (own session); return once it answers."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ready = state_dir / "ready.json"
    ready.unlink(missing_ok=True)
    log_path = log_file or state_dir / "simulator.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_SOURCE_ROOT), env.get("PYTHONPATH", "")]))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bulwark_local.simulator", "--state", str(state_dir), "--ready-file", str(ready)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the simulator exited with {process.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"the simulator did not start within {timeout:.0f} s; see {log_path}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    endpoints = SimulatorEndpoints(info["arm"], info["data"], info["caBundle"], process.pid, str(state_dir), process)
    try:
        wait_until_healthy(endpoints.admin + "/health", endpoints.ca_bundle, timeout=timeout)
    except OSError:
        endpoints.stop()
        raise
    return endpoints


def wait_until_healthy(url: str, ca_bundle: str, *, timeout: float = 30.0) -> None:
    context = ssl.create_default_context(cafile=ca_bundle)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def stop_process(pid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL the process (by its id only)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while _alive(pid):
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@contextmanager
def running_simulator(state_dir: Path) -> Iterator[SimulatorEndpoints]:
    endpoints = start_simulator(state_dir)
    try:
        yield endpoints
    finally:
        endpoints.stop()
