"""Compute control plane through the real azure-mgmt-compute client."""

from __future__ import annotations

import os

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient

from .conftest import LOCATION, SUBSCRIPTION, arm_call

GIB = 1 << 30


def make_disk(compute: ComputeManagementClient, rg: str, name: str, size_gb: int = 1, **extra: object) -> cm.Disk:
    disk = cm.Disk(
        location=LOCATION, creation_data=cm.CreationData(create_option="Empty"), disk_size_gb=size_gb, **extra
    )
    return compute.disks.begin_create_or_update(rg, name, disk).result()


def snapshot(compute: ComputeManagementClient, rg: str, name: str, source_id: str, **tags: str) -> cm.Snapshot:
    body = cm.Snapshot(
        location=LOCATION,
        creation_data=cm.CreationData(create_option="Copy", source_resource_id=source_id),
        incremental=True,
        tags=tags,
    )
    return compute.snapshots.begin_create_or_update(rg, name, body).result()


def attach_vm(
    compute: ComputeManagementClient, rg: str, name: str, os_disk: cm.Disk, data: list[cm.Disk]
) -> cm.VirtualMachine:
    vm = cm.VirtualMachine(
        location=LOCATION,
        tags={"app": name},
        hardware_profile=cm.HardwareProfile(vm_size="Standard_D2s_v3"),
        storage_profile=cm.StorageProfile(
            os_disk=cm.OSDisk(
                os_type="Linux", create_option="Attach", managed_disk=cm.ManagedDiskParameters(id=os_disk.id)
            ),
            data_disks=[
                cm.DataDisk(lun=lun, create_option="Attach", managed_disk=cm.ManagedDiskParameters(id=disk.id))
                for lun, disk in enumerate(data)
            ],
        ),
        network_profile=cm.NetworkProfile(
            network_interfaces=[
                cm.NetworkInterfaceReference(
                    id=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/{name}-nic",
                    primary=True,
                )
            ]
        ),
    )
    return compute.virtual_machines.begin_create_or_update(rg, name, vm).result()


def test_disk_lifecycle_and_shapes(compute: ComputeManagementClient, resource_group: str) -> None:
    disk = make_disk(compute, resource_group, "data1", 2, tags={"tier": "gold"})
    assert disk.provisioning_state == "Succeeded"
    assert disk.disk_size_bytes == 2 * GIB and disk.disk_size_gb == 2
    assert disk.disk_state == "Unattached" and disk.unique_id and disk.time_created
    assert disk.tags == {"tier": "gold"}
    assert [d.name for d in compute.disks.list_by_resource_group(resource_group)] == ["data1"]
    assert compute.disks.get(resource_group, "DATA1").id == disk.id  # ARM ids are case-insensitive
    compute.disks.begin_delete(resource_group, "data1").result()
    with pytest.raises(ResourceNotFoundError) as caught:
        compute.disks.get(resource_group, "data1")
    assert caught.value.error.code == "ResourceNotFound"


def test_vms_list_get_and_attach(compute: ComputeManagementClient, resource_group: str) -> None:
    os_disk = make_disk(compute, resource_group, "web-os", 1, os_type="Linux")
    data = [make_disk(compute, resource_group, f"web-data{i}", 1) for i in range(2)]
    vm = attach_vm(compute, resource_group, "web", os_disk, data)
    assert vm.provisioning_state == "Succeeded" and vm.location == LOCATION and vm.tags == {"app": "web"}
    profile = vm.storage_profile
    assert profile.os_disk.managed_disk.id == os_disk.id and profile.os_disk.os_type == "Linux"
    assert [(d.lun, d.managed_disk.id) for d in profile.data_disks] == [(0, data[0].id), (1, data[1].id)]
    assert compute.disks.get(resource_group, "web-data1").disk_state == "Attached"
    assert compute.disks.get(resource_group, "web-data1").managed_by == vm.id
    assert vm.id in [v.id for v in compute.virtual_machines.list_all()]
    assert [v.name for v in compute.virtual_machines.list(resource_group)] == ["web"]
    got = compute.virtual_machines.get(resource_group, "web", expand="instanceView")
    assert got.instance_view.statuses[-1].code == "PowerState/running"

    with pytest.raises(HttpResponseError) as caught:  # an attached disk cannot be deleted
        compute.disks.begin_delete(resource_group, "web-data0").result()
    assert caught.value.status_code == 409

    # Update: drop lun 1; the disk is detached.
    vm.storage_profile.data_disks = vm.storage_profile.data_disks[:1]
    compute.virtual_machines.begin_create_or_update(resource_group, "web", vm).result()
    assert compute.disks.get(resource_group, "web-data1").disk_state == "Unattached"

    compute.virtual_machines.begin_delete(resource_group, "web").result()
    assert compute.disks.get(resource_group, "web-os").disk_state == "Unattached"


def test_vm_with_unmanaged_disk(sim: SimulatorEndpoints, compute: ComputeManagementClient, resource_group: str) -> None:
    from bulwark_local.simulator.client import AdminClient

    uri = f"{sim.data}/vhdstore/vhds/legacy-os.vhd"
    AdminClient(sim.arm, sim.ca_bundle).create_vhd(uri, 64 * 1024 * 1024)
    vm = cm.VirtualMachine(
        location=LOCATION,
        hardware_profile=cm.HardwareProfile(vm_size="Standard_A1"),
        storage_profile=cm.StorageProfile(
            os_disk=cm.OSDisk(
                os_type="Linux", name="legacy-os", create_option="Attach", vhd=cm.VirtualHardDisk(uri=uri)
            )
        ),
    )
    created = compute.virtual_machines.begin_create_or_update(resource_group, "legacy", vm).result()
    assert created.storage_profile.os_disk.vhd.uri == uri
    assert created.storage_profile.os_disk.managed_disk is None


def test_incremental_snapshots(compute: ComputeManagementClient, resource_group: str, sim: SimulatorEndpoints) -> None:
    disk = make_disk(compute, resource_group, "db-data", 1)
    # Snapshots go into the resource group named in the URL, which may differ from the disk's.
    other = f"{resource_group}-snaps"
    arm_call(
        sim,
        "PUT",
        f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{other}?api-version=2021-04-01",
        {"location": LOCATION},
    )
    first = snapshot(compute, other, "s1", disk.id, policy="p1", session="a")
    second = snapshot(compute, other, "s2", disk.id, policy="p1", session="b")
    for snap in (first, second):
        assert snap.incremental is True and snap.provisioning_state == "Succeeded"
        assert snap.creation_data.source_resource_id == disk.id
        assert snap.creation_data.source_unique_id == disk.unique_id
        assert snap.disk_size_bytes == disk.disk_size_bytes
        assert snap.id.startswith(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{other}/")
    assert first.incremental_snapshot_family_id == second.incremental_snapshot_family_id
    assert first.time_created <= second.time_created
    assert first.tags == {"policy": "p1", "session": "a"}
    assert {s.name for s in compute.snapshots.list_by_resource_group(other)} == {"s1", "s2"}
    assert {"s1", "s2"} <= {s.name for s in compute.snapshots.list()}

    other_disk = make_disk(compute, resource_group, "other", 1)
    third = snapshot(compute, other, "s3", other_disk.id)
    assert third.incremental_snapshot_family_id != first.incremental_snapshot_family_id

    with pytest.raises(HttpResponseError) as caught:  # a snapshot's source cannot change
        snapshot(compute, other, "s1", other_disk.id)
    assert caught.value.status_code == 409 and caught.value.error.code == "PropertyChangeNotAllowed"

    compute.snapshots.begin_delete(other, "s1").result()
    assert {s.name for s in compute.snapshots.list_by_resource_group(other)} == {"s2", "s3"}


def test_errors_have_azure_shape(compute: ComputeManagementClient, sim: SimulatorEndpoints) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        compute.snapshots.get("no-such-group", "s")
    assert caught.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(HttpResponseError) as missing_source:
        snapshot_body = cm.Snapshot(
            location=LOCATION,
            creation_data=cm.CreationData(
                create_option="Copy",
                source_resource_id="/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/disks/z",
            ),
            incremental=True,
        )
        compute.snapshots.begin_create_or_update("no-such-group", "s", snapshot_body).result()
    assert missing_source.value.status_code == 404
    status, _, body = arm_call(
        sim,
        "GET",
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/disks?api-version=2026-03-02",
        token=False,
    )
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed"


def test_list_pages_with_next_link(compute: ComputeManagementClient, resource_group: str, admin: object) -> None:
    from bulwark_local.simulator.client import AdminClient

    assert isinstance(admin, AdminClient)
    for i in range(5):
        make_disk(compute, resource_group, f"d{i}", 1)
    admin.settings(list_page_size=2)
    assert sorted(d.name for d in compute.disks.list_by_resource_group(resource_group)) == [f"d{i}" for i in range(5)]


def test_lro_reports_in_progress_first(compute: ComputeManagementClient, resource_group: str, admin: object) -> None:
    from bulwark_local.simulator.client import AdminClient

    assert isinstance(admin, AdminClient)
    admin.settings(lro_in_progress_polls=2)
    disk = make_disk(compute, resource_group, "slow", 1)
    assert disk.provisioning_state == "Succeeded"


def test_disk_from_snapshot(compute: ComputeManagementClient, resource_group: str, admin: AdminClient) -> None:
    source = make_disk(compute, resource_group, "src", 1)
    data = os.urandom(64 * 1024)
    admin.guest_write(source.id, 5 << 20, data)
    snap = snapshot(compute, resource_group, "snap", source.id)
    admin.guest_write(source.id, 5 << 20, bytes(4096))  # after the snapshot: not in the new disk
    body = cm.Disk(
        location=LOCATION,
        creation_data=cm.CreationData(create_option="Copy", source_resource_id=snap.id),
        disk_size_gb=2,
    )
    restored = compute.disks.begin_create_or_update(resource_group, "restored", body).result()
    assert restored.disk_size_gb == 2 and restored.creation_data.source_unique_id == snap.unique_id
    assert admin.guest_info(restored.id)["ranges"] == [[5 << 20, (5 << 20) + len(data)]]
    assert admin.guest_read(restored.id, 5 << 20, len(data)) == data  # the snapshot's bytes, not the disk's now
