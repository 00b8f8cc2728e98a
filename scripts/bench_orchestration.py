"""The orchestration benchmark: one snapshot-only session over many VMs, in the local runtime.

    python -m scripts.bench_orchestration [--vms 200] [--in-flight 50] [--workdir DIR] [--json FILE]

Starts the local stack (Azurite + the Azure simulator), seeds ``--vms`` VMs with two small empty
managed disks each straight through ARM (one VM PUT per VM, the disks created ``Empty``: nothing to
format, nothing to read), stores a policy over them with image-level backup off, and runs one
on-demand session of the unmodified function app under ``bulwark_local.runtime`` (no injected
faults, no server write budget; the app's client write budget is raised so that it does not pace
the run either). Reported: the session's wall time, the orchestration overhead per resource (wall
milliseconds per VM and per disk) and the activities completed per second (from the runtime's
history). ``scripts.bench --orchestration-vms N`` calls :func:`run_orchestration_bench`;
``tests/app/test_scale.py`` uses the seeding and the settings helpers with a throttled budget.

The app's client-side ARM write budget (``BULWARK_ARM_WRITES_PER_HOUR``, default 1,200 writes an
hour with a burst of 120, like Azure) would pace a 400-snapshot session to ~14 minutes;
:func:`client_write_budget` sets it for the duration of a run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

__all__ = [
    "SCALE_TAG",
    "OrchestrationResult",
    "ScaleEstate",
    "client_write_budget",
    "orchestration_table",
    "run_orchestration_bench",
    "scale_policy",
    "seed_scale_estate",
    "snapshots_in",
    "spend_writes",
]

SCALE_TAG = "bench=scale"
VMS_PER_GROUP = 50
SEED_TOKEN = "Bearer bulwark-scale-seed"  # a principal of its own: seeding spends no app write budget
COMPUTE_API = "2024-03-02"
SNAPSHOT_API = "2023-10-02"
APP_LOCAL_TOKEN = "bulwark-local"  # AzureSettings.for_local_stack's static token: the app's principal
BENCH_KEY = "bench-orchestration-key"
UNTHROTTLED_WRITES_PER_HOUR = 10_000_000


@dataclass(frozen=True)
class ScaleEstate:
    subscription_id: str
    resource_groups: tuple[str, ...]
    vms: tuple[str, ...]
    disks: int

    def group_id(self, name: str) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{name}"


class _Arm:
    """Raw HTTPS calls to the simulator's ARM endpoint, one connection per thread."""

    def __init__(self, endpoint: str, ca_bundle: str, token: str = SEED_TOKEN) -> None:
        self._token = token
        parts = urlsplit(endpoint)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 443
        self._context = ssl.create_default_context(cafile=ca_bundle)
        self._local = threading.local()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        for attempt in range(3):
            connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
            if connection is None:
                connection = http.client.HTTPSConnection(self._host, self._port, context=self._context, timeout=60)
                self._local.connection = connection
            try:
                connection.request(
                    method,
                    path,
                    body=None if body is None else json.dumps(body),
                    headers={"Authorization": self._token, "Content-Type": "application/json"},
                )
                response = connection.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
                continue
            return response.status, json.loads(raw) if raw else None
        raise AssertionError("unreachable")


def seed_scale_estate(stack: Any, vms: int, *, tags: Mapping[str, str], threads: int = 8) -> ScaleEstate:
    """``vms`` VMs tagged ``tags`` plus ``SCALE_TAG``, ``VMS_PER_GROUP`` per resource group, each with an
    empty 1 GiB OS disk and an empty 1 GiB data disk (LUN 0) that the VM PUT creates."""
    arm = _Arm(stack.arm_endpoint, stack.ca_bundle)
    subscription = stack.subscription_id
    run = os.urandom(3).hex()
    groups = tuple(f"rg-scale-{run}-{n}" for n in range((vms + VMS_PER_GROUP - 1) // VMS_PER_GROUP))
    for group in groups:
        status, body = arm.call(
            "PUT",
            f"/subscriptions/{subscription}/resourcegroups/{group}?api-version=2021-04-01",
            {"location": stack.location},
        )
        if status not in (200, 201):
            raise RuntimeError(f"resource group {group}: {status} {body}")
    key, value = SCALE_TAG.split("=", 1)
    all_tags = {**tags, key: value}

    def put_vm(number: int) -> str:
        group = groups[number // VMS_PER_GROUP]
        name = f"vm{number:04d}"
        path = (
            f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/"
            f"{name}?api-version={COMPUTE_API}"
        )
        document = {
            "location": stack.location,
            "tags": all_tags,
            "properties": {
                "hardwareProfile": {"vmSize": "Standard_B1s"},
                "storageProfile": {
                    "osDisk": {"name": f"{name}-os", "osType": "Linux", "createOption": "Empty", "diskSizeGB": 1},
                    "dataDisks": [{"lun": 0, "name": f"{name}-data", "createOption": "Empty", "diskSizeGB": 1}],
                },
                "networkProfile": {"networkInterfaces": []},
            },
        }
        status, body = arm.call("PUT", path, document)
        if status not in (200, 201):
            raise RuntimeError(f"VM {name}: {status} {body}")
        vm_id: str = body["id"]
        return vm_id

    with ThreadPoolExecutor(threads) as pool:
        ids = tuple(pool.map(put_vm, range(vms)))
    return ScaleEstate(subscription, groups, ids, disks=2 * vms)


def snapshots_in(stack: Any, groups: Sequence[str]) -> list[str]:
    """Every snapshot id in ``groups`` (ARM list with ``nextLink`` paging)."""
    arm = _Arm(stack.arm_endpoint, stack.ca_bundle)
    found: list[str] = []
    for group in groups:
        path: str | None = (
            f"/subscriptions/{stack.subscription_id}/resourceGroups/{group}/providers/Microsoft.Compute/snapshots"
            f"?api-version={SNAPSHOT_API}"
        )
        while path:
            status, body = arm.call("GET", path)
            if status != 200:
                raise RuntimeError(f"list snapshots in {group}: {status} {body}")
            found.extend(item["id"] for item in body["value"])
            link = body.get("nextLink")
            path = None if not link else link[len(stack.arm_endpoint.rstrip("/")) :]
    return found


def spend_writes(stack: Any, count: int, *, token: str = APP_LOCAL_TOKEN) -> None:
    """``count`` harmless ARM writes (a resource group PUT) as the principal of ``token`` (default: the
    app's local one): another tool using the same identity's write budget."""
    arm = _Arm(stack.arm_endpoint, stack.ca_bundle, token=f"Bearer {token}")
    path = f"/subscriptions/{stack.subscription_id}/resourcegroups/rg-scale-other-tool?api-version=2021-04-01"
    for _ in range(count):
        status, body = arm.call("PUT", path, {"location": stack.location})
        if status not in (200, 201, 429):
            raise RuntimeError(f"other tool's write: {status} {body}")


@contextmanager
def client_write_budget(writes_per_hour: int) -> Iterator[None]:
    """Sets ``BULWARK_ARM_WRITES_PER_HOUR`` (the app's client-side ARM write budget, which local mode
    follows too) until the block ends; services built meanwhile get that budget."""
    previous = os.environ.get("BULWARK_ARM_WRITES_PER_HOUR")
    os.environ["BULWARK_ARM_WRITES_PER_HOUR"] = str(writes_per_hour)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("BULWARK_ARM_WRITES_PER_HOUR", None)
        else:
            os.environ["BULWARK_ARM_WRITES_PER_HOUR"] = previous


def scale_policy(
    estate: ScaleEstate, policy_id: str, repository: str, secret: Path, *, in_flight: int, region: str
) -> dict[str, Any]:
    """A snapshot-only policy over the scale estate: keep 2 snapshots, ``in_flight`` VMs at once."""
    return {
        "id": policy_id,
        "scope": {"resource_groups": [estate.group_id(g) for g in estate.resource_groups], "tags": [SCALE_TAG]},
        "schedule": {"time_zone": "UTC", "daily": {"times": ["03:00"]}},
        "snapshots": {"keep": 2},
        "image_backup": {"enabled": False},
        "repository": {"location": repository, "region": region},
        "encryption": {"passphrase": {"file": str(secret)}},
        "concurrency": {"resources_in_flight": in_flight, "workers_in_flight": min(4, in_flight)},
    }


@dataclass
class OrchestrationResult:
    vms: int
    disks: int
    in_flight: int
    seed_seconds: float
    wall_seconds: float
    status: str
    resources_success: int
    snapshots: int
    activities: int
    orchestrations: int
    ms_per_vm: float = 0.0
    ms_per_disk: float = 0.0
    activities_per_second: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.wall_seconds > 0:
            self.ms_per_vm = 1000 * self.wall_seconds / max(1, self.vms)
            self.ms_per_disk = 1000 * self.wall_seconds / max(1, self.disks)
            self.activities_per_second = self.activities / self.wall_seconds

    @property
    def passed(self) -> bool:
        return self.status == "Success" and self.resources_success == self.vms and self.snapshots == self.disks


def orchestration_table(result: OrchestrationResult) -> Table:
    """The bench table: wall time, overhead per resource, activity rate."""
    table = Table(title=f"orchestration: one snapshot-only session, {result.vms} VMs / {result.disks} disks")
    for column in ("in flight", "wall s", "ms / VM", "ms / disk", "activities", "activities / s", "result"):
        table.add_column(column, justify="right")
    table.add_row(
        str(result.in_flight),
        f"{result.wall_seconds:.1f}",
        f"{result.ms_per_vm:.0f}",
        f"{result.ms_per_disk:.0f}",
        str(result.activities),
        f"{result.activities_per_second:.1f}",
        f"{result.status}: {result.resources_success}/{result.vms} VMs, {result.snapshots} snapshots",
    )
    return table


def _count_runtime_work(host: Any) -> tuple[int, int]:
    """(activities completed or failed, orchestration instances) from the runtime's history."""
    from bulwark_local.runtime.history import EventType

    done = {int(EventType.TASK_COMPLETED), int(EventType.TASK_FAILED)}
    instances = host.store.list_instances()
    activities = sum(
        1 for record in instances for event in host.store.history(record.instance_id) if event["EventType"] in done
    )
    return activities, len(instances)


def _call(url: str, method: str = "GET", *, timeout: float = 30) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    request.add_header("x-functions-key", BENCH_KEY)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def run_orchestration_bench(vms: int = 200, *, in_flight: int = 50, workdir: Path | None = None) -> OrchestrationResult:
    """One snapshot-only session over ``vms`` VMs on a fresh local stack; see the module docstring."""
    from azure.data.tables import TableClient
    from bulwark_local.runtime import HostOptions, LocalFunctionsHost
    from bulwark_local.stack import running_stack

    from shared.core.clock import SystemClock
    from shared.core.crypto import ScryptParams
    from shared.policy.document import policy_from_dict
    from shared.policy.table_store import AzureTablePolicyStore
    from shared.repo.repository import Repository
    from shared.storage.location import open_store
    from shared.wiring import POLICIES_TABLE, reset_services

    scratch = Path(tempfile.mkdtemp(prefix="bulwark-bench-orch-", dir=workdir))
    try:
        with running_stack(scratch / "stack") as stack:
            started = time.monotonic()
            estate = seed_scale_estate(stack, vms, tags={"app": "bench"})
            seed_seconds = time.monotonic() - started
            passphrase = os.urandom(16).hex()
            secret = scratch / "repo.passphrase"
            secret.write_text(passphrase + "\n", encoding="utf-8")
            repository = str(scratch / "repo")
            Repository.init(
                open_store(repository, {}, create=True), passphrase, SystemClock(), scrypt=ScryptParams(n=1 << 10)
            )
            document = scale_policy(
                estate, "bench-orch", repository, secret, in_flight=in_flight, region=stack.location
            )
            connection = stack.storage_connection_string
            with TableClient.from_connection_string(connection, table_name=POLICIES_TABLE) as table:
                store = AzureTablePolicyStore(table)
                store.ensure_table()
                store.create(policy_from_dict(document))
            saved = {name: os.environ.get(name) for name in ("BULWARK_LOCAL_STACK", "BULWARK_STATE_DIR")}
            os.environ["BULWARK_LOCAL_STACK"] = str(Path(stack.state_dir) / "stack.json")
            os.environ["BULWARK_STATE_DIR"] = str(scratch / "state")
            try:
                with client_write_budget(UNTHROTTLED_WRITES_PER_HOUR):
                    options = HostOptions(port=0, key=BENCH_KEY, timers=False, state_dir=scratch / "runtime")
                    with LocalFunctionsHost.from_module("function_app", options) as host:
                        started = time.monotonic()
                        status, answer = _call(f"{host.base_url}/api/policies/bench-orch/run", "POST")
                        if status != 202:
                            raise RuntimeError(f"run the policy: {status} {answer}")
                        document = _wait(host.base_url, answer["id"], timeout=max(600.0, vms * 3.0))
                        wall = time.monotonic() - started
                        activities, orchestrations = _count_runtime_work(host)
            finally:
                reset_services()
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
            snapshots = len(snapshots_in(stack, estate.resource_groups))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    output = document.get("output") or {}
    resources = output.get("resources", [])
    return OrchestrationResult(
        vms=vms,
        disks=estate.disks,
        in_flight=in_flight,
        seed_seconds=round(seed_seconds, 2),
        wall_seconds=round(wall, 2),
        status=str(output.get("status", document.get("runtime_status"))),
        resources_success=sum(1 for r in resources if r.get("status") == "Success"),
        snapshots=snapshots,
        activities=activities,
        orchestrations=orchestrations,
    )


def _wait(base_url: str, instance_id: str, *, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, document = _call(f"{base_url}/api/sessions/{instance_id}")
        if status != 200:
            raise RuntimeError(f"session {instance_id}: {status} {document}")
        if document["runtime_status"] in ("Completed", "Failed", "Terminated"):
            result: dict[str, Any] = document
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"session {instance_id} did not finish in {timeout:.0f} s: {document['custom_status']}")
        time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_orchestration", description=__doc__.split("\n")[0])
    parser.add_argument("--vms", type=int, default=200, help="VMs in the policy, two disks each (default 200)")
    parser.add_argument("--in-flight", type=int, default=50, help="VMs processed at once (default 50)")
    parser.add_argument("--workdir", type=Path, help="parent of the scratch directory")
    parser.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    options = parser.parse_args(argv)
    result = run_orchestration_bench(options.vms, in_flight=options.in_flight, workdir=options.workdir)
    Console().print(orchestration_table(result))
    print(json.dumps(asdict(result), indent=2))
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
