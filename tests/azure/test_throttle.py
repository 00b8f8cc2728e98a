"""The ARM write budget and retry policy, on a fake transport and a fake clock."""

from __future__ import annotations

import threading
from typing import Any

from azure.core.pipeline import Pipeline
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.core.utils import CaseInsensitiveDict

from shared.azure.throttle import ArmRetryPolicy, ArmThrottlePolicy, WriteBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_budget_allows_a_burst_then_the_hourly_rate() -> None:
    clock = FakeClock()
    budget = WriteBudget(per_hour=3600, burst=5, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(5):
        assert budget.acquire() == 0.0
    assert budget.acquire() == 1.0  # one token a second at 3,600 an hour
    clock.now += 2.5
    assert budget.acquire() == 0.0 and budget.acquire() == 0.0
    assert budget.acquire() == 0.5
    assert budget.writes == 9 and budget.waited_seconds == 1.5


def test_budget_refill_never_exceeds_the_burst() -> None:
    clock = FakeClock()
    budget = WriteBudget(per_hour=1200, burst=3, monotonic=clock.monotonic, sleep=clock.sleep)
    clock.now += 10_000
    assert budget.available == 3
    for _ in range(3):
        budget.acquire()
    assert budget.acquire() == 3.0  # 1,200 an hour: one every three seconds


def test_hold_off_and_remaining_header_slow_every_writer() -> None:
    clock = FakeClock()
    budget = WriteBudget(per_hour=3600, burst=100, monotonic=clock.monotonic, sleep=clock.sleep)
    budget.hold_off(30)
    assert budget.acquire() == 30.0  # nothing goes out before the hold ends
    assert budget.acquire() == 0.0  # then the bucket is as full as before
    budget.observe_remaining(0)
    assert budget.acquire() == 1.0  # Azure says none are left: one at the hourly rate


def test_budget_is_shared_by_threads() -> None:
    budget = WriteBudget(per_hour=3600 * 1000, burst=50)
    done = []

    def worker() -> None:
        for _ in range(20):
            budget.acquire()
        done.append(1)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(done) == 5 and budget.writes == 100


class Response:
    def __init__(self, request: Any, status: int, headers: dict[str, str]) -> None:
        self.request = request
        self.status_code = status
        self.headers = CaseInsensitiveDict(headers)
        self.reason = "fake"
        self.content_type = "application/json"

        self.closed = False

    def body(self) -> bytes:
        return b"{}"

    def read(self) -> bytes:
        return b"{}"

    def close(self) -> None:
        self.closed = True

    def text(self, encoding: str | None = None) -> str:
        return "{}"


class FakeTransport(HttpTransport[Any, Any]):
    """Answers from a script of (status, headers); records requests, responses and sleeps."""

    def __init__(self, script: list[tuple[int, dict[str, str]]], clock: FakeClock) -> None:
        self.script = list(script)
        self.sent: list[str] = []
        self.responses: list[Response] = []
        self.clock = clock

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.sent.append(request.method)
        status, headers = self.script.pop(0) if self.script else (200, {})
        self.responses.append(Response(request, status, headers))
        return self.responses[-1]

    def sleep(self, duration: float) -> None:
        self.clock.sleep(duration)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass


def pipeline(transport: FakeTransport, budget: WriteBudget, retries: int = 4) -> Pipeline[Any, Any]:
    return Pipeline(
        transport=transport, policies=[ArmRetryPolicy(retries, backoff_factor=0.5), ArmThrottlePolicy(budget)]
    )


def test_429_waits_as_retry_after_says_then_succeeds() -> None:
    clock = FakeClock()
    budget = WriteBudget(per_hour=3600, burst=10, monotonic=clock.monotonic, sleep=clock.sleep)
    transport = FakeTransport([(429, {"Retry-After": "7"}), (429, {"Retry-After": "7"}), (200, {})], clock)
    url = "https://management.azure.com/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/snapshots/x"
    response = pipeline(transport, budget).run(HttpRequest("PUT", url))
    assert response.http_response.status_code == 200
    assert transport.sent == ["PUT", "PUT", "PUT"]
    assert sum(clock.sleeps) >= 14  # Retry-After honoured twice
    assert budget.writes == 3  # every attempt is a write Azure counts
    assert [r.closed for r in transport.responses] == [True, True, False]  # refused ones released


def test_idempotent_access_posts_are_retried_other_posts_not() -> None:
    clock = FakeClock()
    budget = WriteBudget(per_hour=3600, burst=10, monotonic=clock.monotonic, sleep=clock.sleep)
    base = "https://management.azure.com/subscriptions/s/resourceGroups/g/providers/Microsoft"
    grant = FakeTransport([(502, {}), (200, {})], clock)
    pipeline(grant, budget).run(HttpRequest("POST", f"{base}.Compute/snapshots/x/beginGetAccess?api-version=1"))
    assert grant.sent == ["POST", "POST"]
    export = FakeTransport([(502, {}), (200, {})], clock)
    response = pipeline(export, budget).run(HttpRequest("POST", f"{base}.Sql/servers/s/databases/d/export"))
    assert response.http_response.status_code == 502 and export.sent == ["POST"]  # could export twice
    throttled = FakeTransport([(429, {}), (200, {})], clock)
    pipeline(throttled, budget).run(HttpRequest("POST", f"{base}.Sql/servers/s/databases/d/export"))
    assert throttled.sent == ["POST", "POST"]  # a 429 was refused, not processed: safe to retry


def test_reads_do_not_spend_the_write_budget() -> None:
    clock = FakeClock()
    budget = WriteBudget(per_hour=3600, burst=1, monotonic=clock.monotonic, sleep=clock.sleep)
    transport = FakeTransport([], clock)
    for _ in range(5):
        pipeline(transport, budget).run(HttpRequest("GET", "https://management.azure.com/subscriptions/s"))
    assert budget.writes == 0 and clock.sleeps == []
