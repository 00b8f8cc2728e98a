"""The one ``except Exception`` of the activities: failures leave as redacted, typed messages.

A Bulwark error passes through unchanged (its message is already free of secrets). Anything else
(an SDK or library exception whose text might quote a URL with a signature) is logged with its type
and re-raised as a RuntimeError carrying only redacted text, without the original chained to it,
so the Durable history's failure details cannot hold a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.core.errors import BulwarkError, redact

__all__ = ["guarded"]

log = logging.getLogger("bulwark.activities")


def guarded(activity: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return call()
    except BulwarkError as exc:
        log.warning("%s failed: %s", activity, exc)
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {redact(str(exc))}"
        log.error("%s failed unexpectedly: %s", activity, message)
        raise RuntimeError(message) from None
