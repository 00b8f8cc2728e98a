"""Talking to the function app's HTTP API from the CLI: one call, a refusal as a typed error, and
following a Durable status link until the orchestration ends (showing each new phase).

Where the app is: ``--app URL`` or $BULWARK_APP_URL; its function key: $BULWARK_FUNCTION_KEY (never
a flag: it is a secret).
"""

from __future__ import annotations

import json
import time
from typing import Any

from shared.cli.session import say
from shared.core.errors import AzureOperationFailedError, BulwarkError, ConfigError, PointNotFoundError, UsageError

__all__ = ["APP_ENV", "KEY_ENV", "TERMINAL", "call", "follow", "refusal"]

APP_ENV = "BULWARK_APP_URL"
KEY_ENV = "BULWARK_FUNCTION_KEY"
TERMINAL = ("Completed", "Failed", "Terminated")


def call(url: str, key: str, method: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """``(status, JSON object)`` of one request; ConfigError when the app cannot be reached."""
    import urllib.error  # here, not at the top: it costs every other command ~10 ms of start-up
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("x-functions-key", key)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _json(error.read())
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the app at {url.split('/api/', 1)[0]}: {exc}", hint=f"check --app or ${APP_ENV}"
        ) from None


def follow(link: str, key: str, *, timeout: float, quiet: bool, name: str) -> tuple[str, dict[str, Any]]:
    """Poll a status link until the orchestration ends; ``(runtime status, last document)``."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        _, document = call(link, key, "GET")
        runtime = str(document.get("runtimeStatus") or document.get("runtime_status") or "")
        custom = document.get("customStatus") or document.get("custom_status") or {}
        phase = str(custom.get("phase", "")) if isinstance(custom, dict) else ""
        if phase and phase != last and not quiet:
            written = custom.get("bytes_written") if isinstance(custom, dict) else None
            say(f"  {phase}" + (f" ({int(written) / 2**20:,.0f} MiB written)" if written else ""))
            last = phase
        if runtime in TERMINAL:
            return runtime, document
        if time.monotonic() > deadline:
            raise ConfigError(f"{name} is still running after {timeout:.0f} s", hint=f"follow it at {link}")
        time.sleep(2)


def refusal(status: int, answer: dict[str, Any]) -> BulwarkError:
    """The app's 4xx/5xx answer as the error the CLI reports (one line, the right exit code)."""
    inner = answer.get("error")
    error: dict[str, Any] = inner if isinstance(inner, dict) else answer
    message = str(error.get("message") or f"the app answered {status}")
    hint = error.get("hint")
    problems = error.get("problems") or []
    if problems:
        message = "; ".join(f"{p.get('path')}: {p.get('message')} ({p.get('fix')})" for p in problems)
    if status == 404:
        return PointNotFoundError(message, hint=hint)
    if status in (401, 403):
        return ConfigError(f"the app refused the function key ({status})", hint=f"set {KEY_ENV}")
    if 400 <= status < 500:
        return UsageError(message, hint=hint)
    return AzureOperationFailedError(f"the app answered {status}: {message}", hint=hint)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw[:200].decode(errors="replace")}
    return document if isinstance(document, dict) else {"value": document}
