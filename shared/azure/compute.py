"""The compute adapter: VMs, disks, incremental snapshots and disk access over azure-mgmt-compute.

:class:`AzureCompute` implements the ports ``VmInventory``, ``DiskSnapshots``, ``DiskAccess`` and
``RestoreTargets`` for one subscription. Every SDK call sits in one ``try`` whose ``except`` hands
the exception to :func:`arm.translate_arm_error`; nothing above this module sees an SDK exception
or an SDK model.

Snapshots (see :func:`snapshot_name` and :func:`snapshot_tags`):

* incremental (``incremental: true``, ``createOption: Copy``), in the **VM's resource group** and
  the disk's region, named ``bulwark-<disk>-<session>-<hash>`` so that a retried activity PUTs the
  same snapshot again instead of making a second one;
* tagged ``bulwark-policy``, ``bulwark-session``, ``bulwark-disk`` and ``created-by: bulwark``;
* a disk's chain is every incremental snapshot whose ``creationData.sourceResourceId`` is the disk
  and whose ``sourceUniqueId`` is the disk's ``uniqueId`` (a disk deleted and re-created under the
  same name starts a new chain), oldest first by ``timeCreated``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm

from shared.core.errors import AzureApiError, UsageError, WrongRegionError

from .arm import translate_arm_error
from .model import DiskInfo, SasUrl, SnapshotInfo, VmDisk, VmInfo, VmSelection
from .resource_id import ResourceId, same_resource

__all__ = ["FOOTER_BYTES", "AzureCompute", "snapshot_name", "snapshot_tags"]

FOOTER_BYTES = 512
"""A managed disk's SAS blob ends in a 512-byte fixed-VHD footer after ``diskSizeBytes``."""

_GIB = 1 << 30
_MIB = 1 << 20
_VM = "Microsoft.Compute/virtualMachines"
_DISK = "Microsoft.Compute/disks"
_SNAPSHOT = "Microsoft.Compute/snapshots"
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")

TAG_POLICY = "bulwark-policy"
TAG_SESSION = "bulwark-session"
TAG_DISK = "bulwark-disk"
TAG_CREATED_BY = "created-by"


def snapshot_name(disk_id: str, session_id: str) -> str:
    """The snapshot of disk ``disk_id`` taken in session ``session_id``: deterministic, at most 80
    characters of ``[A-Za-z0-9_.-]``, starting with a letter and ending with a letter or digit.

    ``bulwark-<disk name, up to 40>-<session, up to 24>-<6 hex of the disk id>``: the hash keeps
    two disks of the same name (from different resource groups) apart in one resource group.
    """
    disk = _NAME_CHARS.sub("-", ResourceId.parse(disk_id).name).strip("-.") or "disk"
    session = _NAME_CHARS.sub("-", session_id).strip("-.") or "session"
    digest = hashlib.sha256(disk_id.lower().encode()).hexdigest()[:6]
    return f"bulwark-{disk[:40].rstrip('-.')}-{session[:24].rstrip('-.')}-{digest}"


def snapshot_tags(policy_id: str, session_id: str, disk_name: str) -> dict[str, str]:
    """The tags every Bulwark snapshot carries (tag values are limited to 256 characters)."""
    return {
        TAG_POLICY: policy_id[:256],
        TAG_SESSION: session_id[:256],
        TAG_DISK: disk_name[:256],
        TAG_CREATED_BY: "bulwark",
    }


class AzureCompute:
    """VMs, disks, snapshots and disk access of one subscription."""

    def __init__(self, client: ComputeManagementClient, subscription_id: str, *, sas_seconds: int = 4 * 3600) -> None:
        self._client = client
        self._subscription = subscription_id
        self._sas_seconds = sas_seconds

    @property
    def subscription_id(self) -> str:
        return self._subscription

    # -- discovery -------------------------------------------------------------------------------

    def discover(self, selection: VmSelection) -> list[VmInfo]:
        """The VMs ``selection`` names (see :class:`VmSelection`), sorted by id, with their disks."""
        found: dict[str, cm.VirtualMachine] = {}
        for vm_id in selection.vm_ids:
            parsed = self._own_id(vm_id, _VM)
            vm = self._get_vm(parsed)
            found[str(vm.id).lower()] = vm
        scopes: Iterable[str | None] = selection.resource_groups or ([] if selection.vm_ids else [None])
        for group in scopes:
            for vm in self._list_vms(group):
                if selection.wants_tags(vm.tags or {}):
                    found.setdefault(str(vm.id).lower(), vm)
        chosen = [vm for key, vm in sorted(found.items()) if not selection.excludes(str(vm.id), vm.tags or {})]
        disks = self._disks_for(chosen)
        return [self._vm_info(vm, disks) for vm in chosen]

    def get_vm(self, vm_id: str) -> VmInfo:
        vm = self._get_vm(self._own_id(vm_id, _VM))
        return self._vm_info(vm, self._disks_for([vm]))

    def get_disk(self, disk_id: str) -> DiskInfo:
        parsed = self._own_id(disk_id, _DISK)
        try:
            disk = self._client.disks.get(parsed.resource_group, parsed.name)
        except AzureError as exc:
            raise translate_arm_error(exc, action="read", resource=disk_id) from exc
        return _disk_info(disk)

    def list_disks(self, resource_group: str) -> list[DiskInfo]:
        try:
            return [_disk_info(d) for d in self._client.disks.list_by_resource_group(resource_group)]
        except AzureError as exc:
            raise translate_arm_error(exc, action="list disks", resource=self._group_id(resource_group)) from exc

    # -- snapshots -------------------------------------------------------------------------------

    def create_snapshot(
        self,
        disk: DiskInfo,
        *,
        resource_group: str,
        name: str,
        tags: Mapping[str, str],
        location: str | None = None,
    ) -> SnapshotInfo:
        """An incremental snapshot of ``disk`` in ``resource_group`` (the VM's), in the disk's region.

        Idempotent for a given name: PUTting it again returns the existing snapshot.
        """
        if location is not None and _region(location) != _region(disk.location):
            raise WrongRegionError(
                f"Disk '{disk.name}' is in {disk.location}; "
                f"an incremental snapshot of it cannot be made in {location}.",
                hint="snapshots are created in the disk's region; copy them to another region afterwards",
            )
        snapshot_id = f"{self._group_id(resource_group)}/providers/{_SNAPSHOT}/{name}"
        body = cm.Snapshot(
            location=disk.location,
            tags=dict(tags),
            properties=cm.SnapshotProperties(
                creation_data=cm.CreationData(create_option="Copy", source_resource_id=disk.id),
                incremental=True,
            ),
        )
        try:
            snapshot = self._client.snapshots.begin_create_or_update(resource_group, name, body).result()
        except AzureError as exc:
            raise translate_arm_error(exc, action=f"snapshot disk '{disk.name}' as", resource=snapshot_id) from exc
        info = _snapshot_info(snapshot)
        if not same_resource(info.source_disk_id, disk.id):
            raise AzureApiError(
                f"Snapshot '{name}' in resource group '{resource_group}' already exists and is of another disk "
                f"({info.source_disk_id}).",
                hint="delete that snapshot or use another session id",
            )
        return info

    def get_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        parsed = self._own_id(snapshot_id, _SNAPSHOT)
        try:
            return _snapshot_info(self._client.snapshots.get(parsed.resource_group, parsed.name))
        except AzureError as exc:
            raise translate_arm_error(exc, action="read", resource=snapshot_id) from exc

    def snapshot_chain(
        self,
        disk: DiskInfo | str,
        *,
        resource_group: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[SnapshotInfo]:
        """The disk's incremental snapshots, oldest first.

        ``disk`` is a DiskInfo (matches source id and uniqueId) or a disk id (source id only, for a
        disk that no longer exists). Searches ``resource_group`` (normally the VM's), else the
        whole subscription; ``tags`` (e.g. ``{"bulwark-policy": id}``) narrows further.
        """
        disk_id = disk.id if isinstance(disk, DiskInfo) else disk
        unique_id = disk.unique_id if isinstance(disk, DiskInfo) else None
        chain = [
            snap
            for snap in self._list_snapshots(resource_group)
            if snap.incremental
            and same_resource(snap.source_disk_id, disk_id)
            and (unique_id is None or snap.source_unique_id in (None, unique_id))
            and all(snap.tags.get(k) == v for k, v in (tags or {}).items())
        ]
        return sorted(chain, key=lambda s: (s.time_created, s.name))

    def snapshot_family(self, family_id: str, *, resource_group: str | None = None) -> list[SnapshotInfo]:
        """Every snapshot of one incremental-snapshot family, oldest first."""
        family = [s for s in self._list_snapshots(resource_group) if s.family_id == family_id]
        return sorted(family, key=lambda s: (s.time_created, s.name))

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot; one that does not exist (any more) is not an error."""
        parsed = self._own_id(snapshot_id, _SNAPSHOT)
        try:
            self._client.snapshots.begin_delete(parsed.resource_group, parsed.name).result()
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise translate_arm_error(exc, action="delete", resource=snapshot_id) from exc

    # -- access ------------------------------------------------------------------------------------

    def grant_read(self, resource_id: str, *, seconds: int | None = None) -> SasUrl:
        """A read SAS for a snapshot (or an unattached disk), valid ``seconds`` (default: settings)."""
        return self._grant(resource_id, "Read", seconds or self._sas_seconds)

    def grant_write(self, disk_id: str, *, seconds: int | None = None) -> SasUrl:
        """A write SAS for a disk created for upload (``create_upload_disk``)."""
        self._own_id(disk_id, _DISK)
        return self._grant(disk_id, "Write", seconds or self._sas_seconds)

    def revoke(self, resource_id: str) -> None:
        """End every SAS of a snapshot or disk (``endGetAccess``); for an upload disk, finish the upload."""
        parsed, operations = self._access_target(resource_id)
        try:
            operations.begin_revoke_access(parsed.resource_group, parsed.name).result()
        except AzureError as exc:
            raise translate_arm_error(exc, action="end access to", resource=resource_id) from exc

    def _grant(self, resource_id: str, access: str, seconds: int) -> SasUrl:
        if not 30 <= seconds <= 5_184_000:
            raise UsageError(f"a SAS must live 30 s to 60 days, not {seconds} s")
        parsed, operations = self._access_target(resource_id)
        data = cm.GrantAccessData(access=access, duration_in_seconds=seconds)
        try:
            result = operations.begin_grant_access(parsed.resource_group, parsed.name, data).result()
        except AzureError as exc:
            raise translate_arm_error(exc, action=f"grant {access.lower()} access to", resource=resource_id) from exc
        url = getattr(result, "access_sas", None)
        if not url:
            raise AzureApiError(
                f"Azure granted access to {parsed.name} but returned no SAS URL.",
                hint="run the step again; if it persists, the API version may have changed",
            )
        return SasUrl(str(url))

    def _access_target(self, resource_id: str) -> tuple[ResourceId, Any]:
        parsed = self._own_id(resource_id)
        kind = parsed.kind.lower()
        if kind == _SNAPSHOT.lower():
            return parsed, self._client.snapshots
        if kind == _DISK.lower():
            return parsed, self._client.disks
        raise UsageError(f"'{resource_id}' is neither a disk nor a snapshot", hint="pass a disk or snapshot id")

    # -- restore targets -------------------------------------------------------------------------

    def create_upload_disk(
        self,
        *,
        resource_group: str,
        name: str,
        location: str,
        size_bytes: int,
        sku: str = "Standard_LRS",
        os_type: str | None = None,
        hyper_v_generation: str | None = None,
        zones: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
    ) -> DiskInfo:
        """An empty disk ready for upload (``ReadyToUpload``); write it through ``grant_write``, end
        with ``revoke`` once the last 512 bytes hold a fixed-VHD footer."""
        if size_bytes <= 0 or size_bytes % _MIB:
            raise UsageError(f"an upload disk must be a whole number of MiB, not {size_bytes} bytes")
        body = cm.Disk(
            location=location,
            sku=cm.DiskSku(name=sku),
            zones=list(zones) or None,
            tags=dict(tags or {}),
            properties=cm.DiskProperties(
                os_type=os_type,
                hyper_v_generation=hyper_v_generation,
                creation_data=cm.CreationData(create_option="Upload", upload_size_bytes=size_bytes + FOOTER_BYTES),
            ),
        )
        return self._put_disk(resource_group, name, body)

    def create_disk_from_snapshot(
        self,
        *,
        resource_group: str,
        name: str,
        snapshot: SnapshotInfo,
        sku: str | None = None,
        size_gb: int | None = None,
        zones: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
    ) -> DiskInfo:
        """A managed disk copied from a snapshot, in the snapshot's region."""
        body = cm.Disk(
            location=snapshot.location,
            sku=cm.DiskSku(name=sku) if sku else None,
            zones=list(zones) or None,
            tags=dict(tags or {}),
            properties=cm.DiskProperties(
                disk_size_gb=size_gb,
                creation_data=cm.CreationData(create_option="Copy", source_resource_id=snapshot.id),
            ),
        )
        return self._put_disk(resource_group, name, body)

    def delete_disk(self, disk_id: str) -> None:
        parsed = self._own_id(disk_id, _DISK)
        try:
            self._client.disks.begin_delete(parsed.resource_group, parsed.name).result()
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise translate_arm_error(exc, action="delete", resource=disk_id) from exc

    def create_vm(
        self,
        *,
        resource_group: str,
        name: str,
        location: str,
        vm_size: str,
        os_disk_id: str,
        os_type: str,
        data_disks: Sequence[tuple[int, str]] = (),
        nic_ids: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
    ) -> VmInfo:
        """A VM that attaches existing managed disks (``data_disks`` = ``(lun, disk id)`` pairs)."""
        storage = cm.StorageProfile(
            os_disk=cm.OSDisk(
                os_type=os_type, create_option="Attach", managed_disk=cm.ManagedDiskParameters(id=os_disk_id)
            ),
            data_disks=[
                cm.DataDisk(lun=lun, create_option="Attach", managed_disk=cm.ManagedDiskParameters(id=disk_id))
                for lun, disk_id in data_disks
            ],
        )
        nics = [
            cm.NetworkInterfaceReference(id=nic, properties=cm.NetworkInterfaceReferenceProperties(primary=index == 0))
            for index, nic in enumerate(nic_ids)
        ]
        body = cm.VirtualMachine(
            location=location,
            tags=dict(tags or {}),
            properties=cm.VirtualMachineProperties(
                hardware_profile=cm.HardwareProfile(vm_size=vm_size),
                storage_profile=storage,
                network_profile=cm.NetworkProfile(network_interfaces=nics),
            ),
        )
        vm_id = f"{self._group_id(resource_group)}/providers/{_VM}/{name}"
        try:
            vm = self._client.virtual_machines.begin_create_or_update(resource_group, name, body).result()
        except AzureError as exc:
            raise translate_arm_error(exc, action="create", resource=vm_id) from exc
        return self._vm_info(vm, self._disks_for([vm]))

    def vm_sizes(self, location: str) -> list[str]:
        """The VM sizes offered in ``location``; AzureResourceNotFoundError for a region ARM does not know."""
        scope = f"/subscriptions/{self._subscription}/providers/Microsoft.Compute/locations/{location}"
        try:
            return [str(size.name) for size in self._client.virtual_machine_sizes.list(location)]
        except AzureError as exc:
            raise translate_arm_error(exc, action="list the VM sizes of", resource=scope) from exc

    def delete_vm(self, vm_id: str) -> None:
        """Delete the VM and keep its disks (their deleteOption stays Detach)."""
        parsed = self._own_id(vm_id, _VM)
        try:
            self._client.virtual_machines.begin_delete(parsed.resource_group, parsed.name).result()
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise translate_arm_error(exc, action="delete", resource=vm_id) from exc

    def _put_disk(self, resource_group: str, name: str, body: cm.Disk) -> DiskInfo:
        disk_id = f"{self._group_id(resource_group)}/providers/{_DISK}/{name}"
        try:
            return _disk_info(self._client.disks.begin_create_or_update(resource_group, name, body).result())
        except AzureError as exc:
            raise translate_arm_error(exc, action="create", resource=disk_id) from exc

    # -- internals ---------------------------------------------------------------------------------

    def _own_id(self, resource_id: str, expect: str | None = None) -> ResourceId:
        parsed = ResourceId.parse(resource_id, expect=expect)
        if parsed.subscription.lower() != self._subscription.lower():
            raise UsageError(
                f"'{resource_id}' is in subscription {parsed.subscription}, but Bulwark is working on "
                f"subscription {self._subscription}",
                hint="protect each subscription with its own policy (and give the identity access there)",
            )
        return parsed

    def _group_id(self, resource_group: str) -> str:
        return f"/subscriptions/{self._subscription}/resourceGroups/{resource_group}"

    def _get_vm(self, parsed: ResourceId) -> cm.VirtualMachine:
        try:
            return self._client.virtual_machines.get(parsed.resource_group, parsed.name)
        except AzureError as exc:
            raise translate_arm_error(exc, action="read", resource=str(parsed)) from exc

    def _list_vms(self, resource_group: str | None) -> list[cm.VirtualMachine]:
        try:
            if resource_group is None:
                return list(self._client.virtual_machines.list_all())
            return list(self._client.virtual_machines.list(resource_group))
        except AzureError as exc:
            scope = self._group_id(resource_group) if resource_group else f"subscription {self._subscription}"
            raise translate_arm_error(exc, action="list the VMs of", resource=scope) from exc

    def _list_snapshots(self, resource_group: str | None) -> list[SnapshotInfo]:
        try:
            if resource_group is None:
                return [_snapshot_info(s) for s in self._client.snapshots.list()]
            return [_snapshot_info(s) for s in self._client.snapshots.list_by_resource_group(resource_group)]
        except AzureError as exc:
            scope = self._group_id(resource_group) if resource_group else f"subscription {self._subscription}"
            raise translate_arm_error(exc, action="list the snapshots of", resource=scope) from exc

    def _disks_for(self, vms: Sequence[cm.VirtualMachine]) -> dict[str, DiskInfo]:
        """The managed disks of ``vms`` by lower-cased id: one list call per resource group holding
        them, then a GET for any disk the lists missed."""
        wanted = {disk_id.lower(): disk_id for vm in vms for disk_id in _managed_disk_ids(vm)}
        groups = sorted({ResourceId.parse(d).resource_group.lower() for d in wanted.values()})
        found: dict[str, DiskInfo] = {}
        for group in groups:
            for disk in self.list_disks(group):
                if disk.id.lower() in wanted:
                    found[disk.id.lower()] = disk
        for key, disk_id in wanted.items():
            if key not in found:
                found[key] = self.get_disk(disk_id)
        return found

    def _vm_info(self, vm: cm.VirtualMachine, disks: Mapping[str, DiskInfo]) -> VmInfo:
        parsed = ResourceId.parse(str(vm.id))
        profile = vm.storage_profile
        os_entry = profile.os_disk if profile is not None else None
        if os_entry is None:
            raise AzureApiError(
                f"VM '{vm.name}' has no OS disk in its storage profile", hint="check the VM in the portal"
            )
        data_entries = sorted(profile.data_disks or [], key=lambda d: d.lun) if profile is not None else []
        return VmInfo(
            id=str(vm.id),
            name=str(vm.name),
            subscription_id=parsed.subscription,
            resource_group=parsed.resource_group,
            location=str(vm.location),
            vm_size=vm.hardware_profile.vm_size if vm.hardware_profile is not None else None,
            os_type=_text(os_entry.os_type),
            os_disk=_vm_disk(os_entry, None, disks),
            data_disks=tuple(_vm_disk(entry, int(entry.lun), disks) for entry in data_entries),
            tags=dict(vm.tags or {}),
            nic_ids=tuple(
                str(nic.id)
                for nic in (vm.network_profile.network_interfaces or [] if vm.network_profile is not None else [])
                if nic.id
            ),
        )


def _managed_disk_ids(vm: cm.VirtualMachine) -> list[str]:
    profile = vm.storage_profile
    if profile is None:
        return []
    entries: list[Any] = [profile.os_disk, *(profile.data_disks or [])]
    return [
        str(e.managed_disk.id) for e in entries if e is not None and e.managed_disk is not None and e.managed_disk.id
    ]


def _vm_disk(entry: Any, lun: int | None, disks: Mapping[str, DiskInfo]) -> VmDisk:
    managed_id = entry.managed_disk.id if entry.managed_disk is not None else None
    if managed_id:
        disk = disks.get(str(managed_id).lower())
        return VmDisk(
            name=str(entry.name or ResourceId.parse(str(managed_id)).name),
            lun=lun,
            managed_disk_id=disk.id if disk else str(managed_id),
            size_bytes=disk.size_bytes if disk else None,
            unique_id=disk.unique_id if disk else None,
            caching=_text(entry.caching),
        )
    uri = entry.vhd.uri if entry.vhd is not None else None
    size_gb = entry.disk_size_gb
    return VmDisk(
        name=str(entry.name or ""),
        lun=lun,
        vhd_uri=str(uri) if uri else None,
        size_bytes=int(size_gb) * _GIB if size_gb else None,
        caching=_text(entry.caching),
    )


def _disk_info(disk: cm.Disk) -> DiskInfo:
    size = disk.disk_size_bytes or (disk.disk_size_gb or 0) * _GIB
    return DiskInfo(
        id=str(disk.id),
        name=str(disk.name),
        resource_group=ResourceId.parse(str(disk.id)).resource_group,
        location=str(disk.location),
        size_bytes=int(size),
        unique_id=str(disk.unique_id or ""),
        disk_state=_text(disk.disk_state) or "",
        sku=_text(disk.sku.name) if disk.sku is not None else None,
        os_type=_text(disk.os_type),
        managed_by=disk.managed_by,
        zones=tuple(disk.zones or ()),
        time_created=disk.time_created,
        tags=dict(disk.tags or {}),
    )


def _snapshot_info(snapshot: cm.Snapshot) -> SnapshotInfo:
    creation = snapshot.creation_data
    created = snapshot.time_created or dt.datetime.min.replace(tzinfo=dt.UTC)
    return SnapshotInfo(
        id=str(snapshot.id),
        name=str(snapshot.name),
        resource_group=ResourceId.parse(str(snapshot.id)).resource_group,
        location=str(snapshot.location),
        source_disk_id=str(creation.source_resource_id or "") if creation is not None else "",
        source_unique_id=creation.source_unique_id if creation is not None else None,
        family_id=snapshot.incremental_snapshot_family_id,
        incremental=bool(snapshot.incremental),
        time_created=created,
        size_bytes=int(snapshot.disk_size_bytes or (snapshot.disk_size_gb or 0) * _GIB),
        provisioning_state=str(snapshot.provisioning_state or ""),
        disk_state=_text(snapshot.disk_state),
        tags=dict(snapshot.tags or {}),
    )


def _text(value: object) -> str | None:
    """An SDK enum or string as plain text."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _region(location: str) -> str:
    return location.replace(" ", "").lower()


if TYPE_CHECKING:  # mypy checks that the adapter implements its ports
    from .ports import DiskAccess, DiskSnapshots, RestoreTargets, VmInventory

    def _conforms(compute: AzureCompute) -> tuple[VmInventory, DiskSnapshots, DiskAccess, RestoreTargets]:
        return compute, compute, compute, compute
