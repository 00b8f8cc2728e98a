"""The parts of ``host.json`` the local runtime honours.

Read once at start-up from the app root (the directory of the app module), like the Functions
host does. Missing keys take the host's defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AppLoadError

__all__ = ["HostConfig", "load_host_config"]


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    """``extensions.http.routePrefix``: HTTP trigger routes are served under ``/{prefix}/``."""
    hub_name: str = "TestHubName"
    """``extensions.durableTask.hubName`` (the Core Tools default when unset)."""
    max_concurrent_activities: int = 10
    """``extensions.durableTask.maxConcurrentActivityFunctions``: the activity pool size."""


def load_host_config(app_root: Path | None) -> HostConfig:
    """Read ``host.json`` in ``app_root``; defaults when there is none."""
    if app_root is None or not (app_root / "host.json").is_file():
        return HostConfig()
    path = app_root / "host.json"
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AppLoadError(f"cannot read {path}: {exc}", hint="host.json must be valid JSON") from exc
    extensions = document.get("extensions", {}) if isinstance(document, dict) else {}
    http = extensions.get("http", {})
    durable = extensions.get("durableTask", {})
    defaults = HostConfig()
    prefix = http.get("routePrefix", defaults.route_prefix)
    return HostConfig(
        route_prefix=str(prefix).strip("/"),
        hub_name=str(durable.get("hubName", defaults.hub_name)),
        max_concurrent_activities=max(
            1, int(durable.get("maxConcurrentActivityFunctions", defaults.max_concurrent_activities))
        ),
    )
