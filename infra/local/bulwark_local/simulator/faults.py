"""Injected faults and ARM throttling, with seeded randomness so a test run is reproducible.

Configured through the admin API (``GET|PATCH|DELETE /_bulwark/faults``, ``bulwark-sim faults``) and
kept in the state (a restart keeps them); counters and write windows live in memory.

ARM (every ``/subscriptions/...`` call, polls included, before it is routed):

- ``arm_429``: this fraction of calls answers 429 ``TooManyRequests`` with ``Retry-After:
  arm_429_retry_after``.
- ``arm_5xx``: this fraction answers ``arm_5xx_status`` (500, 502, 503 or 504) in Azure's error shape;
  the request is not executed, so a retry is safe.
- ``arm_delay``: this fraction is held ``arm_delay_seconds`` before it is handled (client timeouts).
- ``write_budget`` writes (PUT, PATCH, POST) per ``write_budget_seconds`` (sliding window) per
  principal (the bearer token's ``oid``/``appid`` claim when it is a JWT, else the token itself), like
  ARM's ~1,200 writes per hour. Beyond it: 429 ``SubscriptionRequestsThrottled`` with ``Retry-After``
  = seconds until the oldest write leaves the window. Every write response carries
  ``x-ms-ratelimit-remaining-subscription-writes`` (against the budget, or ARM's nominal 1,200/hour
  when none is set; only a set budget is enforced); DELETEs carry ``...-deletes`` (nominal 15,000).

Data plane (the simulator's blob port: managed-disk SAS URLs and VHD page blobs):

- ``sas_resets``: this fraction of blob reads (GET without ``comp``) sends part of the body, then
  resets the TCP connection (RST).
- ``sas_lifetime_seconds``: a managed-disk SAS stops working (403 AuthenticationFailed) this many
  simulated seconds after its first use, whatever its ``se`` says (early expiry, e.g. a revoked key).

Draws come from one ``random.Random(seed)`` in request order, so a sequential test sees the same
faults on every run; setting the config reseeds it.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import math
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from .admin import AdminError, admin_body
from .arm import ArmError, json_response
from .dataplane import StorageError
from .state import JsonDict, StateStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

DEFAULT_FAULTS: JsonDict = {
    "seed": 0,
    "arm_429": 0.0,
    "arm_429_retry_after": 1,
    "arm_5xx": 0.0,
    "arm_5xx_status": 503,
    "arm_delay": 0.0,
    "arm_delay_seconds": 0.0,
    "write_budget": 0,
    "write_budget_seconds": 3600.0,
    "sas_resets": 0.0,
    "sas_lifetime_seconds": 0.0,
}
NOMINAL_WRITES_PER_HOUR = 1200
NOMINAL_DELETES_PER_HOUR = 15000
_WRITES = ("PUT", "PATCH", "POST")
_FRACTIONS = ("arm_429", "arm_5xx", "arm_delay", "sas_resets")
_5XX = {
    500: ("InternalServerError", "The server encountered an internal error. Please retry the request."),
    502: ("BadGateway", "The gateway did not receive a response from the resource provider. Please retry."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry the request."),
    504: ("GatewayTimeout", "The gateway did not receive a response within the specified time period."),
}
RESET_AFTER_BYTES = 64 * 1024


class Faults:
    def __init__(self, state: StateStore) -> None:
        self._state = state
        self._lock = threading.Lock()
        stored = state.get("settings", "faults") or {}
        self._config: JsonDict = {**DEFAULT_FAULTS, **stored}
        self._random = random.Random(self._config["seed"])
        self._writes: dict[str, collections.deque[float]] = {}
        self._deletes: dict[str, collections.deque[float]] = {}
        self._first_use: dict[str, float] = {}
        self.injected: collections.Counter[str] = collections.Counter()

    # -- configuration -------------------------------------------------------------------------

    def config(self) -> JsonDict:
        with self._lock:
            return dict(self._config)

    def update(self, changes: JsonDict) -> JsonDict:
        unknown = sorted(set(changes) - set(DEFAULT_FAULTS))
        if unknown:
            raise ValueError(f"unknown fault settings {unknown}; known: {sorted(DEFAULT_FAULTS)}")
        merged = {**self.config(), **changes}
        for name in _FRACTIONS:
            value = float(merged[name])
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a fraction of calls: between 0 and 1, got {value}")
            merged[name] = value
        if int(merged["arm_5xx_status"]) not in _5XX:
            raise ValueError(f"arm_5xx_status must be one of {sorted(_5XX)}")
        for name in ("write_budget", "arm_429_retry_after", "seed"):
            merged[name] = int(merged[name])
            if merged[name] < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("write_budget_seconds", "arm_delay_seconds", "sas_lifetime_seconds"):
            merged[name] = float(merged[name])
            if merged[name] < 0:
                raise ValueError(f"{name} must be >= 0")
        if merged["write_budget_seconds"] <= 0:
            raise ValueError("write_budget_seconds must be > 0")
        with self._lock:
            self._config = merged
            self._random = random.Random(merged["seed"])
            if "write_budget" in changes or "write_budget_seconds" in changes:
                self._writes.clear()
        self._state.put("settings", "faults", merged)
        return merged

    def clear(self) -> JsonDict:
        with self._lock:
            self._config = dict(DEFAULT_FAULTS)
            self._random = random.Random(0)
            self._writes.clear()
            self._deletes.clear()
            self._first_use.clear()
            self.injected.clear()
        self._state.put("settings", "faults", dict(DEFAULT_FAULTS))
        return dict(DEFAULT_FAULTS)

    def status(self) -> JsonDict:
        now = self._now()
        with self._lock:
            window = float(self._config["write_budget_seconds"])
            principals = {}
            for principal, stamps in self._writes.items():
                _expire(stamps, now - window)
                principals[principal] = {"writesInWindow": len(stamps), "remaining": self._remaining(stamps)}
            return {"config": dict(self._config), "injected": dict(self.injected), "principals": principals}

    def admin_routes(self) -> dict[tuple[str, str], Callable[[Request], Response]]:
        return {
            ("GET", "/faults"): lambda r: json_response(self.status()),
            ("PATCH", "/faults"): self._patch,
            ("DELETE", "/faults"): lambda r: json_response({"config": self.clear()}),
        }

    def _patch(self, request: Request) -> Response:
        try:
            return json_response({"config": self.update(admin_body(request))})
        except (ValueError, TypeError) as error:
            raise AdminError(400, str(error)) from error

    # -- ARM -----------------------------------------------------------------------------------

    def before_arm(self, request: Request) -> Response | None:
        """A fault response, or None to go on (after an injected delay, if drawn)."""
        principal = principal_of(request.headers.get("Authorization", ""))
        now = self._now()
        delay = 0.0
        with self._lock:
            config = self._config
            draw_429, draw_5xx, draw_delay = (self._random.random() for _ in range(3))
            if draw_429 < config["arm_429"]:
                self.injected["arm429"] += 1
                seconds = int(config["arm_429_retry_after"])
                error = ArmError(
                    429,
                    "TooManyRequests",
                    "The request is being throttled as the limit has been reached for operation type - "
                    f"{request.method}_ObservationWindow. Retry after {seconds} seconds. For more information, "
                    "see - https://aka.ms/throttling",
                )
                return _with_headers(error.response(), {"Retry-After": str(seconds)})
            if draw_5xx < config["arm_5xx"]:
                self.injected["arm5xx"] += 1
                status = int(config["arm_5xx_status"])
                code, message = _5XX[status]
                return ArmError(status, code, message).response()
            if request.method in _WRITES:
                throttled = self._spend_write(principal, now, request)
                if throttled is not None:
                    return throttled
            elif request.method == "DELETE":
                stamps = self._deletes.setdefault(principal, collections.deque())
                _expire(stamps, now - 3600)
                stamps.append(now)
            if draw_delay < config["arm_delay"]:
                self.injected["armDelayed"] += 1
                delay = float(config["arm_delay_seconds"])
        if delay > 0:
            time.sleep(delay)
        return None

    def _spend_write(self, principal: str, now: float, request: Request) -> Response | None:
        budget = int(self._config["write_budget"])
        window = float(self._config["write_budget_seconds"]) if budget else 3600.0
        stamps = self._writes.setdefault(principal, collections.deque())
        _expire(stamps, now - window)
        if budget and len(stamps) >= budget:
            self.injected["budget429"] += 1
            seconds = max(1, math.ceil(stamps[0] + window - now))
            error = ArmError(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of 'write' requests for subscription '{_subscription(request.path)}' actor '{principal}' "
                f"exceeded. Please try again after '{seconds}' seconds after additional tokens are available. "
                "Refer to https://aka.ms/arm-throttling for additional information.",
            )
            headers = {"Retry-After": str(seconds), "x-ms-ratelimit-remaining-subscription-writes": "0"}
            return _with_headers(error.response(), headers)
        stamps.append(now)
        return None

    def after_arm(self, request: Request, response: Response) -> None:
        """Azure's remaining-requests headers on writes and deletes."""
        if request.method not in (*_WRITES, "DELETE") or response.status_code == 429:
            return
        principal = principal_of(request.headers.get("Authorization", ""))
        with self._lock:
            if request.method == "DELETE":
                used = len(self._deletes.get(principal, ()))
                response.headers["x-ms-ratelimit-remaining-subscription-deletes"] = str(
                    max(0, NOMINAL_DELETES_PER_HOUR - used)
                )
                return
            stamps = self._writes.get(principal, collections.deque())
            response.headers["x-ms-ratelimit-remaining-subscription-writes"] = str(self._remaining(stamps))

    def _remaining(self, stamps: collections.deque[float]) -> int:
        budget = int(self._config["write_budget"]) or NOMINAL_WRITES_PER_HOUR
        return max(0, budget - len(stamps))

    # -- data plane ----------------------------------------------------------------------------

    def data_fault(self, request: Request) -> str | Response | None:
        """``"reset"``, an error response (early SAS expiry), or None."""
        grant = request.args.get("si")
        with self._lock:
            lifetime = float(self._config["sas_lifetime_seconds"])
            if grant and lifetime > 0:
                now = self._now()
                first = self._first_use.setdefault(grant, now)
                if now - first >= lifetime:
                    self.injected["sasExpired"] += 1
                    return StorageError(
                        403,
                        "AuthenticationFailed",
                        "Server failed to authenticate the request. The SAS is no longer valid (it expired or its "
                        "key was revoked). Request a new SAS with beginGetAccess.",
                    ).response(request.headers.get("x-ms-client-request-id", "fault"))
            resets = self._config["sas_resets"]
            if request.method == "GET" and "comp" not in request.args and resets > 0 and self._random.random() < resets:
                self.injected["sasResets"] += 1
                return "reset"
        return None

    def _now(self) -> float:
        return self._state.now().timestamp()


def reset_midway(
    environ: WSGIEnvironment, start_response: StartResponse, body: Iterable[bytes], limit: int = RESET_AFTER_BYTES
) -> Iterator[bytes]:
    """Send the headers and up to ``limit`` bytes of ``body``, then reset the connection (RST)."""
    sent = 0
    try:
        for chunk in body:
            room = limit - sent
            if len(chunk) >= room:
                if room > 0:
                    yield chunk[:room]
                break
            sent += len(chunk)
            yield chunk
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    connection = environ.get("werkzeug.socket")
    if isinstance(connection, socket.socket):
        # Linger 0: closing the socket sends RST instead of FIN, and unsent data is dropped.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raise ConnectionResetError("simulated connection reset (faults: sas_resets)")


def principal_of(authorization: str) -> str:
    """A stable, non-secret id for the caller: the JWT's oid/appid/sub, else a hash of the token."""
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else authorization
    parts = token.split(".")
    if len(parts) == 3:
        try:
            claims: Any = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            for claim in ("oid", "appid", "sub"):
                if isinstance(claims, dict) and claims.get(claim):
                    return str(claims[claim])
        except ValueError:
            pass
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _expire(stamps: collections.deque[float], before: float) -> None:
    while stamps and stamps[0] <= before:
        stamps.popleft()


def _subscription(path: str) -> str:
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else ""


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    response.headers.update(headers)
    return response
