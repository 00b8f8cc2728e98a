"""The repository-maintenance job on a directory repository: forget a policy's points, refuse another
policy's, finish a half-done run, prune what only the forgotten points used; and its spec."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.core.clock import SystemClock
from shared.core.errors import ConfigError
from shared.engine.backup import backup_image
from shared.engine.restore import restore_image
from shared.repo.point import Point
from shared.services.job_spec import ArmRef, RepositoryRef, SecretRef, StatusRef
from shared.services.job_status import InMemoryJobStatusStore
from shared.services.repo_maintenance import MaintenanceSpec, RepositoryMaintenanceJob, is_maintenance_spec
from shared.sources.image_file import ImageFileSource
from shared.worker.adapters import SecretResolvers, StoreRepositoryOpener

from .estate import MIB, make_repository, open_repository


def backed_up(repository: str, image: Path, data: bytes, policy: str) -> Point:
    with open(image, "r+b") as handle:
        handle.write(data)
    with ImageFileSource(image) as source:
        return backup_image(open_repository(repository), source, tags={"policy": policy}).point


def spec_for(repository: str, secret: Path, forget: tuple[str, ...]) -> MaintenanceSpec:
    return MaintenanceSpec(
        job_id="maint-test",
        repository=RepositoryRef(repository, SecretRef("file", path=str(secret))),
        arm=ArmRef("stack-file", path="/unused/stack.json"),
        status=StatusRef(endpoint="http://127.0.0.1:1/devstoreaccount1", table="bulwarkjobs"),
        policy_id="web",
        forget=forget,
    )


def test_forgets_the_policys_points_refuses_others_and_prunes(tmp_path: Path) -> None:
    repository, secret = make_repository(tmp_path)
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    os.truncate(image, 8 * MIB)
    old = backed_up(repository, image, os.urandom(2 * MIB), "web")
    foreign = backed_up(repository, image, os.urandom(2 * MIB), "db")
    kept = backed_up(repository, image, os.urandom(2 * MIB), "web")
    status = InMemoryJobStatusStore()
    job = RepositoryMaintenanceJob(
        secrets=SecretResolvers(),
        repositories=StoreRepositoryOpener({}, SystemClock()),
        status=status,
        clock=SystemClock(),
    )

    result = job.run(spec_for(repository, secret, (old.point_id, foreign.point_id, "00000000deadbeef")))

    assert result["forgotten"] == [old.point_id, "00000000deadbeef"]  # one already gone counts as forgotten
    assert result["refused"] == [foreign.point_id]
    assert result["packs_deleted"] >= 1 and result["bytes_freed"] > 0
    record = status.get("maint-test")
    assert record is not None and record.state == "succeeded" and record.started
    repo = open_repository(repository)
    assert {p.point_id for p in repo.list_points()} == {foreign.point_id, kept.point_id}
    restored = tmp_path / "restored.img"
    restore_image(repo, repo.load_point(kept.point_id), restored)
    assert restored.read_bytes() == image.read_bytes()


def test_the_spec_holds_references_and_point_ids_only(tmp_path: Path) -> None:
    spec = spec_for("/srv/repo", tmp_path / "secret", ("0123456789abcdef",))
    text = spec.to_json()
    assert is_maintenance_spec(text) and not is_maintenance_spec('{"kind": "image-backup"}')
    assert MaintenanceSpec.from_json(text) == spec
    with pytest.raises(ConfigError, match="not a repository point id"):
        spec_for("/srv/repo", tmp_path / "secret", ("../../config",))
    with pytest.raises(ConfigError, match="'arm' must be an object"):
        MaintenanceSpec.from_dict({**spec.to_dict(), "arm": "x"})
