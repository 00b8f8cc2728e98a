"""File-level restore from image points of real ext4 file systems (mkfs.ext4 -d), bare and inside
GPT and MBR partition tables: `bulwark files ls|get` end to end, and the reader's block budget."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.core.clock import SystemClock
from shared.core.crypto import ScryptParams
from shared.core.errors import SourceError
from shared.engine.backup import backup_image
from shared.engine.image_reader import ImagePointReader
from shared.repo.repository import Repository
from shared.restore.files import Disk, Entry, extract
from shared.sources.image_file import ImageFileSource
from shared.storage.directory import DirectoryStore
from tests.files.disks import MKFS, MiB, build_tree, make_ext4, make_partitioned

BULWARK = str(Path(sys.executable).with_name("bulwark"))
PASSWORD = "files test passphrase"

pytestmark = pytest.mark.skipif(not Path(MKFS).exists(), reason="e2fsprogs (mkfs.ext4) is not installed")


@dataclass
class Setup:
    tree: Path
    repo: Path
    points: dict[str, str]  # "bare", "gpt", "mbr", "xfs" -> point id


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    work = tmp_path_factory.mktemp("files")
    tree = build_tree(work / "tree")
    fs_image = make_ext4(tree, work / "fs.img")
    disks = {
        "bare": fs_image,
        "gpt": make_partitioned(fs_image, work / "gpt.img", "gpt"),
        "mbr": make_partitioned(fs_image, work / "mbr.img", "mbr"),
    }
    xfs = work / "xfs.img"  # a file system Bulwark cannot read: only its signature matters
    with xfs.open("wb") as f:
        f.truncate(4 * MiB)
        f.write(b"XFSB" + os.urandom(508))
    disks["xfs"] = xfs
    repo_path = work / "repo"
    repo = Repository.init(
        DirectoryStore(repo_path, fsync=False), PASSWORD, SystemClock(), scrypt=ScryptParams(n=2**10)
    )
    points = {}
    for name, image in disks.items():
        with ImageFileSource(image) as source:
            points[name] = backup_image(repo, source).point.point_id
    return Setup(tree, repo_path, points)


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    env["BULWARK_PASSWORD"] = PASSWORD
    proc = subprocess.run([BULWARK, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"bulwark {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def ls(setup: Setup, point: str, *path: str) -> dict[str, Any]:
    doc = json.loads(run("files", "ls", setup.points[point], *path, "--repo", str(setup.repo), "--json").stdout)
    assert isinstance(doc, dict)
    return doc


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_tree(original: Path, restored: Path, *, extra: str | None = None) -> None:
    """Same names, types, bytes, sizes, modification times and link targets (``extra``: a name
    only the restored tree has, such as lost+found)."""
    names = sorted(str(p.relative_to(original)) for p in original.rglob("*"))
    restored_names = [str(p.relative_to(restored)) for p in restored.rglob("*")]
    if extra is not None:
        restored_names = [n for n in restored_names if n != extra and not n.startswith(extra + "/")]
    assert sorted(restored_names) == names
    # the root of a partition is dated by mkfs, not by the tree it copied
    for name in names if extra is not None else ["", *names]:
        a, b = original / name, restored / name
        sa, sb = os.lstat(a), os.lstat(b)
        assert (sa.st_mode & 0o170777) == (sb.st_mode & 0o170777) or a.is_dir(), name
        assert sa.st_mtime_ns == sb.st_mtime_ns, name
        if a.is_symlink():
            assert os.readlink(a) == os.readlink(b), name
        elif a.is_file():
            assert sa.st_size == sb.st_size and digest(a) == digest(b), name


@pytest.mark.parametrize(
    ("layout", "label", "offset", "scheme"),
    [("bare", "disk", 0, "none"), ("gpt", "p1", MiB, "gpt"), ("mbr", "p1", MiB, "mbr")],
)
def test_ls_without_path_lists_partitions_and_file_systems(
    setup: Setup, layout: str, label: str, offset: int, scheme: str
) -> None:
    doc = ls(setup, layout)
    assert doc["scheme"] == scheme
    partitions = doc["partitions"]
    assert isinstance(partitions, list) and len(partitions) == 1
    assert partitions[0]["name"] == label and partitions[0]["offset"] == offset
    assert partitions[0]["filesystem"] == "ext4" and partitions[0]["size"] == 64 * MiB
    text = run("files", "ls", setup.points[layout], "--repo", str(setup.repo)).stdout
    assert label in text and "ext4" in text


@pytest.mark.parametrize("path", ["/home/user", "p1:/home/user", "p1:home/user/"])
def test_ls_folder_lists_entries_with_type_size_mtime_and_mode(setup: Setup, path: str) -> None:
    doc = ls(setup, "gpt", path)
    entries = {e["name"]: e for e in doc["entries"]}
    folder = setup.tree / "home/user"
    assert sorted(entries) == sorted(os.listdir(folder))
    for name, entry in entries.items():
        st = os.lstat(folder / name)
        assert entry["mtime_ns"] == st.st_mtime_ns and entry["mode"] == st.st_mode, name
        if entry["type"] == "file":
            assert entry["size"] == st.st_size
    assert entries["data"]["type"] == "dir" and entries["empty"]["size"] == 0
    assert entries["hostname-link"]["type"] == "symlink"
    assert entries["hostname-link"]["target"] == "../../etc/hostname"
    text = run("files", "ls", setup.points["gpt"], path, "--repo", str(setup.repo)).stdout
    assert "notes.txt" in text and "hostname-link -> ../../etc/hostname" in text and "data/" in text


@pytest.mark.parametrize("layout", ["bare", "gpt", "mbr"])
def test_get_folder_recreates_the_tree(setup: Setup, layout: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    doc = json.loads(
        run(
            "files", "get", setup.points[layout], "/home", "--out", str(out), "--repo", str(setup.repo), "--json"
        ).stdout
    )
    assert doc["files"] == 4 and doc["symlinks"] == 1 and doc["path"] == str(out / "home")
    assert_same_tree(setup.tree / "home", out / "home")
    assert os.listdir(out) == ["home"]  # no temporary names left


def test_get_whole_partition_and_a_big_file(setup: Setup, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run("files", "get", setup.points["gpt"], "p1:/", "--out", str(out), "--repo", str(setup.repo))
    assert_same_tree(setup.tree, out / "p1", extra="lost+found")

    run("files", "get", setup.points["gpt"], "/var/big.bin", "--out", str(out), "--repo", str(setup.repo))
    assert digest(out / "big.bin") == digest(setup.tree / "var/big.bin")
    assert os.stat(out / "big.bin").st_mtime_ns == os.stat(setup.tree / "var/big.bin").st_mtime_ns


def test_existing_files_are_kept_unless_overwrite(setup: Setup, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "hostname").write_bytes(b"mine\n")
    args = ("files", "get", setup.points["bare"], "/etc/hostname", "--out", str(out), "--repo", str(setup.repo))
    proc = run(*args, check=False)
    assert proc.returncode == 2 and "exists" in proc.stderr and "--overwrite" in proc.stderr
    assert (out / "hostname").read_bytes() == b"mine\n"
    run(*args, "--overwrite")
    assert (out / "hostname").read_bytes() == b"web-01\n"
    assert sorted(os.listdir(out)) == ["hostname"]


def test_reading_a_20_mib_file_fetches_about_its_own_blocks(setup: Setup) -> None:
    repo = Repository.open(DirectoryStore(setup.repo), PASSWORD, SystemClock())
    reader = ImagePointReader(repo, repo.load_point(setup.points["gpt"]))
    disk = Disk(reader)
    volume, path = disk.resolve("/var/big.bin")
    fs = disk.filesystem(volume)
    entry = fs.lookup(path)
    data = fs.open(entry).read()
    assert hashlib.sha256(data).digest() == hashlib.sha256((setup.tree / "var/big.bin").read_bytes()).digest()
    file_blocks = -(-entry.size // reader.block_size)
    # everything: partition table, superblock, inodes, folders, the file's data and the span map
    assert reader.blocks_fetched <= 2 * file_blocks, (reader.blocks_fetched, file_blocks)
    print(f"blocks fetched {reader.blocks_fetched} in {reader.requests} requests for a file of {file_blocks} blocks")


def test_unknown_path_is_a_usage_error_naming_it(setup: Setup, tmp_path: Path) -> None:
    proc = run("files", "ls", setup.points["gpt"], "p1:/etc/nope", "--repo", str(setup.repo), check=False)
    assert proc.returncode == 2 and "/etc/nope" in proc.stderr
    proc = run(
        "files",
        "get",
        setup.points["gpt"],
        "/home/nope",
        "--out",
        str(tmp_path),
        "--repo",
        str(setup.repo),
        check=False,
    )
    assert proc.returncode == 2 and "/home/nope" in proc.stderr and os.listdir(tmp_path) == []
    proc = run("files", "ls", setup.points["gpt"], "p3:/", "--repo", str(setup.repo), check=False)
    assert proc.returncode == 2 and "no partition 3" in proc.stderr


def test_unsupported_file_system_says_what_it_found(setup: Setup) -> None:
    doc = ls(setup, "xfs")
    assert doc["partitions"][0]["found"] == "XFS" and doc["partitions"][0]["filesystem"] is None
    proc = run("files", "ls", setup.points["xfs"], "/", "--repo", str(setup.repo), check=False)
    assert proc.returncode == 8 and "XFS" in proc.stderr and "ext2/3/4 and NTFS" in proc.stderr


def test_damaged_block_fails_with_exit_6_and_writes_nothing(setup: Setup, tmp_path: Path) -> None:
    damaged = tmp_path / "repo"
    shutil.copytree(setup.repo, damaged)
    repo = Repository.open(DirectoryStore(damaged), PASSWORD, SystemClock())
    point = repo.load_point(setup.points["gpt"])
    reader = ImagePointReader(repo, point)
    disk = Disk(reader)
    fs = disk.filesystem(disk.volume(1))
    node = fs.lookup("/var/big.bin").handle
    first_fs_block = next(start for start, _ in node.dataruns() if start)
    image_block = (MiB + first_fs_block * 4096 + 8 * MiB) // reader.block_size  # a block in the file's middle
    block_id = reader._span_map(0)[image_block]  # type: ignore[index]
    location = repo.load_index().get(block_id)
    assert location is not None
    pack = next(damaged.rglob(location.pack_id))
    with pack.open("r+b") as f:
        f.seek(location.entry.offset + location.entry.length // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))

    out = tmp_path / "out"
    proc = run("files", "get", point.point_id, "/var", "--out", str(out), "--repo", str(damaged), check=False)
    assert proc.returncode == 6 and "damaged" in proc.stderr
    assert os.listdir(out) == []  # no half-written folder, no temporary name left
    run("files", "get", point.point_id, "/etc", "--out", str(out), "--repo", str(damaged))  # the rest reads


class _HostileFs:
    """A file system whose folder holds a name that would climb out of the output folder."""

    kind = "hostile"

    def lookup(self, path: str) -> Entry:
        return Entry("top", "/top", "dir", 0, 0, 0o40755)

    def children(self, entry: Entry) -> list[Entry]:
        return [Entry("ok.txt", "/top/ok.txt", "file", 0, 0, 0o100644), Entry("..", "/top/..", "dir", 0, 0, 0o40755)]

    def open(self, entry: Entry) -> io.BytesIO:
        return io.BytesIO()


def test_names_that_would_escape_the_output_folder_are_refused(tmp_path: Path) -> None:
    fs = _HostileFs()
    out = tmp_path / "out"
    with pytest.raises(SourceError, match="not a plain file name"):
        extract(fs, fs.lookup("/top"), out)
    assert os.listdir(out) == [] and sorted(os.listdir(tmp_path)) == ["out"]
    with pytest.raises(SourceError):
        extract(fs, fs.lookup("/top"), out, name="../x")
