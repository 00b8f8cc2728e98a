"""The `bulwark` command end to end, as a user runs it: real processes, a real repository."""

from __future__ import annotations

import argparse
import filecmp
import importlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from shared.cli.main import FAMILIES, OWNERS
from shared.storage.location import open_store
from shared.storage.port import BlobStore
from tests.support.images import MiB, compressible, make_image, write_at

BULWARK = str(Path(sys.executable).with_name("bulwark"))
PASSWORD = "cli test passphrase"


def run(*args: str, password: str | None = PASSWORD, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    if password is not None:
        env["BULWARK_PASSWORD"] = password
    proc = subprocess.run([BULWARK, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"bulwark {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def backup(repo: Path | str, image: Path, *extra: str) -> dict[str, object]:
    doc = json.loads(run("backup-image", str(image), "--repo", str(repo), "--json", *extra).stdout)
    assert isinstance(doc, dict)
    return doc


def tree_snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A directory repository (tests that look at or damage the stored files use this one)."""
    path = tmp_path / "repo"
    run("repo", "init", "--repo", str(path))
    return path


@pytest.fixture(params=["directory", pytest.param("azurite", marks=pytest.mark.azurite)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests against both backends: a directory and an Azure blob container (Azurite)."""
    if request.param == "directory":
        where = str(tmp_path / "repo")
    else:
        azurite = request.getfixturevalue("azurite")
        where = f"{azurite.blob_endpoint}/repo-{uuid.uuid4().hex[:12]}/prefix"
    run("repo", "init", "--repo", where)
    return where


def test_round_trip_with_points_and_verify(location: str, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 16 * MiB)
    full = backup(location, image, "--tag", "policy=gold")
    write_at(image, 4 * MiB, b"\x42" * 8192)
    ranges = tmp_path / "ranges.json"
    ranges.write_text(json.dumps({"changed": [[4 * MiB, 8192]], "cleared": []}))
    incr = backup(location, image, "--parent", str(full["point"]), "--changed-ranges", str(ranges))
    assert incr["bytes_read"] == MiB and incr["parent"] == full["point"]

    points = json.loads(run("points", "--repo", location, "--json").stdout)
    assert [p["point"] for p in points] == [full["point"], incr["point"]]
    assert points[0]["tags"] == {"policy": "gold"}

    out = tmp_path / "out.img"
    run("restore-image", str(incr["point"])[:8], str(out), "--repo", location)
    assert filecmp.cmp(image, out, shallow=False)
    assert "verify ok" in run("verify", "--repo", location, "--read-data").stderr


def test_wrong_passphrase_is_one_clear_line_and_writes_nothing(repo: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 4 * MiB)
    before = tree_snapshot(repo)
    proc = run("backup-image", str(image), "--repo", str(repo), password="not the passphrase", check=False)
    assert proc.returncode == 7
    assert proc.stderr.strip().count("\n") == 0
    assert "passphrase does not open the repository" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert tree_snapshot(repo) == before


def test_missing_passphrase_and_bad_input_are_usage_errors(repo: Path, tmp_path: Path) -> None:
    proc = run("points", "--repo", str(repo), password=None, check=False)
    assert proc.returncode == 2 and "no passphrase given" in proc.stderr
    proc = run("points", "--repo", str(tmp_path / "nowhere"), check=False)
    assert proc.returncode == 5 and "no Bulwark repository" in proc.stderr and "bulwark repo init" in proc.stderr
    proc = run("backup-image", str(tmp_path / "missing.img"), "--repo", str(repo), check=False)
    assert proc.returncode == 8 and "does not exist" in proc.stderr
    proc = run("forget", "--repo", str(repo), check=False)
    assert proc.returncode == 2 and "no keep rule" in proc.stderr
    proc = run("repo", "init", "--repo", str(repo), check=False)
    assert proc.returncode == 5 and "already exists" in proc.stderr


def test_no_plaintext_reaches_the_repository(repo: Path, tmp_path: Path) -> None:
    marker = b"BULWARK-PLAINTEXT-MARKER-7f3a"
    image = tmp_path / "secret-name.img"
    rng = random.Random(5)
    with image.open("wb") as f:
        f.truncate(8 * MiB)
        f.write((marker + b" customer record ") * 40000)  # compressible
        f.seek(4 * MiB)
        f.write(rng.randbytes(100_000) + marker + rng.randbytes(100_000))  # incompressible around it
    backup(repo, image, "--tag", "owner=marker-tag-value")
    for blob in repo.rglob("*"):
        if blob.is_file():
            data = blob.read_bytes()
            assert marker not in data, blob
            assert b"secret-name" not in data and b"marker-tag-value" not in data, blob


def test_forget_and_prune(location: str, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.img", 8 * MiB)
    first = backup(location, image)
    write_at(image, 0, os.urandom(MiB))
    second = backup(location, image)
    forget = json.loads(run("forget", "--repo", location, "--keep-last", "1", "--json").stdout)
    assert forget["remove"] == [first["point"]] and forget["keep"] == [second["point"]]
    assert forget["reasons"][second["point"]] == ["last"]
    prune = json.loads(run("prune", "--repo", location, "--json").stdout)
    # the only pack of the first backup still holds blocks the second one shares, so it stays
    assert prune["packs_deleted"] == 0 and prune["packs_garbage"] == 0
    out = tmp_path / "out.img"
    run("restore-image", "latest", str(out), "--repo", location)
    assert filecmp.cmp(image, out, shallow=False)


def test_prune_deletes_data_of_forgotten_points(repo: Path, tmp_path: Path) -> None:
    one = backup(repo, make_image(tmp_path / "one.img", 8 * MiB, seed=1))
    backup(repo, make_image(tmp_path / "two.img", 8 * MiB, seed=2))
    run("forget", "--repo", str(repo), "--keep-last", "1")  # per source: both stay
    assert len(json.loads(run("points", "--repo", str(repo), "--json").stdout)) == 2
    (repo / "points" / str(one["point"])).unlink()
    prune = json.loads(run("prune", "--repo", str(repo), "--json").stdout)
    assert prune["packs_deleted"] == 1 and prune["bytes_freed"] > 0
    assert "verify ok" in run("verify", "--repo", str(repo), "--read-data").stderr


def _wait_for_session_marker(store: BlobStore, proc: subprocess.Popen[bytes], known: set[str]) -> bool:
    """Poll until the backup has written a marker not in `known`; False if it ended first."""
    while proc.poll() is None:
        if any(info.key not in known for info in store.list("sessions/")):
            return True
        time.sleep(0.002)
    return False


def test_backup_killed_at_random_moments_leaves_a_valid_repository(location: str, tmp_path: Path) -> None:
    rng = random.Random(11)
    image = tmp_path / "big.img"
    with image.open("wb") as f:  # 96 MiB of mixed data: long enough to be killed mid-run
        for n in range(96):
            f.write(rng.randbytes(MiB) if n % 2 else compressible(rng, MiB))
    good = backup(location, make_image(tmp_path / "small.img", 4 * MiB))
    env = dict(os.environ, BULWARK_PASSWORD=PASSWORD)
    store = open_store(location, env)
    killed_mid_run = 0
    for _ in range(4):
        known = {info.key for info in store.list("sessions/")}
        proc = subprocess.Popen(
            [BULWARK, "backup-image", str(image), "--repo", location],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Kill only once the run has begun writing, at a random point early in its work, so
        # every kill hits a live session whatever the speed of the machine.
        started = _wait_for_session_marker(store, proc, known)
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        killed_mid_run += started and proc.wait() == -signal.SIGKILL
        assert "verify ok" in run("verify", "--repo", location, "--read-data").stderr
    assert killed_mid_run >= 1
    completed = backup(location, image)
    out = tmp_path / "out.img"
    run("restore-image", str(completed["point"]), str(out), "--repo", location)
    assert filecmp.cmp(image, out, shallow=False)
    prune = json.loads(run("prune", "--repo", location, "--json").stdout)
    assert prune["dead_sessions_removed"] == killed_mid_run and prune["deferred"] == ""
    assert json.loads(run("prune", "--repo", location, "--json").stdout)["live_sessions"] == []
    verify = json.loads(run("verify", "--repo", location, "--read-data", "--json").stdout)
    assert verify["ok"] and verify["unreferenced_packs"] == 0
    run("restore-image", str(good["point"]), str(tmp_path / "small-out.img"), "--repo", location)
    assert filecmp.cmp(tmp_path / "small.img", tmp_path / "small-out.img", shallow=False)


def test_two_backups_at_once_both_succeed(location: str, tmp_path: Path) -> None:
    images = [make_image(tmp_path / f"d{n}.img", 48 * MiB, seed=n) for n in range(2)]
    env = dict(os.environ, BULWARK_PASSWORD=PASSWORD)
    procs = [
        subprocess.Popen(
            [BULWARK, "backup-image", str(img), "--repo", location, "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for img in images
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        results.append(json.loads(stdout))
    for img, result in zip(images, results, strict=True):
        out = img.with_suffix(".out")
        run("restore-image", result["point"], str(out), "--repo", location)
        assert filecmp.cmp(img, out, shallow=False)
    assert "verify ok" in run("verify", "--repo", location, "--read-data").stderr


# -- damage ------------------------------------------------------------------------------------


@pytest.fixture
def two_points(repo: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    image = make_image(tmp_path / "disk.img", 12 * MiB)
    first = backup(repo, image)
    write_at(image, 0, os.urandom(2 * MiB))
    second = backup(repo, image)
    return repo, [str(first["point"]), str(second["point"])]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def only(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def assert_damage_reported(repo: Path, name: str, affected: set[str]) -> None:
    proc = run("verify", "--repo", str(repo), "--read-data", "--json", check=False)
    assert proc.returncode == 6, proc.stderr
    report = json.loads(proc.stdout)
    named = {p["object"]: set(p["points"]) for p in report["problems"]}
    assert name in named, report
    assert set[str]().union(*named.values()) == affected, report


def test_flipped_byte_in_a_pack_is_named_with_the_points_it_breaks(
    two_points: tuple[Path, list[str]], tmp_path: Path
) -> None:
    repo, points = two_points
    pack = only(repo / "packs")[0]
    flip(pack, 100)  # inside the first sealed block
    name = str(pack.relative_to(repo))
    assert_damage_reported(repo, name, failing_points(repo, points, tmp_path))


def failing_points(repo: Path, points: list[str], tmp_path: Path) -> set[str]:
    """Points that fail to restore (loudly, leaving no file) are exactly the ones verify must name."""
    failing = set()
    for point in points:
        out = tmp_path / f"probe-{point}.img"
        proc = run("restore-image", point, str(out), "--repo", str(repo), check=False)
        if proc.returncode != 0:
            assert (proc.returncode == 6 and "damaged" in proc.stderr) or "truncated" in proc.stderr, proc.stderr
            assert not out.exists()
            failing.add(point)
    assert failing, "the damage should break at least one point"
    return failing


def test_truncated_pack(two_points: tuple[Path, list[str]], tmp_path: Path) -> None:
    repo, points = two_points
    pack = only(repo / "packs")[0]
    pack.write_bytes(pack.read_bytes()[:-1000])
    assert_damage_reported(repo, str(pack.relative_to(repo)), failing_points(repo, points, tmp_path))


def test_flipped_byte_in_an_index(two_points: tuple[Path, list[str]], tmp_path: Path) -> None:
    repo, points = two_points
    for index in only(repo / "index"):
        flip(index, 30)
    # Packs describe themselves: with every index damaged, no point is lost ...
    assert_damage_reported(repo, str(index.relative_to(repo)), set())
    for point in points:
        run("restore-image", point, str(tmp_path / f"{point}.img"), "--repo", str(repo))
    run("restore-image", points[1], str(tmp_path / "again.img"), "--repo", str(repo))
    # ... and prune rewrites the index from the packs' trailers
    run("prune", "--repo", str(repo))
    assert "verify ok" in run("verify", "--repo", str(repo), "--read-data").stderr


def test_flipped_byte_in_a_manifest(two_points: tuple[Path, list[str]], tmp_path: Path) -> None:
    repo, points = two_points
    manifest = repo / "points" / points[1]
    flip(manifest, len(manifest.read_bytes()) // 2)
    assert_damage_reported(repo, f"points/{points[1]}", {points[1]})
    out = tmp_path / "out.img"
    proc = run("restore-image", points[1], str(out), "--repo", str(repo), check=False)
    assert proc.returncode == 6 and f"restore point {points[1]} is damaged" in proc.stderr
    assert not out.exists()
    proc = run("prune", "--repo", str(repo), check=False)
    assert proc.returncode == 6 and "refusing to prune" in proc.stderr


def test_help_teaches(tmp_path: Path) -> None:
    out = run("backup-image", "--help", password=None).stdout
    assert "--changed-ranges" in out and "examples:" in out and '"cleared"' in out
    top = run("--help", password=None).stdout
    assert "exit codes:" in top and "BULWARK_PASSWORD" in top
    proc = run("backup-image", "--workers", "0", "x.img", password=None, check=False)
    assert proc.returncode == 2 and "must be a whole number from 1 to 64" in proc.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_prune_while_a_backup_runs_loses_nothing(repo: Path, tmp_path: Path) -> None:
    rng = random.Random(12)
    old = backup(repo, make_image(tmp_path / "old.img", 8 * MiB, seed=4))
    (repo / "points" / str(old["point"])).unlink()  # its packs are garbage now
    image = tmp_path / "busy.img"
    with image.open("wb") as f:
        for n in range(128):
            f.write(rng.randbytes(MiB) if n % 2 else compressible(rng, MiB))
    env = dict(os.environ, BULWARK_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [BULWARK, "backup-image", str(image), "--repo", str(repo), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while proc.poll() is None and not list((repo / "sessions").glob("[!.]*")):
        time.sleep(0.01)  # prune from the moment the backup has announced itself
    prunes = 0
    while proc.poll() is None:
        run("prune", "--repo", str(repo), "--json")
        prunes += 1
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert prunes >= 1
    point = json.loads(stdout)["point"]
    out = tmp_path / "out.img"
    run("restore-image", point, str(out), "--repo", str(repo))
    assert filecmp.cmp(image, out, shallow=False)
    final = json.loads(run("prune", "--repo", str(repo), "--json").stdout)
    assert final["deferred"] == ""
    assert "verify ok" in run("verify", "--repo", str(repo), "--read-data").stderr


def test_each_command_loads_only_the_families_that_define_it() -> None:
    defined: dict[str, list[str]] = {}
    for family in FAMILIES:
        parser = argparse.ArgumentParser()
        commands = parser.add_subparsers()
        importlib.import_module(f"shared.cli.{family}").register(commands)
        for name in commands.choices:
            defined.setdefault(name, []).append(family)
    assert {name: tuple(families) for name, families in defined.items()} == OWNERS
    probe = "import sys, shared.cli.main as m; m.build_parser('backup-image'); print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "shared.cli.image_commands" in loaded
    assert "shared.cli.catalog_commands" not in loaded and "shared.cli.report_commands" not in loaded
