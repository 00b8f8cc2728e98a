"""Real ext4 file systems (mkfs.ext4 -d) survive full and incremental backups byte for byte."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.core.ranges import ChangeSet
from shared.engine.backup import backup_image
from shared.engine.restore import restore_image
from shared.repo.repository import Repository
from shared.sources.image_file import ImageFileSource
from tests.support.images import build_tree, diff_ranges

MKFS = shutil.which("mkfs.ext4") or "/usr/sbin/mkfs.ext4"
DEBUGFS = shutil.which("debugfs") or "/usr/sbin/debugfs"

pytestmark = pytest.mark.skipif(
    not Path(MKFS).exists() or not Path(DEBUGFS).exists(),
    reason="e2fsprogs (mkfs.ext4, debugfs) is not installed; apt-get install e2fsprogs",
)


def debugfs(image: Path, request: str, *, write: bool = False) -> bytes:
    args = [DEBUGFS, *(["-w"] if write else []), "-R", request, str(image)]
    return subprocess.run(args, check=True, capture_output=True).stdout


def test_ext4_image_full_and_incremental(repo: Repository, tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree")
    image = tmp_path / "disk.img"
    subprocess.run([MKFS, "-q", "-F", "-d", str(tree), str(image), "64M"], check=True)
    snapshot_1 = tmp_path / "snap1.img"
    shutil.copyfile(image, snapshot_1)
    with ImageFileSource(image) as source:
        full = backup_image(repo, source)

    # the "guest" changes files: a new file and a rewritten log
    new_file = tmp_path / "report.bin"
    new_file.write_bytes(bytes(range(256)) * 4096)
    debugfs(image, f"write {new_file} /home/user/report.bin", write=True)
    debugfs(image, "rm /var/log/app.log", write=True)
    changes = ChangeSet.from_json(diff_ranges(snapshot_1, image), image.stat().st_size)
    with ImageFileSource(image) as source:
        incr = backup_image(repo, source, parent=full.point, changes=changes)
    assert incr.bytes_read < full.bytes_read / 2

    out_full, out_incr = tmp_path / "full.img", tmp_path / "incr.img"
    restore_image(repo, full.point, out_full)
    restore_image(repo, incr.point, out_incr)
    assert filecmp.cmp(snapshot_1, out_full, shallow=False)
    assert filecmp.cmp(image, out_incr, shallow=False)
    assert debugfs(out_incr, "cat /home/user/report.bin") == new_file.read_bytes()
    assert debugfs(out_full, "cat /var/log/app.log") == (tree / "var/log/app.log").read_bytes()
    assert debugfs(out_incr, "cat /home/user/data/blob.bin") == (tree / "home/user/data/blob.bin").read_bytes()
    assert full.blocks_read < 32  # only the allocated part of the 64 MiB image was read
