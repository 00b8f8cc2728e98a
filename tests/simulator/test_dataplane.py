"""Managed-disk data plane through the real azure-storage-blob client and SAS URLs from beginGetAccess."""

from __future__ import annotations

import http.client
import os
import ssl
from functools import partial
from urllib.parse import urlsplit

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.paging import ItemPaged
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm
from azure.storage.blob import BlobClient
from azure.storage.blob._models import PageRangePaged
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient
from bulwark_local.simulator.vhd import vhd_footer

from .conftest import LOCATION
from .test_compute import attach_vm, make_disk, snapshot

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def grant(
    compute: ComputeManagementClient,
    rg: str,
    name: str,
    *,
    kind: str = "snapshots",
    access: str = "Read",
    seconds: int = 3600,
) -> str:
    operations = compute.snapshots if kind == "snapshots" else compute.disks
    sas = (
        operations.begin_grant_access(rg, name, cm.GrantAccessData(access=access, duration_in_seconds=seconds))
        .result()
        .access_sas
    )
    assert isinstance(sas, str)
    return sas


def blob(sim: SimulatorEndpoints, sas: str) -> BlobClient:
    return BlobClient.from_blob_url(sas, connection_verify=sim.ca_bundle)


def spans(ranges: list[dict[str, int]]) -> list[tuple[int, int]]:
    return [(r["start"], r["end"]) for r in ranges]


def all_diff_ranges(client: BlobClient, previous_sas: str) -> list[tuple[int, int, bool]]:
    """The full diff over NextMarker (the SDK's get_page_range_diff_for_managed_disk reads one page only)."""
    pages = ItemPaged(
        partial(client._client.page_blob.get_page_ranges_diff, prev_snapshot_url=previous_sas),
        page_iterator_class=PageRangePaged,
    )
    return [(r.start, r.end, r.cleared) for r in pages]


def raw_put_page(sim: SimulatorEndpoints, sas: str, data: bytes, byte_range: str) -> tuple[int, str | None]:
    """A Put Page the SDK would not send (it checks alignment itself): the service's own answer."""
    parts = urlsplit(sas)
    connection = http.client.HTTPSConnection(
        parts.hostname or "", parts.port, context=ssl.create_default_context(cafile=sim.ca_bundle), timeout=10
    )
    headers = {"x-ms-range": byte_range, "x-ms-page-write": "update", "x-ms-version": "2021-08-06"}
    try:
        connection.request("PUT", f"{parts.path}?{parts.query}&comp=page", body=data, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("x-ms-error-code")
    finally:
        connection.close()


def test_diff_between_snapshots_is_exact(
    sim: SimulatorEndpoints, compute: ComputeManagementClient, admin: AdminClient, resource_group: str
) -> None:
    disk = make_disk(compute, resource_group, "data", 1)
    image = bytearray(disk.disk_size_bytes)  # what the guest should see, kept locally
    first = os.urandom(64 * KIB)
    admin.guest_write(disk.id, 0, first)
    image[0 : 64 * KIB] = first
    snapshot(compute, resource_group, "s1", disk.id)

    changed = os.urandom(4 * KIB)
    admin.guest_write(disk.id, 8 * KIB, changed)
    image[8 * KIB : 12 * KIB] = changed
    far = os.urandom(8 * KIB)
    admin.guest_write(disk.id, 3 * MIB, far)
    image[3 * MIB : 3 * MIB + 8 * KIB] = far
    admin.guest_trim(disk.id, 32 * KIB, 32 * KIB)
    image[32 * KIB : 64 * KIB] = bytes(32 * KIB)
    snapshot(compute, resource_group, "s2", disk.id)

    sas1, sas2 = grant(compute, resource_group, "s1"), grant(compute, resource_group, "s2")
    newer = blob(sim, sas2)
    pages, clears = newer.get_page_range_diff_for_managed_disk(sas1)
    assert spans(pages) == [(8 * KIB, 12 * KIB - 1), (3 * MIB, 3 * MIB + 8 * KIB - 1)]
    assert spans(clears) == [(32 * KIB, 64 * KIB - 1)]

    size = disk.disk_size_bytes
    valid, _ = newer.get_page_ranges()
    assert spans(valid) == [(0, 32 * KIB - 1), (3 * MIB, 3 * MIB + 8 * KIB - 1), (size, size + 511)]
    assert newer.get_blob_properties().size == size + 512  # the VHD footer ends the blob
    assert newer.download_blob(offset=size, length=512).readall()[:8] == b"conectix"

    # Guest writes after a snapshot never change it; trimmed pages read back as zeros.
    admin.guest_write(disk.id, 0, os.urandom(128 * KIB))
    assert newer.download_blob(offset=0, length=4 * MIB).readall() == bytes(image[: 4 * MIB])
    assert blob(sim, sas1).download_blob(offset=0, length=64 * KIB).readall() == first
    # The guest's own view matches what it wrote.
    assert admin.guest_read(disk.id, 0, 128 * KIB) != bytes(image[: 128 * KIB])


def test_diff_pagination_over_next_marker(
    sim: SimulatorEndpoints, compute: ComputeManagementClient, admin: AdminClient, resource_group: str
) -> None:
    disk = make_disk(compute, resource_group, "fragmented", 1)
    snapshot(compute, resource_group, "base", disk.id)
    expected = []
    for i in range(12):  # twelve separate ranges, 1 MiB apart
        admin.guest_write(disk.id, i * MIB, os.urandom(4 * KIB))
        expected.append((i * MIB, i * MIB + 4 * KIB - 1, False))
    snapshot(compute, resource_group, "next", disk.id)
    base_sas, next_sas = grant(compute, resource_group, "base"), grant(compute, resource_group, "next")
    admin.settings(pagelist_page_limit=5)
    client = blob(sim, next_sas)
    first_page, _ = client.get_page_range_diff_for_managed_disk(base_sas)
    assert len(first_page) == 5  # the SDK pitfall: one request, NextMarker dropped
    assert all_diff_ranges(client, base_sas) == expected
    # The public method plus marker= also walks the pages, given the marker from the raw response.
    raw = client._client.page_blob.get_page_ranges_diff(prev_snapshot_url=base_sas)
    assert raw.next_marker
    second, _ = client.get_page_range_diff_for_managed_disk(base_sas, marker=raw.next_marker)
    assert spans(second) == [(a, b) for a, b, _ in expected[5:10]]


def test_upload_disk_then_attach(
    sim: SimulatorEndpoints, compute: ComputeManagementClient, admin: AdminClient, resource_group: str
) -> None:
    size = 20 * MIB
    upload = cm.Disk(
        location=LOCATION,
        os_type="Linux",
        creation_data=cm.CreationData(create_option="Upload", upload_size_bytes=size + 512),
    )
    disk = compute.disks.begin_create_or_update(resource_group, "restored-os", upload).result()
    assert disk.disk_state == "ReadyToUpload"
    sas = grant(compute, resource_group, "restored-os", kind="disks", access="Write")
    assert compute.disks.get(resource_group, "restored-os").disk_state == "ActiveUpload"
    client = blob(sim, sas)
    payload = os.urandom(4 * MIB)
    client.upload_page(payload, offset=0, length=4 * MIB)
    client.upload_page(payload[:512], offset=8 * MIB, length=512)
    client.clear_page(offset=8 * MIB, length=512)
    with pytest.raises(ValueError):
        client.upload_page(b"x" * 100, offset=3, length=100)  # the SDK refuses misaligned pages itself
    status, code = raw_put_page(sim, sas, b"x" * 512, "bytes=3-514")  # so does the service
    assert (status, code) == (416, "InvalidPageRange")
    with pytest.raises(HttpResponseError) as too_big:
        client.upload_page(os.urandom(4 * MIB + 512), offset=4 * MIB, length=4 * MIB + 512)
    assert too_big.value.status_code == 413

    with pytest.raises(HttpResponseError) as no_footer:
        compute.disks.begin_revoke_access(resource_group, "restored-os").result()
    assert no_footer.value.error.code == "InvalidVhd"
    client.upload_page(vhd_footer(size), offset=size, length=512)
    compute.disks.begin_revoke_access(resource_group, "restored-os").result()
    finished = compute.disks.get(resource_group, "restored-os")
    assert finished.disk_state == "Unattached" and finished.disk_size_bytes == size
    with pytest.raises(ClientAuthenticationError):
        client.upload_page(payload[:512], offset=0, length=512)

    assert admin.guest_read(disk.id, 0, 4 * MIB) == payload
    info = admin.guest_info(disk.id)
    assert info["ranges"] == [[0, 4 * MIB]]

    copy = cm.Disk(location=LOCATION, creation_data=cm.CreationData(create_option="Copy", source_resource_id=disk.id))
    copied = compute.disks.begin_create_or_update(resource_group, "copied", copy).result()
    assert admin.guest_read(copied.id, 0, 4 * MIB) == payload
    vm = attach_vm(compute, resource_group, "restored", finished, [copied])
    assert vm.storage_profile.os_disk.managed_disk.id == disk.id
    assert compute.disks.get(resource_group, "copied").disk_state == "Attached"


def test_sas_expiry_revocation_and_permissions(
    sim: SimulatorEndpoints, compute: ComputeManagementClient, admin: AdminClient, resource_group: str
) -> None:
    disk = make_disk(compute, resource_group, "d", 1)
    snapshot(compute, resource_group, "s", disk.id)
    sas = grant(compute, resource_group, "s", seconds=60)
    client = blob(sim, sas)
    assert client.download_blob(offset=0, length=512).readall() == bytes(512)
    assert compute.snapshots.get(resource_group, "s").disk_state == "ActiveSAS"

    with pytest.raises(HttpResponseError) as read_only:
        client.upload_page(bytes(512), offset=0, length=512)
    assert read_only.value.status_code == 403

    tampered = blob(sim, sas.replace("sig=", "sig=AAAA"))
    with pytest.raises(ClientAuthenticationError):
        tampered.download_blob(offset=0, length=512).readall()

    admin.advance_clock(120)
    with pytest.raises(ClientAuthenticationError) as expired:
        client.download_blob(offset=0, length=512).readall()
    assert expired.value.error_code == "AuthenticationFailed"
    assert compute.snapshots.get(resource_group, "s").disk_state == "Unattached"  # the grant ran out

    fresh = blob(sim, grant(compute, resource_group, "s"))
    assert fresh.get_page_ranges() is not None
    compute.snapshots.begin_revoke_access(resource_group, "s").result()
    assert compute.snapshots.get(resource_group, "s").disk_state == "Unattached"
    with pytest.raises(ClientAuthenticationError):
        fresh.get_page_ranges()


def test_sparse_terabyte_disk_costs_nothing(
    sim: SimulatorEndpoints, compute: ComputeManagementClient, admin: AdminClient, resource_group: str
) -> None:
    before = admin.stats()["storedBytes"]
    disk = make_disk(compute, resource_group, "huge", 1024)
    assert disk.disk_size_bytes == 1 << 40
    after_create = admin.stats()["storedBytes"]
    assert after_create - before <= MIB  # the footer chunk
    admin.guest_write(disk.id, 700 * GIB, os.urandom(4 * KIB))
    snapshot(compute, resource_group, "h1", disk.id)
    snapshot(compute, resource_group, "h2", disk.id)
    assert admin.stats()["storedBytes"] - after_create <= MIB  # snapshots share every chunk
    pages, _ = blob(sim, grant(compute, resource_group, "h2")).get_page_ranges()
    assert spans(pages) == [(700 * GIB, 700 * GIB + 4 * KIB - 1), (1 << 40, (1 << 40) + 511)]


def test_unmanaged_page_blob_snapshots_and_prevsnapshot_diff(sim: SimulatorEndpoints, admin: AdminClient) -> None:
    url = f"{sim.data}/vhdstore/vhds/data-{os.urandom(3).hex()}.vhd"
    admin.create_vhd(url, 32 * MIB)
    credential = {"account_name": "vhdstore", "account_key": "c2ltdWxhdG9y"}
    client = BlobClient.from_blob_url(url, credential=credential, connection_verify=sim.ca_bundle)
    admin.guest_write(url, 0, os.urandom(8 * KIB))
    first = client.create_snapshot()["snapshot"]
    admin.guest_write(url, 1 * MIB, os.urandom(4 * KIB))
    admin.guest_trim(url, 4 * KIB, 4 * KIB)
    second = client.create_snapshot()["snapshot"]
    at_second = BlobClient.from_blob_url(url, snapshot=second, credential=credential, connection_verify=sim.ca_bundle)
    pages, clears = at_second.get_page_ranges(previous_snapshot_diff=first)
    assert spans(pages) == [(1 * MIB, 1 * MIB + 4 * KIB - 1)]
    assert spans(clears) == [(4 * KIB, 8 * KIB - 1)]
    with pytest.raises(HttpResponseError) as wrong_header:
        at_second.get_page_range_diff_for_managed_disk(url)
    assert wrong_header.value.error_code == "UnsupportedHeaderForNonManagedDisksAccount"
