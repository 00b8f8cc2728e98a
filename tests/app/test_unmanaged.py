"""A VM with an unmanaged (VHD page blob) disk through the app: blob snapshots in its storage
account, then image-level backups by a worker that reads the blob snapshots with its identity;
the second session reads only what changed (the ``prevsnapshot`` diff)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.clients import AzureClients
from shared.services.job_spec import split_blob_snapshot
from tests.app.harness import policy_document, running_app, start_session, store_policy, wait_session
from tests.worker.estate import (
    MIB,
    guest_image,
    make_repository,
    make_unmanaged_vm,
    open_repository,
    restores_identical,
)


def test_unmanaged_disk_full_then_incremental(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("unmanaged")
    vm = make_unmanaged_vm(stack, clients, admin, tags={"app": "web"})
    vhd = vm.os_disk.vhd_uri
    assert vhd is not None
    repository, secret = make_repository(work)
    store_policy(stack, policy_document(stack, vm.resource_group, repository, secret, "legacy"))
    images: dict[str, Path] = {}
    outputs = []
    with running_app(stack, work) as (host, _):
        for number in (1, 2):
            if number == 2:
                admin.guest_write(vhd, 200 * MIB, b"changed on the unmanaged disk " * 4000)
            output = wait_session(host, start_session(host, "legacy"))["output"]
            outputs.append(output)
            [disk] = output["resources"][0]["disks"]
            images[disk["point_id"]] = guest_image(admin, vhd, work / f"{number}.img")
    for output in outputs:
        [resource] = output["resources"]
        assert output["status"] == "Success" and resource["status"] == "Success", output
        [disk] = resource["disks"]
        uri, stamp = split_blob_snapshot(disk["snapshot_id"])
        assert uri == vhd and stamp
    first, second = (o["resources"][0]["disks"][0] for o in outputs)
    assert not first["incremental"] and second["incremental"]
    assert second["bytes_read"] <= MIB < first["bytes_read"]
    repo = open_repository(repository)
    for point_id, expected in images.items():
        assert restores_identical(repo, repo.load_point(point_id), expected, work)
