"""The demo estate: two resource groups of Linux VMs whose disks hold real ext4 file systems.

Every disk is an ext4 image built with ``mkfs.ext4 -d`` from a generated file tree (deterministic
per disk name), written into the simulator through the guest API (only the image's data extents,
so the disks stay sparse). The VMs are created over ARM with the real compute client, from
existing disks (createOption Attach), like a restore would.

- ``bulwark-demo-app``: ``app-01`` (OS + one data disk), ``app-02`` (OS only).
- ``bulwark-demo-data``: ``db-01`` (OS + two data disks), ``legacy-01`` (an unmanaged OS disk: a VHD
  page blob in the simulator's storage account ``bulwarkvhds``, container ``vhds``).
- SQL, in ``bulwark-demo-data``: server ``sql-demo`` (the stack's region) with ``master`` and the
  databases ``sales`` (Customers, Orders ~7 MB of rows, Products) and ``inventory`` (Warehouses,
  StockMovements), generated deterministically (sqldata.PRESETS); staging server ``sql-demo-staging``
  in another region (northeurope, or westeurope when the stack lives in northeurope), empty. Admin
  login ``bulwarkadmin`` / ``DEMO_SQL_PASSWORD``: a well-known development credential, like Azurite's
  account key, valid only against the simulator.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm
from azure.mgmt.sql import SqlManagementClient
from azure.mgmt.sql import models as sm

from .client import AdminClient

MKFS = "/usr/sbin/mkfs.ext4"
GIB = 1 << 30
MIB = 1 << 20
VHD_ACCOUNT = "bulwarkvhds"
VHD_CONTAINER = "vhds"
TAGS = {"bulwark-demo": "true", "env": "demo"}
SQL_GROUP = "bulwark-demo-data"
SQL_SERVER = "sql-demo"
SQL_STAGING_SERVER = "sql-demo-staging"
DEMO_SQL_LOGIN = "bulwarkadmin"
DEMO_SQL_PASSWORD = "Bulwark-Demo-Passw0rd!"  # well-known, simulator only (like Azurite's account key)
SQL_DATABASES = {"sales": "sales", "inventory": "inventory"}  # database -> sqldata preset


@dataclass(frozen=True)
class DiskPlan:
    name: str
    size_gb: int
    files: int


@dataclass(frozen=True)
class VmPlan:
    resource_group: str
    name: str
    os_disk: DiskPlan
    data_disks: list[DiskPlan] = field(default_factory=list)
    unmanaged: bool = False
    tags: dict[str, str] = field(default_factory=dict)


DEMO_ESTATE = [
    VmPlan(
        "bulwark-demo-app",
        "app-01",
        DiskPlan("app-01-os", 2, 60),
        [DiskPlan("app-01-data", 1, 40)],
        tags={"tier": "web", "backup": "daily"},
    ),
    VmPlan("bulwark-demo-app", "app-02", DiskPlan("app-02-os", 2, 40), tags={"tier": "web", "backup": "weekly"}),
    VmPlan(
        "bulwark-demo-data",
        "db-01",
        DiskPlan("db-01-os", 2, 50),
        [DiskPlan("db-01-data", 1, 80), DiskPlan("db-01-logs", 1, 30)],
        tags={"tier": "db", "backup": "daily"},
    ),
    VmPlan(
        "bulwark-demo-data",
        "legacy-01",
        DiskPlan("legacy-01-os", 1, 30),
        unmanaged=True,
        tags={"tier": "legacy", "backup": "daily"},
    ),
]


class _StaticToken:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("bulwark-sim", int(time.time()) + 3600)


@dataclass(frozen=True)
class SeedTarget:
    arm_endpoint: str
    data_plane_endpoint: str
    ca_bundle: str
    subscription_id: str
    location: str = "westeurope"


def seed_demo(target: SeedTarget, *, log: Any = print) -> list[str]:
    """Create the demo estate (idempotent: existing VMs are left alone); return the VM ids."""
    compute = ComputeManagementClient(
        _StaticToken(),
        target.subscription_id,
        base_url=target.arm_endpoint,
        polling_interval=0,
        connection_verify=target.ca_bundle,
    )
    admin = AdminClient(target.arm_endpoint, target.ca_bundle)
    for group in sorted({plan.resource_group for plan in DEMO_ESTATE}):
        _put_resource_group(target, group)
    vm_ids = []
    with tempfile.TemporaryDirectory(prefix="bulwark-seed-") as scratch:
        for plan in DEMO_ESTATE:
            try:
                vm_ids.append(str(compute.virtual_machines.get(plan.resource_group, plan.name).id))
                log(f"{plan.resource_group}/{plan.name}: exists, left as is")
                continue
            except ResourceNotFoundError:
                pass
            vm_ids.append(_create_vm(target, compute, admin, plan, Path(scratch)))
            log(f"{plan.resource_group}/{plan.name}: created")
    seed_sql(target, log=log)
    return vm_ids


def staging_location(location: str) -> str:
    return "westeurope" if location.replace(" ", "").lower() == "northeurope" else "northeurope"


def seed_sql(target: SeedTarget, *, log: Any = print) -> list[str]:
    """The demo SQL estate (idempotent); returns the user database ids."""
    sql = SqlManagementClient(
        _StaticToken(),
        target.subscription_id,
        base_url=target.arm_endpoint,
        polling_interval=0,
        connection_verify=target.ca_bundle,
    )
    admin = AdminClient(target.arm_endpoint, target.ca_bundle)
    _put_resource_group(target, SQL_GROUP)
    for server, location in ((SQL_SERVER, target.location), (SQL_STAGING_SERVER, staging_location(target.location))):
        try:
            sql.servers.get(SQL_GROUP, server)
            log(f"SQL {SQL_GROUP}/{server}: already there")
        except ResourceNotFoundError:
            body = sm.Server(
                location=location,
                tags=dict(TAGS),
                properties=sm.ServerProperties(
                    administrator_login=DEMO_SQL_LOGIN, administrator_login_password=DEMO_SQL_PASSWORD
                ),
            )
            sql.servers.begin_create_or_update(SQL_GROUP, server, body).result()
            log(f"SQL {SQL_GROUP}/{server}: new server in {location}")
    database_ids = []
    for name, preset in SQL_DATABASES.items():
        database = sql.databases.begin_create_or_update(
            SQL_GROUP, SQL_SERVER, name, sm.Database(location=target.location, tags={**TAGS, "backup": "daily"})
        ).result()
        database_ids.append(str(database.id))
        if admin.sql_catalog(str(database.id))["tables"]:
            log(f"SQL {SQL_SERVER}/{name}: already there")
            continue
        catalog = admin.sql_populate(str(database.id), preset=preset)
        size = sum(int(t["bytes"]) for t in catalog["tables"])
        log(f"SQL {SQL_SERVER}/{name}: new database, {len(catalog['tables'])} tables, {size / MIB:.1f} MiB of rows")
    return database_ids


def _create_vm(
    target: SeedTarget, compute: ComputeManagementClient, admin: AdminClient, plan: VmPlan, scratch: Path
) -> str:
    location = target.location
    if plan.unmanaged:
        uri = f"{target.data_plane_endpoint}/{VHD_ACCOUNT}/{VHD_CONTAINER}/{plan.os_disk.name}.vhd"
        admin.create_vhd(uri, plan.os_disk.size_gb * GIB)
        _write_image(admin, uri, plan.os_disk, scratch)
        os_disk = cm.OSDisk(
            os_type="Linux", name=plan.os_disk.name, create_option="Attach", vhd=cm.VirtualHardDisk(uri=uri)
        )
        data_disks: list[cm.DataDisk] = []
    else:
        os_id = _managed_disk(compute, admin, plan.resource_group, location, plan.os_disk, scratch, os_type="Linux")
        os_disk = cm.OSDisk(os_type="Linux", create_option="Attach", managed_disk=cm.ManagedDiskParameters(id=os_id))
        data_disks = [
            cm.DataDisk(
                lun=lun,
                create_option="Attach",
                managed_disk=cm.ManagedDiskParameters(
                    id=_managed_disk(compute, admin, plan.resource_group, location, disk, scratch)
                ),
            )
            for lun, disk in enumerate(plan.data_disks)
        ]
    nic = (
        f"/subscriptions/{target.subscription_id}/resourceGroups/{plan.resource_group}"
        f"/providers/Microsoft.Network/networkInterfaces/{plan.name}-nic"
    )
    vm = cm.VirtualMachine(
        location=location,
        tags={**TAGS, **plan.tags},
        properties=cm.VirtualMachineProperties(
            hardware_profile=cm.HardwareProfile(vm_size="Standard_D2s_v5"),
            storage_profile=cm.StorageProfile(os_disk=os_disk, data_disks=data_disks),
            network_profile=cm.NetworkProfile(
                network_interfaces=[
                    cm.NetworkInterfaceReference(
                        id=nic, properties=cm.NetworkInterfaceReferenceProperties(primary=True)
                    )
                ]
            ),
        ),
    )
    created = compute.virtual_machines.begin_create_or_update(plan.resource_group, plan.name, vm).result()
    return str(created.id)


def _managed_disk(
    compute: ComputeManagementClient,
    admin: AdminClient,
    group: str,
    location: str,
    plan: DiskPlan,
    scratch: Path,
    os_type: str | None = None,
) -> str:
    body = cm.Disk(
        location=location,
        sku=cm.DiskSku(name="Premium_LRS"),
        tags=dict(TAGS),
        properties=cm.DiskProperties(
            os_type=os_type,
            creation_data=cm.CreationData(create_option="Empty"),
            disk_size_gb=plan.size_gb,
        ),
    )
    disk = compute.disks.begin_create_or_update(group, plan.name, body).result()
    _write_image(admin, str(disk.id), plan, scratch)
    return str(disk.id)


def _write_image(admin: AdminClient, disk_id: str, plan: DiskPlan, scratch: Path) -> None:
    image = build_ext4_image(scratch, plan.name, plan.size_gb * GIB, plan.files)
    try:
        with open(image, "rb") as handle:
            for start, end in data_extents(handle.fileno()):
                for offset in range(start, end, 4 * MIB):
                    handle.seek(offset)
                    admin.guest_write(disk_id, offset, handle.read(min(4 * MIB, end - offset)))
    finally:
        image.unlink(missing_ok=True)


def build_ext4_image(scratch: Path, name: str, size: int, files: int) -> Path:
    """A sparse ``size``-byte ext4 image holding a generated tree (deterministic per ``name``)."""
    tree = scratch / f"{name}-tree"
    generate_tree(tree, name, files)
    image = scratch / f"{name}.img"
    with open(image, "wb") as handle:
        handle.truncate(size)
    subprocess.run([MKFS, "-F", "-q", "-L", name[:16], "-d", str(tree), str(image)], check=True, capture_output=True)
    return image


def generate_tree(root: Path, name: str, files: int) -> None:
    rng = random.Random(name)
    folders = ["etc", "var/log", "srv/data", "home/demo/docs", "opt/app/bin"]
    for index in range(files):
        folder = root / rng.choice(folders)
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.choice([512, 3000, 16_384, 65_536, 200_000])
        if rng.random() < 0.5:
            words = [
                rng.choice(["alpha", "bravo", "delta", "gamma", "kilo", "lima", "sierra"]) for _ in range(size // 6)
            ]
            (folder / f"file-{index:03d}.txt").write_text(" ".join(words) + "\n")
        else:
            (folder / f"blob-{index:03d}.bin").write_bytes(rng.randbytes(size))


def data_extents(fd: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of the data (non-hole) regions of a file, via SEEK_DATA/SEEK_HOLE."""
    size = os.fstat(fd).st_size
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        offset = end


def _put_resource_group(target: SeedTarget, name: str) -> None:
    parts = urlsplit(target.arm_endpoint)
    connection = http.client.HTTPSConnection(
        parts.hostname or "127.0.0.1",
        parts.port or 443,
        context=ssl.create_default_context(cafile=target.ca_bundle),
        timeout=30,
    )
    try:
        connection.request(
            "PUT",
            f"/subscriptions/{target.subscription_id}/resourcegroups/{name}?api-version=2021-04-01",
            body=json.dumps({"location": target.location, "tags": TAGS}),
            headers={"Authorization": "Bearer bulwark-sim", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status not in (200, 201):
        raise RuntimeError(f"creating resource group {name} failed: {response.status} {body[:300]!r}")
