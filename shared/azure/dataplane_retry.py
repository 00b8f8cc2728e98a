"""The retry policy of Bulwark's own data-plane requests: ranged GETs of page blobs
(``pageblob.PageBlobReader.read``) and Put Page (``upload.DiskUpload``).

Those requests go through a bare azure-core pipeline per thread, without the SDK's retry policy,
so they retry here. :meth:`DataPlaneRetry.run` makes up to ``attempts`` tries of one request and
sleeps before each retry: ``backoff_seconds`` doubling per retry, at most ``backoff_max_seconds``,
scaled by a random half to whole (jitter: threads that failed together do not retry in step).

What is worth another try: a transport failure (connection refused or reset, timeout, a body cut
short), always; for a response, the request decides and returns :class:`Transient` with the reason
(:func:`transient_status` says so for HTTP 408, 429 and 5xx) and, when the server asked for one, the
wait before the next try: the next try waits the longer of that and the backoff, and never after
the last try. Anything it raises ends the retries at once. When the tries run out, the
request's ``exhausted`` builds the error from the number of tries and the last reason.

Reasons end up in error text, so they are redacted: SDK exception text can hold a SAS URL.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from azure.core.exceptions import IncompleteReadError, ServiceRequestError, ServiceResponseError

from shared.core.errors import redact

__all__ = ["TRANSIENT_STATUS", "TRANSPORT_ERRORS", "DataPlaneRetry", "Transient", "error_summary", "transient_status"]

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TRANSPORT_ERRORS = (ServiceRequestError, ServiceResponseError, IncompleteReadError)


@dataclass(frozen=True)
class Transient:
    """A try that failed in a way another try may not: why, and the wait the server asked for."""

    reason: str
    wait: float | None = None


@dataclass(frozen=True)
class DataPlaneRetry:
    """How often and how patiently one data-plane request is tried; see the module docstring."""

    attempts: int = 6
    backoff_seconds: float = 0.25
    backoff_max_seconds: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def delay(self, retry: int) -> float:
        """The pause before retry number ``retry`` (1 is the second try)."""
        backoff = min(self.backoff_max_seconds, self.backoff_seconds * 2.0 ** (retry - 1))
        return backoff * (0.5 + self.jitter() / 2)

    def run(self, attempt: Callable[[], T | Transient], exhausted: Callable[[int, str], Exception], *, name: str) -> T:
        """The first result of ``attempt`` that is not :class:`Transient`; raises ``exhausted(attempts,
        last reason)`` when every try failed. ``name`` says what is tried, in debug logs."""
        reason, asked = "", 0.0
        for number in range(self.attempts):
            if number:
                # At least what the server asked for; the backoff when it asked for less.
                self.sleep(max(asked, self.delay(number)))
            try:
                outcome = attempt()
            except TRANSPORT_ERRORS as exc:
                outcome = Transient(error_summary(exc))
            if not isinstance(outcome, Transient):
                return outcome
            reason, asked = outcome.reason, outcome.wait or 0.0
            log.debug("%s failed (%s), try %d of %d", name, reason, number + 1, self.attempts)
        raise exhausted(self.attempts, reason)


def transient_status(status: int, code: str, *, retry_after: str | None = None) -> Transient | None:
    """A response worth another try (HTTP 408, 429, 5xx), with the server's ``Retry-After`` in
    seconds when it sent one; None for any other status."""
    if status not in TRANSIENT_STATUS:
        return None
    return Transient(f"HTTP {status} {code}".strip(), wait=_seconds(retry_after))


def error_summary(exc: BaseException) -> str:
    """The exception's type and the first line of its text, redacted."""
    lines = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return redact(f"{type(exc).__name__}: {lines[0] if lines else ''}")


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
