"""A small estate in the simulator and a repository for the worker and app tests.

One VM per call, in its own resource group: an OS disk holding a real ext4 file system (built with
``mkfs.ext4 -d`` from a generated tree, like ``bulwark-sim seed``) and a data disk with a few MiB
of written data; both 1 GiB and sparse, so a full backup reads only a few MiB.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from azure.mgmt.compute import models as cm
from bulwark_local.simulator.client import AdminClient
from bulwark_local.simulator.seed import build_ext4_image, data_extents
from bulwark_local.stack import Stack

from shared.azure.clients import AzureClients
from shared.azure.model import DiskInfo, VmInfo
from shared.core.clock import SystemClock
from shared.core.crypto import ScryptParams
from shared.engine.restore import restore_image
from shared.repo.point import Point
from shared.repo.repository import Repository
from shared.storage.location import open_store

MIB = 1 << 20
GIB = 1 << 30
PASSPHRASE = "correct horse battery staple (bulwark tests)"
FAST_SCRYPT = ScryptParams(n=1 << 10, r=8, p=1)


@dataclass(frozen=True)
class Estate:
    vm: VmInfo
    os_disk: DiskInfo
    data_disk: DiskInfo


def put_resource_group(stack: Stack, name: str) -> None:
    parts = urlsplit(stack.arm_endpoint)
    connection = http.client.HTTPSConnection(
        parts.hostname or "127.0.0.1",
        parts.port or 443,
        context=ssl.create_default_context(cafile=stack.ca_bundle),
        timeout=30,
    )
    try:
        connection.request(
            "PUT",
            f"/subscriptions/{stack.subscription_id}/resourcegroups/{name}?api-version=2021-04-01",
            body=json.dumps({"location": stack.location}),
            headers={"Authorization": "Bearer tests", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status in (200, 201), response.status


def make_estate(stack: Stack, clients: AzureClients, admin: AdminClient, *, tags: dict[str, str]) -> Estate:
    """A resource group holding VM ``web``: an ext4 OS disk and a data disk (LUN 0)."""
    compute = clients.compute()
    group = f"rg-{uuid.uuid4().hex[:8]}"
    put_resource_group(stack, group)
    os_disk = _disk(clients, stack, group, "web-os", os_type="Linux")
    data_disk = _disk(clients, stack, group, "web-data")
    with tempfile.TemporaryDirectory(prefix="bulwark-estate-") as scratch:
        image = build_ext4_image(Path(scratch), "web-os", GIB, 12)
        with open(image, "rb") as handle:
            for start, end in data_extents(handle.fileno()):
                for offset in range(start, end, 4 * MIB):
                    admin.guest_write(os_disk.id, offset, os.pread(handle.fileno(), min(4 * MIB, end - offset), offset))
    admin.guest_write(data_disk.id, 0, os.urandom(3 * MIB))
    admin.guest_write(data_disk.id, 512 * MIB, b"data disk payload " * 1000)
    vm = compute.create_vm(
        resource_group=group,
        name="web",
        location=stack.location,
        vm_size="Standard_D2s_v5",
        os_disk_id=os_disk.id,
        os_type="Linux",
        data_disks=[(0, data_disk.id)],
        nic_ids=[
            f"/subscriptions/{stack.subscription_id}/resourceGroups/{group}/providers/Microsoft.Network/"
            "networkInterfaces/web-nic"
        ],
        tags=tags,
    )
    return Estate(vm=vm, os_disk=compute.get_disk(os_disk.id), data_disk=compute.get_disk(data_disk.id))


def _disk(clients: AzureClients, stack: Stack, group: str, name: str, *, os_type: str | None = None) -> DiskInfo:
    body = cm.Disk(
        location=stack.location,
        properties=cm.DiskProperties(
            os_type=os_type, creation_data=cm.CreationData(create_option="Empty"), disk_size_gb=1
        ),
    )
    clients.compute_client().disks.begin_create_or_update(group, name, body).result()
    disk_id = f"/subscriptions/{stack.subscription_id}/resourceGroups/{group}/providers/Microsoft.Compute/disks/{name}"
    return clients.compute().get_disk(disk_id)


def make_repository(root: Path) -> tuple[str, Path]:
    """A directory repository and its passphrase file; returns (location, secret file)."""
    location = root / "repo"
    secret = root / "repo.passphrase"
    secret.write_text(PASSPHRASE + "\n", encoding="utf-8")
    Repository.init(open_store(str(location), {}, create=True), PASSPHRASE, SystemClock(), scrypt=FAST_SCRYPT)
    return str(location), secret


def open_repository(location: str) -> Repository:
    return Repository.open(open_store(location, {}), PASSPHRASE, SystemClock())


def guest_image(admin: AdminClient, resource_id: str, path: Path) -> Path:
    """What ``bulwark-sim guest read`` shows of a disk or snapshot, as a sparse file."""
    info = admin.guest_info(resource_id)
    with path.open("wb") as out:
        out.truncate(info["size"])
        for start, end in info["ranges"]:
            out.seek(start)
            for piece in admin.iter_guest_read(resource_id, start, end - start):
                out.write(piece)
    return path


def restores_identical(repo: Repository, point: Point, expected: Path, scratch: Path) -> bool:
    target = scratch / f"restored-{point.point_id}.img"
    restore_image(repo, point, target)
    try:
        return _same(expected, target)
    finally:
        target.unlink(missing_ok=True)


def _same(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as left, b.open("rb") as right:
        spans = sorted({*data_extents(left.fileno()), *data_extents(right.fileno())})
        for start, end in spans:
            for offset in range(start, end, 8 * MIB):
                length = min(8 * MIB, end - offset)
                if os.pread(left.fileno(), length, offset) != os.pread(right.fileno(), length, offset):
                    return False
    return True


def make_unmanaged_vm(stack: Stack, clients: AzureClients, admin: AdminClient, *, tags: dict[str, str]) -> VmInfo:
    """A resource group holding VM ``legacy`` whose OS disk is a VHD page blob (unmanaged)."""
    group = f"rg-{uuid.uuid4().hex[:8]}"
    put_resource_group(stack, group)
    uri = f"{stack.data_plane_endpoint}/bulwarkvhds/vhds/{group}-legacy-os.vhd"
    admin.create_vhd(uri, GIB)
    admin.guest_write(uri, 0, os.urandom(3 * MIB))
    admin.guest_write(uri, 400 * MIB, b"unmanaged payload " * 2000)
    nic = (
        f"/subscriptions/{stack.subscription_id}/resourceGroups/{group}/providers/Microsoft.Network/"
        "networkInterfaces/legacy-nic"
    )
    body = cm.VirtualMachine(
        location=stack.location,
        tags=tags,
        properties=cm.VirtualMachineProperties(
            hardware_profile=cm.HardwareProfile(vm_size="Standard_D2s_v5"),
            storage_profile=cm.StorageProfile(
                os_disk=cm.OSDisk(
                    os_type="Linux", name="legacy-os", create_option="Attach", vhd=cm.VirtualHardDisk(uri=uri)
                )
            ),
            network_profile=cm.NetworkProfile(
                network_interfaces=[
                    cm.NetworkInterfaceReference(
                        id=nic, properties=cm.NetworkInterfaceReferenceProperties(primary=True)
                    )
                ]
            ),
        ),
    )
    clients.compute_client().virtual_machines.begin_create_or_update(group, "legacy", body).result()
    return clients.compute().get_vm(
        f"/subscriptions/{stack.subscription_id}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/legacy"
    )
