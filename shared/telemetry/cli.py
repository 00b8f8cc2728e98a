"""The CLI's telemetry: off unless the environment names a target (then one span per command).

Checking the environment imports nothing heavy, so ``bulwark`` starts as fast without telemetry."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from .setup import TelemetryTarget

__all__ = ["command_telemetry"]


@contextlib.contextmanager
def command_telemetry(command: str, env: Mapping[str, str]) -> Iterator[None]:
    if TelemetryTarget.from_env(env).kind == "off":
        yield
        return
    from .setup import configure_telemetry, shutdown_telemetry
    from .spans import span

    configure_telemetry(env, service="bulwark-cli")
    try:
        with span(f"bulwark {command}", attributes={"bulwark.command": command}):
            yield
    finally:
        shutdown_telemetry()
