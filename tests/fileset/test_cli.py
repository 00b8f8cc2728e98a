"""`bulwark backup-bacpac` and `bulwark restore-bacpac` as a user runs them: real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.core.clock import SystemClock
from shared.repo import walk
from shared.repo.pack import pack_key
from shared.repo.repository import Repository
from shared.storage.directory import DirectoryStore
from tests.fileset.bacpacs import fixture_path, members_of, write_bacpac
from tests.support.images import MiB, make_image

BULWARK = str(Path(sys.executable).with_name("bulwark"))
PASSWORD = "cli fileset passphrase"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    env["BULWARK_PASSWORD"] = PASSWORD
    proc = subprocess.run([BULWARK, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"bulwark {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    run("repo", "init", "--repo", str(path))
    return path


def backup_bacpac(repo: Path, bacpac: Path, *extra: str) -> dict[str, object]:
    doc = json.loads(run("backup-bacpac", str(bacpac), "--repo", str(repo), "--json", *extra).stdout)
    assert isinstance(doc, dict)
    return doc


def test_backup_restore_verify(repo: Path, tmp_path: Path) -> None:
    source = fixture_path()
    doc = backup_bacpac(repo, source, "--tag", "policy=gold", "--source", "sql/adventureworks")
    point = str(doc["point"])
    assert doc["members"] == 16 and doc["total_rows"] == 4277
    assert {"schema": "SalesLT", "name": "Product", "data_members": 1, "data_bytes": 712699, "rows": None} in doc[
        "tables"
    ]  # type: ignore[operator]

    points = json.loads(run("points", "--repo", str(repo), "--json").stdout)
    assert [(p["point"], p["kind"], p["source"], p["tags"]) for p in points] == [
        (point, "bacpac", "sql/adventureworks", {"policy": "gold"})
    ]
    out = tmp_path / "restored.bacpac"
    proc = run("restore-bacpac", point[:8], str(out), "--repo", str(repo))
    assert "restored point" in proc.stderr
    assert members_of(out) == members_of(source)
    again = backup_bacpac(repo, source)
    assert again["bytes_new"] == 0 and again["chunks_dedup"] == 16
    run("restore-bacpac", "latest", str(tmp_path / "latest.bacpac"), "--repo", str(repo))
    assert members_of(tmp_path / "latest.bacpac") == members_of(source)
    assert "verify ok" in run("verify", "--repo", str(repo), "--read-data").stderr


def test_damaged_chunk_exits_6_and_writes_nothing(repo: Path, tmp_path: Path) -> None:
    point_id = str(backup_bacpac(repo, fixture_path())["point"])
    repository = Repository.open(DirectoryStore(repo), PASSWORD, SystemClock())
    point = repository.load_point(point_id)
    index = repository.load_index()
    member = walk.files_of(point).members[0]
    chunk_id, _ = next(walk.member_chunks(repository, index, point, member))
    location = index.get(chunk_id)
    assert location is not None
    pack = repo / pack_key(location.pack_id)
    data = bytearray(pack.read_bytes())
    data[location.entry.offset + 30] ^= 0x01
    pack.write_bytes(bytes(data))

    out = tmp_path / "out" / "restored.bacpac"
    out.parent.mkdir()
    proc = run("restore-bacpac", point_id, str(out), "--repo", str(repo), check=False)
    assert proc.returncode == 6, proc.stderr
    assert f"block {chunk_id.hex()[:16]}" in proc.stderr and "damaged" in proc.stderr
    assert list(out.parent.iterdir()) == []  # neither the file nor a temporary
    proc = run("verify", "--repo", str(repo), "--read-data", check=False)
    assert proc.returncode == 6 and point_id in proc.stderr


def test_bad_inputs_are_one_clear_line(repo: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    proc = run("backup-bacpac", str(text), "--repo", str(repo), check=False)
    assert proc.returncode == 8
    assert proc.stderr.strip().count("\n") == 0 and "is not a BACPAC: it is not a zip archive" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""

    damaged = write_bacpac(tmp_path / "d.bacpac", [], model=b"<DataSchemaModel/>")
    data = damaged.read_bytes().replace(b"<DataSchemaModel/>", b"<DataSchemaModel!>")
    damaged.write_bytes(data)
    proc = run("backup-bacpac", str(damaged), "--repo", str(repo), check=False)
    assert proc.returncode == 8 and "is damaged" in proc.stderr and proc.stderr.strip().count("\n") == 0

    image = make_image(tmp_path / "disk.img", 2 * MiB)
    image_point = json.loads(run("backup-image", str(image), "--repo", str(repo), "--json").stdout)["point"]
    proc = run("restore-bacpac", image_point, str(tmp_path / "x.bacpac"), "--repo", str(repo), check=False)
    assert proc.returncode == 2 and "not a file set" in proc.stderr
    proc = run("restore-bacpac", "latest", str(tmp_path / "x.bacpac"), "--repo", str(repo), check=False)
    assert proc.returncode == 2 and "no BACPAC points" in proc.stderr
    assert not (tmp_path / "x.bacpac").exists()


def test_prune_after_forget_keeps_the_bacpac_restorable(repo: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 8 * MiB, seed=1)
    run("backup-image", str(image), "--repo", str(repo))
    bacpac_point = str(backup_bacpac(repo, fixture_path())["point"])
    make_image(image, 8 * MiB, seed=2)  # other content: the first image point's packs become garbage
    run("backup-image", str(image), "--repo", str(repo))

    forget = json.loads(run("forget", "--repo", str(repo), "--keep-last", "1", "--json").stdout)
    assert len(forget["remove"]) == 1 and bacpac_point in forget["keep"]
    report = json.loads(run("prune", "--repo", str(repo), "--json").stdout)
    assert report["packs_deleted"] >= 1

    out = tmp_path / "after-prune.bacpac"
    run("restore-bacpac", bacpac_point, str(out), "--repo", str(repo))
    assert members_of(out) == members_of(fixture_path())
    assert "verify ok" in run("verify", "--repo", str(repo), "--read-data").stderr
