"""Browsing an image point over HTTP: the unmodified function app under the local runtime reads a
real ext4 file system inside a GPT disk straight from the repository (no disk is restored).

GET /api/points/{id}/contents lists the disk's partitions and file systems; .../files lists a folder;
.../files/download returns a file whole, or one byte range (206) with Range; bad paths are 400s,
unknown points 404s.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from bulwark_local.stack import Stack

from shared.catalog.model import PointDisk, PointKind
from shared.engine.backup import backup_image
from shared.sources.image_file import ImageFileSource
from tests.app.harness import KEY, call, policy_document, running_app, store_policy
from tests.app.points import BULWARK, record_point
from tests.files.disks import MKFS, make_ext4, make_partitioned
from tests.worker.estate import make_repository, open_repository

POINT = "img-browse-test-web"
GROUP = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/browse"
VM = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web"
CONFIG = b"[server]\nport = 8080\n" * 3000


@dataclass
class Scenario:
    repository: str
    secret: Path
    point_id: str
    answers: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers={"x-functions-key": KEY, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, error.read(), {k.lower(): v for k, v in error.headers.items()}


@pytest.fixture(scope="module")
def scenario(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    if not Path(MKFS).exists():
        pytest.skip("mkfs.ext4 is not installed (e2fsprogs)")
    work = tmp_path_factory.mktemp("browse")
    tree = work / "tree"
    (tree / "etc/app").mkdir(parents=True)
    (tree / "etc/hostname").write_bytes(b"web-01\n")
    (tree / "etc/app/config.toml").write_bytes(CONFIG)
    disk = make_partitioned(make_ext4(tree, work / "fs.img", size_mib=8), work / "disk.img", "gpt")
    repository, secret = make_repository(work)
    with ImageFileSource(disk) as source:
        point_id = backup_image(open_repository(repository), source, workers=2).point.point_id
    store_policy(stack, policy_document(stack, "browse", repository, secret, "browse-policy"))
    os_disk = PointDisk(f"{VM}-os", None, "snap", point_id, disk.stat().st_size)
    record_point(
        stack, POINT, VM, PointKind.IMAGE, policy_id="browse-policy", repository_point_id=point_id, disks=(os_disk,)
    )
    built = Scenario(repository, secret, point_id)
    with running_app(stack, work) as (host, _):
        api = f"{host.base_url}/api/points"
        requests: dict[str, tuple[str, dict[str, str]]] = {
            "contents": (f"{api}/{POINT}/contents", {}),
            "folder": (f"{api}/{POINT}/files?path={quote('p1:/etc')}", {}),
            "file": (f"{api}/{POINT}/files/download?path={quote('p1:/etc/app/config.toml')}", {}),
            "range": (
                f"{api}/{POINT}/files/download?path={quote('p1:/etc/app/config.toml')}",
                {"Range": "bytes=10-29"},
            ),
            "past the end": (f"{api}/{POINT}/files/download?path={quote('p1:/etc/hostname')}", {"Range": "bytes=99-"}),
            "a folder": (f"{api}/{POINT}/files/download?path={quote('p1:/etc')}", {}),
            "no path": (f"{api}/{POINT}/files", {}),
            "no such file": (f"{api}/{POINT}/files?path={quote('p1:/nope')}", {}),
            "unknown point": (f"{api}/img-none/files?path=%2F", {}),
        }
        for label, (url, headers) in requests.items():
            built.answers[label] = _get(url, headers)
        status, raw = call(f"{api}/{POINT}/files?path=/&bogus=1")
        built.answers["bogus parameter"] = (status, raw, {})
    yield built


def _json(answer: tuple[int, bytes, dict[str, str]]) -> Any:
    return json.loads(answer[1])


def test_contents_lists_the_partitions_and_file_systems(scenario: Scenario) -> None:
    status, _, _ = scenario.answers["contents"]
    assert status == 200
    [disk] = _json(scenario.answers["contents"])["disks"]
    assert disk["disk"] == "os" and disk["scheme"] == "gpt"
    [partition] = disk["partitions"]
    assert partition["name"] == "p1" and partition["filesystem"] == "ext4"


def test_a_folder_lists_its_entries(scenario: Scenario) -> None:
    status, _, _ = scenario.answers["folder"]
    assert status == 200
    listing = _json(scenario.answers["folder"])
    entries = {e["name"]: e for e in listing["entries"]}
    assert listing["filesystem"] == "ext4" and listing["path"] == "/etc"
    assert entries["hostname"]["size"] == 7 and entries["app"]["type"] == "dir"


def test_a_file_downloads_whole_or_by_range(scenario: Scenario) -> None:
    status, body, headers = scenario.answers["file"]
    assert status == 200 and body == CONFIG
    assert headers["content-type"] == "application/octet-stream" and headers["accept-ranges"] == "bytes"
    status, body, headers = scenario.answers["range"]
    assert status == 206 and body == CONFIG[10:30]
    assert headers["content-range"] == f"bytes 10-29/{len(CONFIG)}"
    status, _, headers = scenario.answers["past the end"]
    assert status == 416 and headers["content-range"] == "bytes */7"


def test_bad_requests_are_400_and_unknown_points_404(scenario: Scenario) -> None:
    for label, path in (("a folder", "path"), ("no path", "path"), ("bogus parameter", "bogus")):
        status, raw, _ = scenario.answers[label]
        assert status == 400, (label, raw)
        assert json.loads(raw)["error"]["problems"][0]["path"] == path, (label, raw)
    status, raw, _ = scenario.answers["no such file"]
    assert status == 400 and "/nope" in json.loads(raw)["error"]["message"], raw
    assert scenario.answers["unknown point"][0] == 404


def test_restore_files_extracts_from_the_repository_alone(scenario: Scenario, tmp_path: Path) -> None:
    repo = ("--repo", scenario.repository, "--password-file", str(scenario.secret))
    done = subprocess.run(
        [BULWARK, "restore", "files", scenario.point_id, "p1:/etc/app", "--out", str(tmp_path), *repo],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "app" / "config.toml").read_bytes() == CONFIG
    helped = subprocess.run([BULWARK, "restore", "files", "--help"], capture_output=True, text=True, check=True)
    assert "examples:" in helped.stdout and "bulwark restore files" in helped.stdout
    helped = subprocess.run([BULWARK, "restore", "sql", "--help"], capture_output=True, text=True, check=True)
    assert "examples:" in helped.stdout and "--swap-with-original --yes" in helped.stdout
