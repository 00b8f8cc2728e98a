"""``python -m scripts.demo_repository``: Bulwark's repository layer alone, on a disk image with a
real ext4 file system (``make demo`` shows the whole app: scripts/demo.py).

It drives the ``bulwark`` CLI directly, without Azure or the function app:

1. build a ~256 MiB sparse disk image holding an ext4 file system with text, log, database-like and
   binary files (``mkfs.ext4 -d``);
2. ``bulwark repo init`` in a temporary directory, then a full backup of the disk;
3. change the disk as a guest would (``debugfs -w``: a new file, a rewritten log, a deleted file
   whose blocks are discarded) and derive the changed and cleared 512-byte pages, exactly what
   Azure's page-range diff between two snapshots reports;
4. incremental backup with ``--parent`` and ``--changed-ranges`` (only the changed blocks are read);
5. restore both points, compare each with the disk as it was at that time, byte for byte, check
   the restored images stay sparse, read the files back out of the restored ext4 (``debugfs``)
   and check the file systems (``e2fsck -n``);
6. ``bulwark verify --read-data``.

It exits 0 only when every check passes and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from scripts.make_image import (
    MIB,
    BlockFactory,
    allocated_bytes,
    coalesce,
    diff_images,
    nonzero_blocks,
    punch_hole,
)

DISK_SIZE = "256M"
FS_BLOCK = 4096
PASSWORD = "demo-only-passphrase"
MKFS = Path("/usr/sbin/mkfs.ext4")
DEBUGFS = Path("/usr/sbin/debugfs")
E2FSCK = Path("/usr/sbin/e2fsck")

Files = dict[str, bytes]
"""A file tree: path inside the file system (no leading slash) -> content."""

console = Console(width=None if sys.stdout.isatty() else 120, highlight=False)


class DemoError(Exception):
    """A command the demo depends on failed; the message carries its output."""


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str = ""


# --- the guest's files ---------------------------------------------------------------------------


def initial_files(seed: int = 1) -> Files:
    rng = random.Random(seed)
    blocks = BlockFactory(seed, "demo-files")
    return {
        "etc/hostname": b"demo-vm-01\n",
        "etc/app/config.toml": b'[server]\nlisten = "0.0.0.0:8080"\nworkers = 4\n\n[db]\npath = "/srv/db"\n',
        "home/alice/notes.md": b"# Notes\n\n" + b"".join(f"- item {i}: ship it\n".encode() for i in range(400)),
        "var/log/app.log": log_text(rng, 6000),
        "srv/db/orders.dat": blocks.compressible_block(0) + blocks.compressible_block(1),
        "srv/media/photo.jpg": blocks.random_block(2) + blocks.random_block(3)[: MIB // 2],
        "srv/cache/blob.bin": blocks.random_block(4),
    }


def log_text(rng: random.Random, lines: int, first_second: int = 1_700_000_000) -> bytes:
    levels = ("INFO", "INFO", "WARN", "ERROR")
    return b"".join(
        f"{first_second + i} {rng.choice(levels)} api: request {rng.getrandbits(48):012x} took "
        f"{rng.randrange(900)} ms\n".encode()
        for i in range(lines)
    )


@dataclass(frozen=True)
class GuestChange:
    """What the guest does between the two snapshots."""

    new_files: Files
    """Files written (created, or replaced with new content)."""
    deleted: tuple[str, ...]
    """Files deleted; their blocks are discarded, as a guest mounted with ``discard`` does."""

    def apply_to(self, files: Files) -> Files:
        changed = {path: data for path, data in files.items() if path not in self.deleted}
        changed.update(self.new_files)
        return changed


def guest_change(files: Files, seed: int = 2) -> GuestChange:
    rng = random.Random(seed)
    report = b"".join(f"order {n}: shipped to customer {rng.randrange(10**6)}\n".encode() for n in range(3000))
    return GuestChange(
        new_files={
            "home/alice/report.txt": report,
            "var/log/app.log": files["var/log/app.log"] + log_text(rng, 3000, first_second=1_700_010_000),
        },
        deleted=("srv/cache/blob.bin",),
    )


def write_tree(root: Path, files: Files) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# --- disk images ---------------------------------------------------------------------------------


def run(argv: Sequence[str | Path], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run([str(a) for a in argv], env=env, capture_output=True, check=False)
    if done.returncode != 0:
        command = " ".join(str(a) for a in argv)
        output = (done.stderr or done.stdout).decode(errors="replace")[-2000:]
        raise DemoError(f"`{command}` exited with {done.returncode}:\n{output}")
    return done


def make_ext4(image: Path, files: Files, work: Path) -> None:
    tree = work / "tree"
    write_tree(tree, files)
    run([MKFS, "-q", "-F", "-b", str(FS_BLOCK), "-L", "demo-root", "-d", tree, image, DISK_SIZE])
    shutil.rmtree(tree)


def change_disk(image: Path, change: GuestChange, work: Path) -> None:
    """Apply ``change`` inside the image with debugfs, then discard the deleted files' blocks."""
    discarded = [block for path in change.deleted for block in file_blocks(image, path)]
    staged = work / "staged"
    commands = []
    for number, (path, data) in enumerate(sorted(change.new_files.items())):
        source = staged / str(number)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(data)
        directory, name = os.path.split("/" + path)
        commands += [f"cd {directory}", f"rm {name}", f"write {source} {name}"]
    commands += [f"rm /{path}" for path in change.deleted]
    script = work / "debugfs.cmd"
    script.write_text("\n".join(commands) + "\n")
    # "rm" of a file that does not exist yet only prints a complaint; debugfs carries on.
    run([DEBUGFS, "-w", "-f", script, image])
    shutil.rmtree(staged)
    with image.open("r+b") as f:
        for offset, length in coalesce((block * FS_BLOCK, FS_BLOCK) for block in discarded):
            punch_hole(f.fileno(), offset, length)


def file_blocks(image: Path, path: str) -> list[int]:
    return [int(block) for block in run([DEBUGFS, "-R", f"blocks /{path}", image]).stdout.split()]


def read_file(image: Path, path: str) -> bytes | None:
    """A file's content read straight out of the ext4 image, or None when it does not exist."""
    done = run([DEBUGFS, "-R", f"cat /{path}", image])
    if b"File not found" in done.stderr:
        return None
    return done.stdout


# --- the bulwark CLI -----------------------------------------------------------------------------


class Bulwark:
    """The CLI with the demo's repository and passphrase."""

    def __init__(self, repo: Path) -> None:
        # The venv's console script sits next to the interpreter; do not resolve the symlink.
        self._exe = Path(sys.executable).parent / "bulwark"
        if not self._exe.exists():
            raise DemoError(f"{self._exe} is missing; run `make setup` first")
        self._repo = repo
        self._env = dict(os.environ, BULWARK_PASSWORD=PASSWORD)

    def __call__(self, *args: str | Path) -> str:
        return run([self._exe, *args, "--repo", self._repo], env=self._env).stdout.decode()

    def json(self, *args: str | Path) -> Any:
        return json.loads(self(*args, "--json"))


# --- checks --------------------------------------------------------------------------------------


def check_restore(label: str, restored: Path, expected: Path) -> list[Check]:
    identical = restored.read_bytes() == expected.read_bytes()
    allocated, logical = allocated_bytes(restored), restored.stat().st_size
    # Bulwark stores 1 MiB blocks and skips all-zero ones, so a sparse restore allocates at most
    # the blocks that hold data.
    needed = nonzero_blocks(expected) * MIB
    return [
        Check(f"{label}: byte-identical to the disk at that time", identical),
        Check(
            f"{label}: sparse",
            allocated <= needed,
            f"{allocated / MIB:.1f} MiB allocated of {logical / MIB:.0f} MiB; "
            f"{needed / MIB:.0f} MiB of 1 MiB blocks hold data",
        ),
        Check(f"{label}: ext4 consistent (e2fsck -n)", _fsck_clean(restored)),
    ]


def _fsck_clean(image: Path) -> bool:
    return subprocess.run([E2FSCK, "-fn", str(image)], capture_output=True, check=False).returncode == 0


def check_files(label: str, image: Path, files: Files, absent: Iterable[str] = ()) -> list[Check]:
    mismatched = [path for path, data in files.items() if read_file(image, path) != data]
    still_there = [path for path in absent if read_file(image, path) is not None]
    detail = f"{len(files)} files read with debugfs"
    if mismatched:
        detail += f"; differ: {', '.join(mismatched)}"
    if still_there:
        detail += f"; should be gone: {', '.join(still_there)}"
    return [Check(f"{label}: files intact", not mismatched and not still_there, detail)]


# --- the demo ------------------------------------------------------------------------------------


def announce() -> None:
    console.print("[bold]Bulwark demo: the repository layer[/] (bulwark CLI on a local repository)")
    console.print(
        "It backs up one ext4 disk image with the CLI, changes it, backs it up incrementally with Azure-style "
        "changed ranges, restores both points and verifies everything (`make demo` shows the whole app).\n"
    )


def step(message: str) -> None:
    console.print(f"[cyan]>[/] {message}")


def demo(work: Path) -> tuple[list[dict[str, Any]], list[Check]]:
    disk, at_full = work / "disk.img", work / "disk-at-full.img"
    bulwark = Bulwark(work / "repo")
    files_before = initial_files()
    step(f"building a {DISK_SIZE} ext4 disk with {len(files_before)} files")
    make_ext4(disk, files_before, work)
    run(["cp", "--sparse=always", disk, at_full])  # the first snapshot, to compare its restore with

    step("bulwark repo init")
    bulwark("repo", "init")
    step("full backup")
    full = bulwark.json("backup-image", disk, "--tag", "demo=full")

    change = guest_change(files_before)
    files_after = change.apply_to(files_before)
    step(f"guest writes {len(change.new_files)} files and deletes {len(change.deleted)} (discarding its blocks)")
    change_disk(disk, change, work)
    diff = diff_images(at_full, disk)
    ranges = work / "changed-ranges.json"
    ranges.write_text(diff.to_json())
    console.print(
        f"  page-range diff: {diff.changed_bytes / 1024:.0f} KiB changed in {len(diff.changed)} range(s), "
        f"{diff.cleared_bytes / 1024:.0f} KiB cleared in {len(diff.cleared)} range(s)"
    )

    step("incremental backup from the changed ranges")
    incremental = bulwark.json(
        "backup-image", disk, "--parent", full["point"], "--changed-ranges", ranges, "--tag", "demo=incremental"
    )

    step("restoring both points")
    checks = []
    for label, point, expected, files, absent in (
        ("full point", full["point"], at_full, files_before, ()),
        ("incremental point", incremental["point"], disk, files_after, change.deleted),
    ):
        restored = work / f"restored-{point}.img"
        bulwark("restore-image", point, restored)
        checks += check_restore(label, restored, expected)
        checks += check_files(label, restored, files, absent)
        restored.unlink()

    step("bulwark verify --read-data")
    verified, problem = succeeds(bulwark, "verify", "--read-data")
    checks.append(Check("bulwark verify --read-data", verified, problem))
    points = bulwark.json("points")
    checks.append(Check("repository lists both points", len(points) == 2, f"{len(points)} points"))
    return [full, incremental], checks


def succeeds(bulwark: Bulwark, *args: str) -> tuple[bool, str]:
    """Run a command whose failure is a finding, not a reason to stop the demo."""
    try:
        bulwark(*args)
    except DemoError as exc:
        return False, str(exc).splitlines()[-1]
    return True, ""


def print_summary(backups: list[dict[str, Any]], checks: list[Check]) -> None:
    table = Table(title="Backups")
    for column in ("point", "kind", "read", "new", "stored", "duration"):
        table.add_column(column, justify="left" if column in ("point", "kind") else "right")
    for kind, backup in zip(("full", "incremental"), backups, strict=True):
        table.add_row(
            str(backup["point"]),
            kind,
            _size(backup["bytes_read"]),
            _size(backup["bytes_new"]),
            _size(backup["bytes_stored"]),
            f"{backup['duration_s']:.2f} s",
        )
    console.print(table)
    table = Table(title="Checks")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(check.what, "[green]ok[/]" if check.ok else "[red bold]FAILED[/]", check.detail)
    console.print(table)


def _size(count: int) -> str:
    return f"{count / MIB:.2f} MiB"


def missing_tools() -> list[str]:
    return [str(tool) for tool in (MKFS, DEBUGFS, E2FSCK) if not tool.exists()]


def main() -> int:
    announce()
    missing = missing_tools()
    if missing:
        console.print(f"[red]missing {', '.join(missing)}: apt-get install e2fsprogs[/]")
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bulwark-demo-") as scratch:
        try:
            backups, checks = demo(Path(scratch))
        except DemoError as exc:
            console.print(f"[red bold]demo failed:[/] {exc}")
            return 1
    print_summary(backups, checks)
    passed = all(check.ok for check in checks)
    verdict = "[green bold]all checks passed[/]" if passed else "[red bold]some checks FAILED[/]"
    console.print(f"{verdict} in {time.perf_counter() - started:.1f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
