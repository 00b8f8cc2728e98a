"""The compute adapter against the simulator, through the real azure-mgmt-compute client."""

from __future__ import annotations

import dataclasses
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.mgmt.compute import ComputeManagementClient
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient

from shared.azure.compute import AzureCompute, snapshot_name, snapshot_tags
from shared.azure.model import VmSelection
from shared.azure.pageblob import DataPlaneOptions, PageBlobReader
from shared.core.errors import (
    AzureConflictError,
    AzureResourceNotFoundError,
    ResourceGroupNotFoundError,
    SnapshotAccessError,
    UsageError,
    WrongRegionError,
)

from .conftest import GIB, LOCATION, SUBSCRIPTION, make_disk, make_group, make_vm


def test_discovery_by_group_tags_ids_and_exclusions(
    sim: SimulatorEndpoints, compute: AzureCompute, sdk: ComputeManagementClient, admin: AdminClient
) -> None:
    run = uuid.uuid4().hex[:6]  # the simulator is shared: tag values keep this test's VMs apart
    web, db = make_group(sim, "web"), make_group(sim, "db")
    disks = make_group(sim, "disks")
    web1 = make_vm(compute, sdk, web, "web1", data_disks=2, tags={"env": "prod", "run": run})
    web2 = make_vm(compute, sdk, web, "web2", data_disks=0, tags={"env": "dev", "run": run})
    db1 = make_vm(compute, sdk, db, "db1", data_disks=1, tags={"env": "prod", "run": run, "backup": "skip"})
    db2 = make_vm(compute, sdk, db, "db2", data_disks=1, tags={"Env": "prod", "run": run}, disk_group=disks)

    def names(selection: VmSelection) -> list[str]:
        return [vm.name for vm in compute.discover(selection)]

    admin.settings(list_page_size=2)  # every list below spans several pages (nextLink)

    assert names(VmSelection(resource_groups=(web,))) == ["web1", "web2"]
    assert names(VmSelection(resource_groups=(web, db), tags={"env": "prod"})) == ["db1", "db2", "web1"]
    assert names(VmSelection(tags={"run": run, "env": "prod"})) == ["db1", "db2", "web1"]  # whole subscription
    assert names(VmSelection(tags={"run": run}, exclude_tags={"backup": "*"})) == ["db2", "web1", "web2"]
    assert names(VmSelection(tags={"run": run}, exclude_ids=(web2.id.upper(),))) == ["db1", "db2", "web1"]
    # explicit ids are taken whatever their tags, but exclusions still apply
    assert names(VmSelection(vm_ids=(web2.id, db1.id), tags={"env": "prod"})) == ["db1", "web2"]
    assert names(VmSelection(vm_ids=(web2.id, db1.id), exclude_tags={"backup": "skip"})) == ["web2"]

    found = {vm.name: vm for vm in compute.discover(VmSelection(tags={"run": run}))}
    vm = found["web1"]
    assert vm == web1 and vm.location == LOCATION and vm.resource_group == web and vm.tags["env"] == "prod"
    assert vm.os_type == "Linux" and vm.vm_size == "Standard_D2s_v3"
    assert vm.os_disk.is_os_disk and vm.os_disk.lun is None and vm.os_disk.name == "web1-os"
    assert [(d.lun, d.name) for d in vm.data_disks] == [(0, "web1-data0"), (1, "web1-data1")]
    for disk in vm.disks:
        assert disk.is_managed and disk.size_bytes == GIB and disk.unique_id
        assert compute.get_disk(disk.managed_disk_id or "").unique_id == disk.unique_id
    # a VM whose disks live in another resource group
    assert {d.managed_disk_id.split("/")[4] for d in found["db2"].disks if d.managed_disk_id} == {disks}
    assert found["db2"] == db2


def test_unmanaged_vm_disks_are_vhd_uris(
    sim: SimulatorEndpoints, compute: AzureCompute, sdk: ComputeManagementClient, admin: AdminClient
) -> None:
    from azure.mgmt.compute import models as cm

    group = make_group(sim)
    uri = f"{sim.data}/legacystore/vhds/{group}-os.vhd"
    admin.create_vhd(uri, 64 << 20)
    body = cm.VirtualMachine(
        location=LOCATION,
        properties=cm.VirtualMachineProperties(
            hardware_profile=cm.HardwareProfile(vm_size="Standard_A1"),
            storage_profile=cm.StorageProfile(
                os_disk=cm.OSDisk(
                    os_type="Linux", name="legacy-os", create_option="Attach", vhd=cm.VirtualHardDisk(uri=uri)
                )
            ),
        ),
    )
    sdk.virtual_machines.begin_create_or_update(group, "legacy", body).result()
    (vm,) = compute.discover(VmSelection(resource_groups=(group,)))
    assert vm.os_disk.vhd_uri == uri and not vm.os_disk.is_managed and vm.os_disk.name == "legacy-os"


def test_unknown_ids_and_missing_groups_say_what_to_do(sim: SimulatorEndpoints, compute: AzureCompute) -> None:
    base = f"/subscriptions/{SUBSCRIPTION}/resourceGroups"
    with pytest.raises(ResourceGroupNotFoundError) as no_group:
        compute.discover(VmSelection(resource_groups=("no-such-group",)))
    assert "no-such-group" in str(no_group.value) and "az group create" in str(no_group.value)
    assert no_group.value.exit_code == 9 and no_group.value.hint

    missing_vm = f"{base}/no-such-group/providers/Microsoft.Compute/virtualMachines/ghost"
    with pytest.raises(ResourceGroupNotFoundError):
        compute.discover(VmSelection(vm_ids=(missing_vm,)))

    with pytest.raises(AzureResourceNotFoundError) as no_disk:
        compute.get_disk(f"{base}/{make_group(sim)}/providers/Microsoft.Compute/disks/ghost-disk")
    assert not isinstance(no_disk.value, ResourceGroupNotFoundError)
    assert "ghost-disk" in str(no_disk.value) and "check the id" in str(no_disk.value)

    with pytest.raises(UsageError, match="not an Azure resource id"):
        compute.get_vm("web1")
    with pytest.raises(UsageError, match=r"not a Microsoft\.Compute/virtualMachines"):
        compute.get_vm(f"{base}/g/providers/Microsoft.Compute/disks/d")
    with pytest.raises(UsageError, match="subscription"):
        compute.get_vm("/subscriptions/other/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v")


def test_snapshots_into_the_vm_group_with_tags_and_chain(
    sim: SimulatorEndpoints, compute: AzureCompute, sdk: ComputeManagementClient
) -> None:
    disks_group, vm_group = make_group(sim, "disks"), make_group(sim, "vms")
    vm = make_vm(compute, sdk, vm_group, "app", data_disks=1, disk_group=disks_group)
    data = compute.get_disk(vm.data_disks[0].managed_disk_id or "")
    other = compute.get_disk(vm.os_disk.managed_disk_id or "")

    taken = []
    for session in ("s1", "s2", "s3"):
        name = snapshot_name(data.id, session)
        snap = compute.create_snapshot(
            data, resource_group=vm.resource_group, name=name, tags=snapshot_tags("pol-1", session, data.name)
        )
        taken.append(snap)
        assert snap.resource_group == vm_group and snap.name == name and snap.incremental
        assert snap.source_disk_id.lower() == data.id.lower() and snap.source_unique_id == data.unique_id
        assert snap.tags == {"bulwark-policy": "pol-1", "bulwark-session": session, "bulwark-disk": data.name,
                             "created-by": "bulwark"}  # fmt: skip
        assert snap.size_bytes == data.size_bytes and snap.location == LOCATION
    again = compute.create_snapshot(data, resource_group=vm_group, name=taken[0].name, tags=taken[0].tags)
    assert again.id == taken[0].id  # idempotent: a retried activity does not make a second snapshot
    compute.create_snapshot(other, resource_group=vm_group, name=snapshot_name(other.id, "s1"), tags={})

    chain = compute.snapshot_chain(data, resource_group=vm_group)
    assert [s.name for s in chain] == [s.name for s in taken]
    assert len({s.family_id for s in chain}) == 1 and chain[0].family_id
    assert [s.name for s in compute.snapshot_chain(data)] == [s.name for s in taken]  # subscription-wide
    assert [s.name for s in compute.snapshot_family(chain[0].family_id or "")] == [s.name for s in taken]
    assert compute.snapshot_chain(data, resource_group=vm_group, tags={"bulwark-session": "s2"}) == [taken[1]]

    # The same name for a new disk is a new chain: old snapshots have another sourceUniqueId.
    compute.delete_snapshot(taken[0].id)
    compute.delete_snapshot(taken[0].id)  # already gone: fine
    assert [s.name for s in compute.snapshot_chain(data, resource_group=vm_group)] == [taken[1].name, taken[2].name]
    reborn = dataclasses.replace(data, unique_id="not-the-same-disk")
    assert compute.snapshot_chain(reborn, resource_group=vm_group) == []
    assert len(compute.snapshot_chain(data.id, resource_group=vm_group)) == 2  # by id alone

    # A name already used for another disk's snapshot is refused.
    with pytest.raises(AzureConflictError):
        compute.create_snapshot(other, resource_group=vm_group, name=taken[1].name, tags={})


def test_wrong_region_is_refused_with_a_typed_error(
    sim: SimulatorEndpoints, compute: AzureCompute, sdk: ComputeManagementClient
) -> None:
    group = make_group(sim)
    disk = make_disk(sdk, group, "d", 1)
    with pytest.raises(WrongRegionError, match="westeurope"):
        compute.create_snapshot(disk, resource_group=group, name="s", tags={}, location="eastus")
    # the server's refusal is translated too (a disk record that claims another region)
    with pytest.raises(WrongRegionError) as caught:
        compute.create_snapshot(dataclasses.replace(disk, location="eastus"), resource_group=group, name="s", tags={})
    assert "region" in str(caught.value)


def test_grant_read_and_revoke(
    sim: SimulatorEndpoints, compute: AzureCompute, sdk: ComputeManagementClient, admin: AdminClient
) -> None:
    group = make_group(sim)
    disk = make_disk(sdk, group, "d", 1)
    admin.guest_write(disk.id, 4096, b"hello" * 100)
    snap = compute.create_snapshot(disk, resource_group=group, name="s", tags={})
    sas = compute.grant_read(snap.id, seconds=300)
    signature = parse_qs(urlsplit(sas.reveal()).query)["sig"][0]
    for shown in (repr(sas), str(sas), f"{sas}", sas.address):
        assert signature not in shown and "sig=" not in shown
    assert compute.get_snapshot(snap.id).disk_state == "ActiveSAS"
    options = DataPlaneOptions(ca_bundle=sim.ca_bundle)
    reader = PageBlobReader(sas, options=options)
    assert reader.read(4096, 500) == b"hello" * 100
    assert reader.blob_size() == disk.size_bytes + 512
    compute.revoke(snap.id)
    assert compute.get_snapshot(snap.id).disk_state == "Unattached"
    with pytest.raises(SnapshotAccessError) as refused:
        reader.read(0, 512)
    assert "sig=" not in str(refused.value) and "grant access again" in str(refused.value)
    reader.close()
    with pytest.raises(UsageError):
        compute.grant_read(snap.id, seconds=5)


def test_upload_disk_then_vm_from_disks(
    sim: SimulatorEndpoints, compute: AzureCompute, sdk: ComputeManagementClient, admin: AdminClient
) -> None:
    from azure.storage.blob import BlobClient
    from bulwark_local.simulator.vhd import vhd_footer

    group = make_group(sim)
    size = 32 << 20
    disk = compute.create_upload_disk(resource_group=group, name="restored-os", location=LOCATION, size_bytes=size,
                                      os_type="Linux")  # fmt: skip
    assert disk.disk_state == "ReadyToUpload" and disk.size_bytes == size
    sas = compute.grant_write(disk.id, seconds=600)
    with BlobClient.from_blob_url(sas.reveal(), connection_verify=sim.ca_bundle) as client:
        client.upload_page(b"\x5a" * 4096, offset=0, length=4096)
        client.upload_page(vhd_footer(size), offset=size, length=512)
    compute.revoke(disk.id)
    assert compute.get_disk(disk.id).disk_state == "Unattached"
    assert admin.guest_read(disk.id, 0, 4096) == b"\x5a" * 4096

    snap = compute.create_snapshot(compute.get_disk(disk.id), resource_group=group, name="snap", tags={})
    copy = compute.create_disk_from_snapshot(resource_group=group, name="restored-data", snapshot=snap)
    assert admin.guest_read(copy.id, 0, 4096) == b"\x5a" * 4096
    vm = compute.create_vm(resource_group=group, name="restored", location=LOCATION, vm_size="Standard_B2s",
                           os_disk_id=disk.id, os_type="Linux", data_disks=[(3, copy.id)])  # fmt: skip
    assert vm.os_disk.managed_disk_id == disk.id and [(d.lun, d.managed_disk_id) for d in vm.data_disks] == [
        (3, copy.id)
    ]
    with pytest.raises(AzureConflictError):  # attached disks cannot be deleted
        compute.delete_disk(copy.id)
    compute.delete_disk(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Compute/disks/gone")
    with pytest.raises(UsageError):
        compute.create_upload_disk(resource_group=group, name="x", location=LOCATION, size_bytes=1000)


def test_credential_failures_are_auth_errors(sim: SimulatorEndpoints) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    from shared.azure.clients import AzureClients
    from shared.core.errors import AzureAuthError

    from .conftest import settings_for

    class NoLogin:
        def get_token(self, *scopes: str, **kwargs: object) -> object:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    clients = AzureClients(settings_for(sim), credential=NoLogin())  # type: ignore[arg-type]
    try:
        with pytest.raises(AzureAuthError) as caught:
            clients.compute().discover(VmSelection())
    finally:
        clients.close()
    assert "az login" in str(caught.value) and "managed identity" in str(caught.value)
    assert caught.value.exit_code == 9
