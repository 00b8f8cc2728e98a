"""Fixtures for the local runtime tests: hosts on a hand-driven clock, activity logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bulwark_local.runtime import HostOptions, LocalFunctionsHost, ManualClock

KEY = "test-function-key"
START = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The SDK warns "Potential duplicate Task completion" when an event arrives before anyone
    # waits for it (that is how it buffers it); the worker only logs that warning.
    for item in items:
        if "tests/runtime" in str(item.fspath):
            item.add_marker(pytest.mark.filterwarnings("ignore:Potential duplicate Task completion"))


@pytest.fixture
def activity_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "activities.log"
    monkeypatch.setenv("SAMPLE_APP_ACTIVITY_LOG", str(log))
    return log


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_host(clock: ManualClock) -> Iterator[Callable[..., LocalFunctionsHost]]:
    hosts: list[LocalFunctionsHost] = []

    def make(app: str = "tests.runtime.sample_app", **options: object) -> LocalFunctionsHost:
        settings: dict[str, object] = {"port": 0, "key": KEY, "clock": clock, "timers": False}
        settings.update(options)
        host = LocalFunctionsHost.from_module(app, HostOptions(**settings))  # type: ignore[arg-type]
        hosts.append(host.start())
        return host

    yield make
    for host in hosts:
        host.stop()


def executions(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []
