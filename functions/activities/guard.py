"""The one ``except Exception`` of the activities: failures leave as redacted, typed messages.

A Bulwark error passes through unchanged (its message is already free of secrets). Anything else
(an SDK or library exception whose text might quote a URL with a signature) is logged with its type
and re-raised as a RuntimeError carrying only redacted text, without the original chained to it,
so the Durable history's failure details cannot hold a secret.

Each activity runs in a span under the ``traceparent`` its input carries (the orchestration's), and
``observe`` turns its result into metrics (``functions.activities.observe``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from shared.core.errors import BulwarkError, redact
from shared.telemetry.spans import span

__all__ = ["guarded"]

log = logging.getLogger("bulwark.activities")


def guarded(
    activity: str,
    call: Callable[[], dict[str, Any]],
    *,
    request: Mapping[str, Any] | None = None,
    observe: Callable[[Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    parent = (request or {}).get("traceparent")
    with span(activity, parent=parent if isinstance(parent, str) else None, attributes=_attributes(request)):
        result = _run(activity, call)
    if observe is not None:
        try:
            observe(result)
        except Exception as exc:  # metrics never fail an activity
            log.warning("metrics of %s failed: %s", activity, redact(str(exc)))
    return result


def _attributes(request: Mapping[str, Any] | None) -> dict[str, str]:
    values = request or {}
    names = ("policy_id", "session_id")
    return {f"bulwark.{name}": values[name] for name in names if isinstance(values.get(name), str)}


def _run(activity: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return call()
    except BulwarkError as exc:
        log.warning("%s failed: %s", activity, exc)
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {redact(str(exc))}"
        log.error("%s failed unexpectedly: %s", activity, message)
        raise RuntimeError(message) from None
