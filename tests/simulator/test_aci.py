"""Container Instances through the real azure-mgmt-containerinstance client; containers are local processes."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models as cim
from bulwark_local.simulator import SimulatorEndpoints, running_simulator
from bulwark_local.simulator.client import AdminClient

from .conftest import LOCATION, SUBSCRIPTION, StaticToken, arm_call

T = TypeVar("T")
SECRET = "s3cr3t-SAS-signature-value"
SCRIPT = (
    "import hashlib, os, sys, time\n"
    "print('hello', os.environ.get('GREETING'))\n"
    "print('secret-sha', hashlib.sha256(os.environ.get('SECRET', '').encode()).hexdigest())\n"
    "print('oops', file=sys.stderr)\n"
    "sys.stdout.flush()\n"
    "time.sleep(float(os.environ.get('NAP', '0')))\n"
    "sys.exit(int(os.environ.get('CODE', '0')))\n"
)


@pytest.fixture(scope="module")
def aci(sim: SimulatorEndpoints) -> ContainerInstanceManagementClient:
    return aci_client(sim)


def aci_client(sim: SimulatorEndpoints) -> ContainerInstanceManagementClient:
    return ContainerInstanceManagementClient(
        StaticToken(), SUBSCRIPTION, base_url=sim.arm, polling_interval=0, connection_verify=sim.ca_bundle
    )


@pytest.fixture
def images(admin: AdminClient) -> Iterator[None]:
    admin.aci_images({"bulwark-test/*": ["{python}", "-c", SCRIPT], "alpine*": ["/bin/sh"]})
    yield
    admin.aci_reset_images()


def group(
    name: str, *, nap: float = 0, code: int = 0, policy: str = "Never", image: str = "bulwark-test/worker:1"
) -> cim.ContainerGroup:
    env = [
        cim.EnvironmentVariable(name="GREETING", value="world"),
        cim.EnvironmentVariable(name="SECRET", secure_value=SECRET),
        cim.EnvironmentVariable(name="NAP", value=str(nap)),
        cim.EnvironmentVariable(name="CODE", value=str(code)),
    ]
    container = cim.Container(
        name=name,
        image=image,
        environment_variables=env,
        resources=cim.ResourceRequirements(requests=cim.ResourceRequests(memory_in_gb=1.0, cpu=1.0)),
    )
    return cim.ContainerGroup(location=LOCATION, containers=[container], os_type="Linux", restart_policy=policy)


def wait_for(probe: Callable[[], T | None], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def terminated(aci: ContainerInstanceManagementClient, rg: str, name: str) -> Any:
    def probe() -> Any:
        found = aci.container_groups.get(rg, name)
        state = found.containers[0].instance_view.current_state
        return found if state.state == "Terminated" else None

    return wait_for(probe)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def test_group_runs_to_completion_with_env_logs_and_exit_code(
    aci: ContainerInstanceManagementClient, sim: SimulatorEndpoints, resource_group: str, images: None
) -> None:
    created = aci.container_groups.begin_create_or_update(resource_group, "job", group("job", code=3)).result()
    assert created.provisioning_state == "Succeeded" and created.os_type == "Linux"
    done = terminated(aci, resource_group, "job")
    view = done.containers[0].instance_view
    assert view.current_state.exit_code == 3 and view.current_state.detail_status == "Error"
    assert view.current_state.finish_time and view.restart_count == 0
    assert {e.name for e in view.events} >= {"Pulling", "Pulled", "Created", "Started"}
    assert done.instance_view.state == "Failed"
    logs = aci.containers.list_logs(resource_group, "job", "job").content
    assert "hello world" in logs and "oops" in logs
    assert f"secret-sha {hashlib.sha256(SECRET.encode()).hexdigest()}" in logs  # secure values reach the process
    env = {e.name: e for e in done.containers[0].environment_variables}
    assert env["GREETING"].value == "world" and env["SECRET"].value is None and env["SECRET"].secure_value is None
    assert aci.containers.list_logs(resource_group, "job", "job", tail=1).content.strip() == "oops"
    for path in Path(sim.state_dir).rglob("*"):  # never written: state, simulator log, container logs
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert SECRET.encode() not in path.read_bytes(), path

    ok = aci.container_groups.begin_create_or_update(resource_group, "ok", group("ok")).result()
    assert ok.name == "ok"
    done_ok = terminated(aci, resource_group, "ok")
    assert done_ok.containers[0].instance_view.current_state.exit_code == 0
    assert done_ok.containers[0].instance_view.current_state.detail_status == "Completed"
    assert done_ok.instance_view.state == "Succeeded"
    listed = {g.name: g for g in aci.container_groups.list_by_resource_group(resource_group)}
    assert set(listed) == {"job", "ok"} and listed["ok"].instance_view is None  # lists omit instanceView
    assert "ok" in {g.name for g in aci.container_groups.list()}


def test_running_group_is_killed_by_admin_and_by_delete(
    aci: ContainerInstanceManagementClient, admin: AdminClient, resource_group: str, images: None
) -> None:
    aci.container_groups.begin_create_or_update(resource_group, "long", group("long", nap=60)).result()
    running = aci.container_groups.get(resource_group, "long")
    assert running.containers[0].instance_view.current_state.state == "Running"
    assert running.instance_view.state == "Running"
    group_id = running.id
    pid = next(p["pid"] for p in admin.aci_processes() if p["group"] == group_id.lower())
    assert alive(pid)
    admin.aci_kill(group_id)  # a crash: SIGKILL
    crashed = terminated(aci, resource_group, "long")
    assert crashed.containers[0].instance_view.current_state.exit_code == 137
    assert crashed.instance_view.state == "Failed" and not alive(pid)

    aci.container_groups.begin_create_or_update(resource_group, "doomed", group("doomed", nap=60)).result()
    doomed_id = aci.container_groups.get(resource_group, "doomed").id
    doomed_pid = next(p["pid"] for p in admin.aci_processes() if p["group"] == doomed_id.lower())
    deleted = aci.container_groups.begin_delete(resource_group, "doomed").result()
    assert deleted.name == "doomed"
    assert not alive(doomed_pid)
    with pytest.raises(ResourceNotFoundError):
        aci.container_groups.get(resource_group, "doomed")


def test_on_failure_policy_restarts_a_crashed_container(
    aci: ContainerInstanceManagementClient, admin: AdminClient, resource_group: str, images: None
) -> None:
    aci.container_groups.begin_create_or_update(
        resource_group, "flaky", group("flaky", nap=60, policy="OnFailure")
    ).result()
    group_id = aci.container_groups.get(resource_group, "flaky").id
    admin.aci_kill(group_id, signal="TERM")

    def restarted() -> Any:
        view = aci.container_groups.get(resource_group, "flaky").containers[0].instance_view
        return view if view.restart_count == 1 and view.current_state.state == "Running" else None

    view = wait_for(restarted)
    assert view.previous_state.state == "Terminated" and view.previous_state.exit_code == 128 + signal.SIGTERM
    aci.container_groups.begin_delete(resource_group, "flaky").result()


def test_bad_groups_are_refused(aci: ContainerInstanceManagementClient, resource_group: str, images: None) -> None:
    with pytest.raises(HttpResponseError) as unknown:
        aci.container_groups.begin_create_or_update(resource_group, "x", group("x", image="contoso/unknown:1")).result()
    assert unknown.value.error.code == "InaccessibleImage"
    body = group("y")
    body.os_type = None
    with pytest.raises(HttpResponseError) as no_os:
        aci.container_groups.begin_create_or_update(resource_group, "y", body).result()
    assert no_os.value.status_code == 400
    with pytest.raises(ResourceNotFoundError):
        aci.container_groups.get(resource_group, "never")


@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_no_container_outlives_the_simulator(stop: str, tmp_path: Path) -> None:
    with running_simulator(tmp_path / stop) as sim:
        admin = AdminClient(sim.arm, sim.ca_bundle)
        admin.aci_images({"bulwark-test/*": ["{python}", "-c", SCRIPT]})
        rg = f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg-orphans?api-version=2021-04-01"
        arm_call(sim, "PUT", rg, {"location": LOCATION})
        aci_client(sim).container_groups.begin_create_or_update("rg-orphans", "w", group("w", nap=120)).result()
        pid = wait_for(lambda: [p["pid"] for p in admin.aci_processes()])[0]
        assert alive(pid)
        if stop == "kill":
            assert sim.process is not None
            os.kill(sim.process.pid, signal.SIGKILL)  # no cleanup code runs: the launcher's PDEATHSIG acts
            sim.process.wait()
    wait_for(lambda: not alive(pid), timeout=10)


def test_a_restarted_simulator_keeps_sql_and_faults_and_reports_lost_containers(tmp_path: Path) -> None:
    from azure.mgmt.sql import SqlManagementClient
    from azure.mgmt.sql import models as sm

    state = tmp_path / "state"
    rg = f"/subscriptions/{SUBSCRIPTION}/resourcegroups/rg-restart?api-version=2021-04-01"
    with running_simulator(state) as sim:
        admin = AdminClient(sim.arm, sim.ca_bundle)
        admin.aci_images({"bulwark-test/*": ["{python}", "-c", SCRIPT]})
        arm_call(sim, "PUT", rg, {"location": LOCATION})
        sql = SqlManagementClient(
            StaticToken(), SUBSCRIPTION, base_url=sim.arm, polling_interval=0, connection_verify=sim.ca_bundle
        )
        server = sm.Server(
            location=LOCATION,
            properties=sm.ServerProperties(administrator_login="a", administrator_login_password="P@ssw0rd1"),
        )
        sql.servers.begin_create_or_update("rg-restart", "srv", server).result()
        database = sql.databases.begin_create_or_update(
            "rg-restart", "srv", "db", sm.Database(location=LOCATION)
        ).result()
        before = admin.sql_populate(database.id, preset="tiny")["tables"]
        admin.faults(write_budget=500, write_budget_seconds=60)
        aci_client(sim).container_groups.begin_create_or_update("rg-restart", "w", group("w", nap=120)).result()
        pid = wait_for(lambda: [p["pid"] for p in admin.aci_processes()])[0]
        assert sim.process is not None
        os.kill(sim.process.pid, signal.SIGKILL)
        sim.process.wait()
    wait_for(lambda: not alive(pid), timeout=10)
    with running_simulator(state) as sim:
        admin = AdminClient(sim.arm, sim.ca_bundle)
        assert admin.sql_catalog(database.id)["tables"] == before
        assert admin.faults()["config"]["write_budget"] == 500
        aci = aci_client(sim)
        lost = aci.container_groups.get("rg-restart", "w")
        assert lost.containers[0].instance_view.current_state.exit_code == 137
        with pytest.raises(HttpResponseError) as conflict:
            aci.container_groups.begin_restart("rg-restart", "w").result()
        assert conflict.value.status_code == 409 and "recreate" in str(conflict.value)
