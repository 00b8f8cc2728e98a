"""The restore benchmark: writing a disk back, and pulling one file out of a point.

    python -m scripts.bench_restore [--disk-gib 4] [--data-mib 1024] [--file-mib 100] [--json FILE]

1. Disk restore against backup, on the local stack: a ``--disk-gib`` managed disk in the simulator
   holding ``--data-mib`` of mixed data (half compressible, half random, spread over the disk) is
   snapshotted and backed up the way the worker does it (a read SAS, ``ManagedDiskSnapshotSource``,
   ``backup_image``); the point is then restored the way an ``image-restore`` worker does it (an
   upload disk of the same size, its write SAS, ``DiskUpload`` with Put Page <= 4 MiB,
   ``restore_into``, the VHD footer, endGetAccess), once joining adjacent blocks into Put Pages of
   up to 4 MiB (as the worker does) and once with one Put Page per block. Each runs with the worker's
   thread count. Reported: MB/s of disk data for each and their ratio (target: restore >= backup speed),
   and whether the restored disk reads back byte-identical to the snapshot.
2. File extraction: a ``--disk-gib`` ext4 image holding a ``--file-mib`` file among small ones is
   backed up into a directory repository; the file is read from the point through
   ``ImagePointReader`` and the file-system layer, and the blocks fetched from the repository are
   compared with the file's own (target: at most 2x).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from azure.mgmt.compute import models as cm
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack, running_stack
from rich.console import Console
from rich.table import Table

from shared.azure.clients import AzureClients
from shared.azure.settings import AzureSettings
from shared.azure.upload import MAX_PUT_PAGE, DiskUpload
from shared.core.clock import SystemClock
from shared.engine.backup import backup_image
from shared.engine.image_reader import ImagePointReader
from shared.engine.restore import restore_into
from shared.repo.repository import Repository
from shared.restore.files import Disk
from shared.sources.image_file import ImageFileSource
from shared.sources.managed_disk import ManagedDiskSnapshotSource
from shared.storage.directory import DirectoryStore

__all__ = ["RestoreBench", "run_restore_bench", "restore_table"]

MIB = 1 << 20
GIB = 1 << 30
PASSPHRASE = "bench-restore-passphrase"
WORKER_THREADS = 2  # python -m shared.worker's default
RESTORE_THREADS = 2 * WORKER_THREADS  # an image-restore worker's: Put Page is latency-bound
console = Console(stderr=True)


@dataclass(frozen=True)
class RestoreBench:
    disk_bytes: int
    data_bytes: int
    backup_s: float
    restore_s: float
    restore_requests: int
    per_block_s: float
    """The same restore with one Put Page per block (adjacent blocks not joined)."""
    per_block_requests: int
    identical: bool
    file_bytes: int
    file_blocks: int
    blocks_fetched: int
    file_identical: bool

    @property
    def backup_mb_s(self) -> float:
        return self.data_bytes / self.backup_s / 1e6

    @property
    def restore_mb_s(self) -> float:
        return self.data_bytes / self.restore_s / 1e6

    @property
    def join_gain(self) -> float:
        """How much faster joining adjacent blocks into 4 MiB Put Pages makes the restore."""
        return self.per_block_s / self.restore_s

    @property
    def speed_ratio(self) -> float:
        return self.backup_s / self.restore_s

    @property
    def read_amplification(self) -> float:
        return self.blocks_fetched / self.file_blocks


def _mixed_chunks(data_bytes: int, disk_bytes: int, seed: int) -> list[tuple[int, bytes]]:
    """4 MiB pieces spread evenly over the disk, alternately random and compressible."""
    rng = random.Random(seed)
    pieces = data_bytes // (4 * MIB)
    stride = (disk_bytes // pieces) // MIB * MIB
    chunks = []
    for index in range(pieces):
        if index % 2:
            data = rng.randbytes(4 * MIB)
        else:
            words = b" ".join(rng.choice([b"alpha", b"bravo", b"delta", b"kilo", b"lima"]) for _ in range(800))
            data = (words * (4 * MIB // len(words) + 1))[: 4 * MIB]
        chunks.append((index * stride, data))
    return chunks


def _disk_round_trip(
    workdir: Path, disk_gib: int, data_mib: int
) -> tuple[float, tuple[float, int], tuple[float, int], bool]:
    with running_stack(workdir / "stack") as stack:
        admin = AdminClient(stack.arm_endpoint, stack.ca_bundle)
        clients = AzureClients(AzureSettings.for_local_stack(asdict(stack)))
        try:
            compute = clients.compute()
            group = "rg-bench-restore"
            _put_group(stack, group)
            size = disk_gib * GIB
            body = cm.Disk(
                location=stack.location,
                properties=cm.DiskProperties(
                    creation_data=cm.CreationData(create_option="Empty"), disk_size_gb=disk_gib
                ),
            )
            clients.compute_client().disks.begin_create_or_update(group, "source", body).result()
            disk = compute.get_disk(
                f"/subscriptions/{stack.subscription_id}/resourceGroups/{group}/providers/Microsoft.Compute/disks/source"
            )
            for offset, data in _mixed_chunks(data_mib * MIB, size, 7):
                admin.guest_write(disk.id, offset, data)
            snapshot = compute.create_snapshot(
                compute.get_disk(disk.id), resource_group=group, name="source-snap", tags={}
            )
            repo = Repository.init(DirectoryStore(workdir / "repo"), PASSPHRASE, SystemClock())

            read = compute.grant_read(snapshot.id)
            started = time.perf_counter()
            with ManagedDiskSnapshotSource(
                read, source_id=disk.id, options=clients.data_plane(), renew=lambda: compute.grant_read(snapshot.id)
            ) as source:
                point = backup_image(repo, source, workers=WORKER_THREADS).point
            backup_s = time.perf_counter() - started
            compute.revoke(snapshot.id)

            def restore(name: str, coalesce: int) -> tuple[float, int, str]:
                """Seconds and Put Page requests to write the point into a new upload disk."""
                target = compute.create_upload_disk(
                    resource_group=group, name=name, location=stack.location, size_bytes=size
                )
                started = time.perf_counter()
                write = compute.grant_write(target.id)
                with DiskUpload(write, size, options=clients.data_plane()) as upload:
                    restore_into(repo, point, upload, workers=RESTORE_THREADS, coalesce=coalesce)
                    upload.finish(unique_id=uuid.uuid4(), created=SystemClock().now())
                    requests = upload.requests
                compute.revoke(target.id)
                return time.perf_counter() - started, requests, target.id

            joined = restore("restored", MAX_PUT_PAGE)
            # The same restore with one Put Page per block: what joining adjacent blocks buys.
            single = restore("restored-per-block", 0)
            expected = _guest_digest(admin, snapshot.id)
            identical = expected == _guest_digest(admin, joined[2]) == _guest_digest(admin, single[2])
        finally:
            clients.close()
    return backup_s, joined[:2], single[:2], identical


def _guest_digest(admin: AdminClient, resource_id: str) -> str:
    digest = hashlib.sha256()
    info = admin.guest_info(resource_id)
    for start, end in info["ranges"]:
        digest.update(f"{start}:".encode())
        for piece in admin.iter_guest_read(resource_id, start, end - start):
            digest.update(piece)
    return digest.hexdigest()


def _put_group(stack: Stack, name: str) -> None:
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
            headers={"Authorization": "Bearer bench", "Content-Type": "application/json"},
        )
        connection.getresponse().read()
    finally:
        connection.close()


def _file_extraction(workdir: Path, disk_gib: int, file_mib: int) -> tuple[int, int, int, bool]:
    tree = workdir / "tree"
    rng = random.Random(11)
    for index in range(40):
        folder = tree / rng.choice(["etc", "var/log", "srv/data", "home/demo"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"small-{index:02d}.bin").write_bytes(rng.randbytes(rng.choice([512, 40_000, 300_000])))
    big = tree / "srv/data/big.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(rng.randbytes(file_mib * MIB))
    image = workdir / "fs.img"
    with image.open("wb") as handle:
        handle.truncate(disk_gib * GIB)
    mkfs = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
    subprocess.run([mkfs, "-F", "-q", "-d", str(tree), str(image)], check=True, capture_output=True)
    repo = Repository.init(DirectoryStore(workdir / "fs-repo"), PASSPHRASE, SystemClock())
    point = backup_image(repo, ImageFileSource(image)).point
    image.unlink()
    reader = ImagePointReader(repo, point)
    disk = Disk(reader)
    volume, path = disk.resolve("/srv/data/big.bin")
    fs = disk.filesystem(volume)
    entry = fs.lookup(path)
    data = fs.open(entry).read()
    identical = hashlib.sha256(data).digest() == hashlib.sha256(big.read_bytes()).digest()
    file_blocks = -(-entry.size // reader.block_size)
    return entry.size, file_blocks, reader.blocks_fetched, identical


def run_restore_bench(
    *, disk_gib: int = 4, data_mib: int = 1024, file_mib: int = 100, workdir: Path | None = None
) -> RestoreBench:
    scratch = Path(tempfile.mkdtemp(prefix="bulwark-restore-bench-", dir=workdir))
    try:
        backup_s, (restore_s, requests), (per_block_s, per_block_requests), identical = _disk_round_trip(
            scratch, disk_gib, data_mib
        )
        file_bytes, file_blocks, fetched, file_identical = _file_extraction(scratch, disk_gib, file_mib)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return RestoreBench(
        disk_gib * GIB,
        data_mib * MIB,
        backup_s,
        restore_s,
        requests,
        per_block_s,
        per_block_requests,
        identical,
        file_bytes,
        file_blocks,
        fetched,
        file_identical,
    )


def restore_table(result: RestoreBench) -> Table:
    table = Table(title=f"Restore ({result.disk_bytes // GIB} GiB disk, {result.data_bytes // MIB} MiB of data)")
    for column in ("measure", "value"):
        table.add_column(column)
    table.add_row("backup from the simulated snapshot", f"{result.backup_s:.2f} s = {result.backup_mb_s:.0f} MB/s")
    table.add_row(
        "restore into a simulated upload disk",
        f"{result.restore_s:.2f} s = {result.restore_mb_s:.0f} MB/s ({result.restore_requests} Put Page requests)",
    )
    table.add_row(
        "the same restore, one Put Page per block",
        f"{result.per_block_s:.2f} s ({result.per_block_requests} requests): joining is {result.join_gain:.2f}x faster",
    )
    table.add_row("restore speed / backup speed", f"{result.speed_ratio:.2f}x")
    table.add_row("restored disk byte-identical", str(result.identical))
    table.add_row(
        f"extract a {result.file_bytes // MIB} MiB file",
        f"{result.blocks_fetched} blocks fetched for {result.file_blocks} of the file's "
        f"= {result.read_amplification:.2f}x (identical: {result.file_identical})",
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_restore", description=__doc__)
    parser.add_argument("--disk-gib", type=int, default=4)
    parser.add_argument("--data-mib", type=int, default=1024)
    parser.add_argument("--file-mib", type=int, default=100)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the result here")
    args = parser.parse_args(argv)
    result = run_restore_bench(
        disk_gib=args.disk_gib, data_mib=args.data_mib, file_mib=args.file_mib, workdir=args.workdir
    )
    console.print(restore_table(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    ok = result.identical and result.file_identical and result.speed_ratio >= 1 and result.read_amplification <= 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
