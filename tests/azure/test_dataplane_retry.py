"""The data-plane retry policy on its own: tries, backoff with jitter, Retry-After, the final error."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.azure.dataplane_retry import DataPlaneRetry, Transient, transient_status
from shared.core.errors import SourceError

# A made-up SAS: its signature is base64 of "secret-signature", there to prove reasons are redacted.
SAS = "https://acct.blob.core.windows.net/c/b?sv=2021-08-06&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"


def _exhausted(attempts: int, reason: str) -> SourceError:
    return SourceError(f"failed {attempts} times ({reason})")


def _policy(sleeps: list[float], *, jitter: float = 1.0, attempts: int = 6) -> DataPlaneRetry:
    return DataPlaneRetry(attempts, 0.25, 1.0, sleep=sleeps.append, jitter=lambda: jitter)


def test_the_first_good_result_is_returned_after_transient_failures() -> None:
    outcomes: list[str | Transient] = [Transient("HTTP 503 ServerBusy"), Transient("short body"), "data"]
    sleeps: list[float] = []
    assert _policy(sleeps).run(lambda: outcomes.pop(0), _exhausted, name="test") == "data"
    assert sleeps == [0.25, 0.5]


def test_backoff_doubles_up_to_its_cap_and_jitter_scales_it_by_half_to_whole() -> None:
    full, half = _policy([], jitter=1.0), _policy([], jitter=0.0)
    assert [full.delay(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert [half.delay(n) for n in range(1, 4)] == [0.125, 0.25, 0.5]


def test_exhausted_tries_raise_the_callers_error_with_the_last_redacted_reason() -> None:
    def attempt() -> Transient:
        raise ServiceRequestError(f"Max retries exceeded with url: {SAS}\nsecond line")

    sleeps: list[float] = []
    with pytest.raises(SourceError) as raised:
        _policy(sleeps, attempts=3).run(attempt, _exhausted, name="test")
    message = str(raised.value)
    assert message.startswith("failed 3 times (ServiceRequestError: Max retries exceeded with url: ")
    assert "c2VjcmV0" not in message and "second line" not in message
    assert len(sleeps) == 2


def test_the_servers_retry_after_is_waited_instead_of_a_shorter_backoff() -> None:
    outcomes: list[int | Transient | None] = [transient_status(429, "TooManyRequests", retry_after="3"), 7]
    sleeps: list[float] = []
    assert _policy(sleeps).run(lambda: outcomes.pop(0), _exhausted, name="test") == 7
    assert sleeps == [3.0]  # Retry-After 3 s beats the 0.25 s backoff; no second sleep on top


def test_an_error_the_attempt_raises_ends_the_tries_at_once() -> None:
    calls: list[int] = []

    def attempt() -> Transient:
        calls.append(1)
        raise SourceError("HTTP 400 InvalidPageRange")

    with pytest.raises(SourceError, match="InvalidPageRange"):
        _policy([]).run(attempt, _exhausted, name="test")
    assert calls == [1]


def test_transient_statuses_and_retry_after_parsing() -> None:
    assert transient_status(503, "ServerBusy") == Transient("HTTP 503 ServerBusy")
    assert transient_status(500, "") == Transient("HTTP 500")
    assert transient_status(503, "", retry_after="soon") == Transient("HTTP 503")
    assert all(transient_status(status, "x") is None for status in (201, 400, 403, 404, 409))
