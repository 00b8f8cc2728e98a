"""VM and disk restore activities: create a disk (from a snapshot, or empty for upload), start the
worker that writes an upload disk, create the VM, delete the disks of a failed restore. The plan
holds ids and a passphrase *reference* only; the worker resolves the passphrase itself."""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions import names
from shared.services.vm_restore import CreateDiskRequest, CreateVmRequest, DeleteDisksRequest, StartRestoreJob
from shared.wiring import vm_restore_services

from .guard import guarded

bp = df.Blueprint()


@bp.activity_trigger(input_name="request", activity=names.CREATE_RESTORE_DISK)
def create_restore_disk(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.CREATE_RESTORE_DISK,
        lambda: vm_restore_services().create_disk(CreateDiskRequest.from_dict(request)).to_dict(),
        request=request["plan"],
    )


@bp.activity_trigger(input_name="request", activity=names.START_RESTORE_JOB)
def start_restore_job(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.START_RESTORE_JOB,
        lambda: vm_restore_services().start_job(StartRestoreJob.from_dict(request)).to_dict(),
        request=request["plan"],
    )


@bp.activity_trigger(input_name="request", activity=names.CREATE_RESTORED_VM)
def create_restored_vm(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.CREATE_RESTORED_VM,
        lambda: {"vm_id": vm_restore_services().create_vm(CreateVmRequest.from_dict(request))},
        request=request["plan"],
    )


@bp.activity_trigger(input_name="request", activity=names.DELETE_RESTORE_DISKS)
def delete_restore_disks(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.DELETE_RESTORE_DISKS,
        lambda: {"deleted": vm_restore_services().delete_disks(DeleteDisksRequest.from_dict(request))},
    )
