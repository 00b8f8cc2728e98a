"""Throttling: a client-side budget of ARM writes and the retry policy the ARM clients use.

Azure Resource Manager allows a principal about 1,200 writes (PUT, PATCH, POST) per hour and
answers 429 with ``Retry-After`` beyond that (DELETEs have their own, much larger limit of about
15,000 an hour and do not spend the write budget). A 400-disk policy needs well over a thousand
writes per run (snapshot, grant, revoke and delete per disk), so Bulwark keeps its own budget and
never relies on a 429 to slow down:

* :class:`WriteBudget` is a token bucket (``per_hour`` refill, ``burst`` capacity) shared by every
  ARM client of the process (``clients.AzureClients`` makes one). Every attempt of a write,
  retries included, takes a token and waits for one when the bucket is empty. A 429 on a write
  holds every writer of the process back for the server's ``Retry-After``, and the server's
  ``x-ms-ratelimit-remaining-subscription-writes`` caps the tokens when it is lower.
* :class:`ArmThrottlePolicy` applies the budget inside the SDK pipeline, once per attempt (it sits
  in the ``custom_hook_policy`` slot, after the retry policy).
* :class:`ArmRetryPolicy` is azure-core's RetryPolicy configured deliberately: ``retries``
  attempts for connection errors and for 408/429/500/502/503/504, honouring ``Retry-After`` when
  Azure sends it (429 always does) and backing off exponentially (0.8 s doubling, at most 60 s)
  otherwise. On top of azure-core's rules (which retry POST only on 500/503/504 and never after a
  connection error) it retries 429 for every method (the request was refused, not processed) and
  retries the two POST actions that are idempotent, ``beginGetAccess`` and ``endGetAccess``, on
  every transient failure. Callers limit other POSTs per call (SQL export/import: ``retry_total=2``).
  A refused response is read and closed before the retry (the SDK streams LRO initial requests,
  and azure-core would leave that connection to the garbage collector).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy

__all__ = ["WRITE_METHODS", "ArmRetryPolicy", "ArmThrottlePolicy", "WriteBudget"]

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"PUT", "PATCH", "POST"})
"""What ARM counts as writes; DELETE has a separate limit (about 15,000 an hour)."""
_IDEMPOTENT_ACTIONS = ("/begingetaccess", "/endgetaccess")
_REMAINING_HEADER = "x-ms-ratelimit-remaining-subscription-writes"
_DEFAULT_HOLD = 10.0  # seconds to hold back after a 429 without Retry-After


class WriteBudget:
    """A thread-safe token bucket of ARM writes; :meth:`acquire` blocks until a write may go out."""

    def __init__(
        self,
        per_hour: float = 1200,
        burst: int | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_hour <= 0:
            raise ValueError("per_hour must be positive")
        self._rate = per_hour / 3600.0
        self._capacity = float(burst if burst is not None else max(1, int(per_hour) // 10))
        self._tokens = self._capacity
        self._monotonic = monotonic
        self._sleep = sleep
        self._updated = monotonic()
        self._hold_until = 0.0
        self._lock = threading.Lock()
        self.writes = 0
        self.waited_seconds = 0.0

    @property
    def available(self) -> float:
        with self._lock:
            self._refill(self._monotonic())
            return self._tokens

    def acquire(self) -> float:
        """Take one write token, waiting as long as needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._monotonic()
                self._refill(now)
                if now < self._hold_until:
                    wait = self._hold_until - now
                elif self._tokens >= 1.0:
                    self._tokens -= 1.0
                    self.writes += 1
                    self.waited_seconds += waited
                    return waited
                else:
                    wait = (1.0 - self._tokens) / self._rate
            if wait >= 1.0:
                log.info("ARM write budget: waiting %.1f s before the next write", wait)
            self._sleep(wait)
            waited += wait

    def hold_off(self, seconds: float) -> None:
        """Azure said to wait (429 Retry-After): no write of this process goes out before then."""
        with self._lock:
            now = self._monotonic()
            self._refill(now)
            self._hold_until = max(self._hold_until, now + max(0.0, seconds))

    def observe_remaining(self, remaining: int) -> None:
        """Azure reported how many writes are left: never believe we have more."""
        with self._lock:
            self._refill(self._monotonic())
            self._tokens = min(self._tokens, float(max(0, remaining)))

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)


class ArmThrottlePolicy(SansIOHTTPPolicy[Any, Any]):
    """Takes a budget token per write attempt; reports a write's 429 and the remaining-writes header
    to the budget. (Reads and DELETEs have their own ARM limits; the retry policy alone honours their
    Retry-After.)"""

    def __init__(self, budget: WriteBudget) -> None:
        self._budget = budget

    def on_request(self, request: PipelineRequest[Any]) -> None:
        if request.http_request.method.upper() in WRITE_METHODS:
            self._budget.acquire()

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        http = response.http_response
        method = request.http_request.method.upper()
        if method not in WRITE_METHODS:
            return
        remaining = http.headers.get(_REMAINING_HEADER)
        if remaining is not None and remaining.isdigit():
            self._budget.observe_remaining(int(remaining))
        if http.status_code == 429:
            retry_after = _retry_after_seconds(http.headers.get("Retry-After"))
            seconds = retry_after if retry_after is not None else _DEFAULT_HOLD
            path = request.http_request.url.split("?", 1)[0]
            log.warning("ARM throttled %s %s (429): holding writes back %.1f s (Retry-After)", method, path, seconds)
            self._budget.hold_off(seconds)


class ArmRetryPolicy(RetryPolicy[Any, Any]):
    """azure-core's RetryPolicy, plus 429 for every method and the idempotent disk-access POSTs."""

    def __init__(self, retries: int = 8, *, backoff_factor: float = 0.8, backoff_max: int = 60) -> None:
        super().__init__(
            retry_total=retries,
            retry_status=retries,
            retry_connect=min(retries, 4),
            retry_read=min(retries, 4),
            retry_backoff_factor=backoff_factor,
            retry_backoff_max=backoff_max,
        )

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        """Release the refused response before waiting: the SDK streams LRO initial requests, and a
        retried response nobody reads would hold its connection until garbage collection."""
        if response is not None:
            _release(response.http_response)
        super().sleep(settings, transport, response)

    def _is_method_retryable(self, settings: dict[str, Any], request: Any, response: Any = None) -> bool:
        if response is not None and response.status_code == 429:
            return True
        method = request.method.upper()
        if method == "POST" and request.url.split("?", 1)[0].lower().endswith(_IDEMPOTENT_ACTIONS):
            return True
        result: bool = super()._is_method_retryable(settings, request, response)
        return result


def _release(http: Any) -> None:
    """Read (so the connection can be reused) and close an HTTP response; never raises."""
    with contextlib.suppress(Exception):  # a broken or consumed stream: closing is all that is left
        http.read()
    with contextlib.suppress(Exception):
        http.close()


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the retry policy parses it; hold for the default here
