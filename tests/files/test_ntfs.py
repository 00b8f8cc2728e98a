"""NTFS through the same commands: a volume made by mkntfs and filled with ntfscp (ntfs-3g),
bare and as partition 1 of a GPT disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.core.clock import SystemClock
from shared.core.crypto import ScryptParams
from shared.engine.backup import backup_image
from shared.repo.repository import Repository
from shared.sources.image_file import ImageFileSource
from shared.storage.directory import DirectoryStore
from tests.files.disks import MiB, make_partitioned
from tests.files.test_files import PASSWORD, run

MKNTFS = shutil.which("mkntfs") or "/usr/sbin/mkntfs"
NTFSCP = shutil.which("ntfscp") or "/usr/sbin/ntfscp"

pytestmark = pytest.mark.skipif(
    not Path(MKNTFS).exists() or not Path(NTFSCP).exists(),
    reason="ntfs-3g (mkntfs, ntfscp) is not installed; apt-get install ntfs-3g",
)


@pytest.fixture(scope="module")
def ntfs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("ntfs")
    files = work / "files"
    files.mkdir()
    (files / "readme.txt").write_bytes("Grüße from NTFS\r\n".encode() * 40)
    (files / "data.bin").write_bytes(os.urandom(3 * MiB + 777))
    (files / "empty.txt").write_bytes(b"")
    volume = work / "ntfs.img"
    with volume.open("wb") as f:
        f.truncate(32 * MiB)
    subprocess.run([MKNTFS, "-F", "-Q", "-q", str(volume)], check=True, capture_output=True)
    for name in ("readme.txt", "data.bin", "empty.txt"):
        subprocess.run([NTFSCP, str(volume), str(files / name), f"/{name}"], check=True, capture_output=True)
    repo_path = work / "repo"
    repo = Repository.init(
        DirectoryStore(repo_path, fsync=False), PASSWORD, SystemClock(), scrypt=ScryptParams(n=2**10)
    )
    points = {}
    for name, image in (("bare", volume), ("gpt", make_partitioned(volume, work / "gpt.img", "gpt"))):
        with ImageFileSource(image) as source:
            points[name] = backup_image(repo, source).point.point_id
    return files, repo_path, points


@pytest.mark.parametrize(("layout", "prefix"), [("bare", ""), ("gpt", "p1:")])
def test_ntfs_ls_and_get(ntfs: tuple[Path, Path, dict[str, str]], layout: str, prefix: str, tmp_path: Path) -> None:
    files, repo, points = ntfs
    point = points[layout]
    partitions = json.loads(run("files", "ls", point, "--repo", str(repo), "--json").stdout)["partitions"]
    assert [p["filesystem"] for p in partitions] == ["ntfs"]

    listing = json.loads(run("files", "ls", point, f"{prefix}/", "--repo", str(repo), "--json").stdout)
    entries = {e["name"]: e for e in listing["entries"]}
    assert sorted(entries) == ["data.bin", "empty.txt", "readme.txt"]  # no $MFT and friends
    assert all(e["type"] == "file" for e in entries.values())
    assert entries["data.bin"]["size"] == 3 * MiB + 777 and entries["empty.txt"]["size"] == 0

    out = tmp_path / "out"
    run("files", "get", point, f"{prefix}/", "--out", str(out), "--repo", str(repo))
    restored = out / ("p1" if prefix else "disk")
    for name, entry in entries.items():
        data = (restored / name).read_bytes()
        assert hashlib.sha256(data).digest() == hashlib.sha256((files / name).read_bytes()).digest(), name
        assert os.stat(restored / name).st_mtime_ns == entry["mtime_ns"], name

    proc = run("files", "get", point, f"{prefix}/missing.txt", "--out", str(out), "--repo", str(repo), check=False)
    assert proc.returncode == 2 and "/missing.txt" in proc.stderr
