"""Injected faults: ARM 429/5xx/delays, the per-principal write budget, SAS read resets, early SAS expiry."""

from __future__ import annotations

import http.client
import os
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.sql import SqlManagementClient
from azure.mgmt.sql import models as sm
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminApiError, AdminClient
from bulwark_local.simulator.faults import principal_of

from .conftest import LOCATION, SUBSCRIPTION, StaticToken, arm_call
from .test_compute import make_disk, snapshot
from .test_dataplane import blob, grant

MIB = 1 << 20
WRITES = "x-ms-ratelimit-remaining-subscription-writes"


@pytest.fixture(autouse=True)
def _clear_faults(admin: AdminClient) -> Iterator[None]:
    admin.clear_faults()
    yield
    admin.clear_faults()


def sql_client(sim: SimulatorEndpoints, **options: Any) -> SqlManagementClient:
    return SqlManagementClient(
        StaticToken(), SUBSCRIPTION, base_url=sim.arm, polling_interval=0, connection_verify=sim.ca_bundle, **options
    )


def group_url(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{name}?api-version=2021-04-01"


def test_arm_429_on_a_fraction_of_calls_is_reproducible(
    sim: SimulatorEndpoints, admin: AdminClient, resource_group: str
) -> None:
    def statuses() -> list[int]:
        admin.faults(arm_429=0.3, arm_429_retry_after=2, seed=42)
        return [arm_call(sim, "GET", group_url(resource_group))[0] for _ in range(20)]

    first = statuses()
    assert first == statuses()  # same seed, same faults
    assert 2 <= first.count(429) <= 12 and set(first) == {200, 429}
    admin.faults(arm_429=1.0)
    status, headers, body = arm_call(sim, "GET", group_url(resource_group))
    assert status == 429 and headers["Retry-After"] == "2" and body["error"]["code"] == "TooManyRequests"
    assert admin.faults()["injected"]["arm429"] >= 4


def test_sdk_retries_429_and_5xx_and_honours_retry_after(
    sim: SimulatorEndpoints, admin: AdminClient, resource_group: str
) -> None:
    sql = sql_client(sim, retry_backoff_factor=0.01)
    body = sm.Server(location=LOCATION, administrator_login="admin1", administrator_login_password="Passw0rd!x")
    sql.servers.begin_create_or_update(resource_group, "srv-faults", body).result()
    admin.faults(arm_429=0.25, arm_429_retry_after=1, arm_5xx=0.2, arm_5xx_status=503, seed=6)
    started = time.monotonic()
    for index in range(6):
        rule = sm.FirewallRule(start_ip_address=f"10.0.0.{index}", end_ip_address=f"10.0.0.{index}")
        sql.firewall_rules.create_or_update(resource_group, "srv-faults", f"rule{index}", rule)
    assert len(list(sql.firewall_rules.list_by_server(resource_group, "srv-faults"))) == 6
    injected = admin.faults()["injected"]
    assert injected.get("arm429", 0) >= 1 and injected.get("arm5xx", 0) >= 1
    assert time.monotonic() - started >= injected["arm429"] * 1.0  # each 429 waited its Retry-After


def test_5xx_is_answered_before_the_request_runs(
    sim: SimulatorEndpoints, admin: AdminClient, resource_group: str
) -> None:
    admin.faults(arm_5xx=1.0, arm_5xx_status=500)
    status, _, body = arm_call(sim, "PUT", group_url("rg-never-made"), {"location": LOCATION})
    assert status == 500 and body["error"]["code"] == "InternalServerError"
    admin.clear_faults()
    assert arm_call(sim, "GET", group_url("rg-never-made"))[0] == 404


def test_delayed_responses(sim: SimulatorEndpoints, admin: AdminClient, resource_group: str) -> None:
    admin.faults(arm_delay=1.0, arm_delay_seconds=0.4)
    started = time.monotonic()
    assert arm_call(sim, "GET", group_url(resource_group))[0] == 200
    assert time.monotonic() - started >= 0.4
    sql = sql_client(sim, read_timeout=0.1, retry_total=0)
    with pytest.raises(Exception) as timed_out:  # the SDK's ServiceResponseError (read timeout)
        sql.servers.list_by_resource_group(resource_group).next()
    assert "timed out" in str(timed_out.value).lower() or "timeout" in type(timed_out.value).__name__.lower()


def test_write_budget_per_principal(sim: SimulatorEndpoints, admin: AdminClient) -> None:
    admin.faults(write_budget=4, write_budget_seconds=1)
    remaining = []
    for index in range(4):
        status, headers, _ = arm_call(sim, "PUT", group_url(f"rg-budget-{index}"), {"location": LOCATION})
        assert status == 201
        remaining.append(int(headers[WRITES]))
    assert remaining == [3, 2, 1, 0]
    status, headers, body = arm_call(sim, "PUT", group_url("rg-budget-x"), {"location": LOCATION})
    assert status == 429 and body["error"]["code"] == "SubscriptionRequestsThrottled"
    assert int(headers["Retry-After"]) == 1 and headers[WRITES] == "0"
    assert "try again after" in body["error"]["message"]
    assert arm_call(sim, "GET", group_url("rg-budget-0"))[0] == 200  # reads are not writes
    status_db = admin.faults()["principals"]
    assert status_db[principal_of("Bearer test")]["remaining"] == 0
    time.sleep(int(headers["Retry-After"]))
    assert arm_call(sim, "PUT", group_url("rg-budget-x"), {"location": LOCATION})[0] == 201  # the window moved


def test_sdk_waits_for_the_write_budget_instead_of_failing(
    sim: SimulatorEndpoints, admin: AdminClient, resource_group: str
) -> None:
    sql = sql_client(sim)
    body = sm.Server(location=LOCATION, administrator_login="admin1", administrator_login_password="Passw0rd!x")
    sql.servers.begin_create_or_update(resource_group, "srv-budget", body).result()
    admin.faults(write_budget=3, write_budget_seconds=1)
    started = time.monotonic()
    for index in range(7):
        rule = sm.FirewallRule(start_ip_address=f"10.1.0.{index}", end_ip_address=f"10.1.0.{index}")
        sql.firewall_rules.create_or_update(resource_group, "srv-budget", f"r{index}", rule)
    assert time.monotonic() - started >= 1.0  # 7 writes at 3 per second need two more windows
    assert admin.faults()["injected"]["budget429"] >= 1
    assert len(list(sql.firewall_rules.list_by_server(resource_group, "srv-budget"))) == 7


def test_nominal_write_header_without_a_budget(sim: SimulatorEndpoints) -> None:
    status, headers, _ = arm_call(sim, "PUT", group_url("rg-nominal"), {"location": LOCATION})
    assert status in (200, 201) and 0 < int(headers[WRITES]) < 1200


def test_sas_reads_survive_connection_resets(
    sim: SimulatorEndpoints, admin: AdminClient, compute: ComputeManagementClient, resource_group: str
) -> None:
    disk = make_disk(compute, resource_group, "resets", 1)
    data = os.urandom(2 * MIB)
    admin.guest_write(disk.id, 8 * MIB, data)
    snapshot(compute, resource_group, "resets-snap", disk.id)
    sas = grant(compute, resource_group, "resets-snap")
    admin.faults(sas_resets=0.5, seed=24)  # seed 24: the third read is reset once (the SDK waits 1 s per retry)
    client = blob(sim, sas)
    for _ in range(3):
        assert client.download_blob(offset=8 * MIB, length=2 * MIB, max_concurrency=1).readall() == data
    assert admin.faults()["injected"]["sasResets"] == 1  # retried by the SDK, same bytes

    admin.faults(sas_resets=1.0)
    parts = urlsplit(sas)
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port, context=ssl.create_default_context(cafile=sim.ca_bundle), timeout=10
    )
    connection.request("GET", f"{parts.path}?{parts.query}", headers={"x-ms-range": f"bytes={8 * MIB}-{10 * MIB - 1}"})
    response = connection.getresponse()
    assert response.status == 206
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        response.read()
    connection.close()


def test_sas_expires_early(
    sim: SimulatorEndpoints, admin: AdminClient, compute: ComputeManagementClient, resource_group: str
) -> None:
    disk = make_disk(compute, resource_group, "early", 1)
    snapshot(compute, resource_group, "early-snap", disk.id)
    admin.faults(sas_lifetime_seconds=60)
    client = blob(sim, grant(compute, resource_group, "early-snap", seconds=3600))
    assert client.download_blob(offset=0, length=512).readall() == bytes(512)
    admin.advance_clock(61)
    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as expired:
        client.download_blob(offset=0, length=512).readall()
    assert expired.value.error_code == "AuthenticationFailed"
    assert admin.faults()["injected"]["sasExpired"] >= 1


def test_fault_settings_are_validated(admin: AdminClient) -> None:
    with pytest.raises(AdminApiError, match="between 0 and 1"):
        admin.faults(arm_429=1.5)
    with pytest.raises(AdminApiError, match="unknown fault settings"):
        admin.faults(meteor_strike=0.1)
    with pytest.raises(AdminApiError, match="arm_5xx_status"):
        admin.faults(arm_5xx_status=418)
    assert admin.faults()["config"]["arm_429"] == 0.0
