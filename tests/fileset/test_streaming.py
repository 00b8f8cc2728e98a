"""A large member is streamed: memory stays far below its size on backup and on restore."""

from __future__ import annotations

import hashlib
import tracemalloc
import zipfile
from pathlib import Path

from shared.engine.fileset import backup_fileset, restore_fileset
from shared.repo import walk
from shared.repo.repository import Repository
from shared.sources.bacpac import BacpacFile, BacpacWriter
from tests.fileset.bacpacs import MiB, random_pieces, write_bacpac

MEMBER = 100 * MiB
# Chunker buffer (8 MiB), up to 6 chunks in flight with their sealed copies, and the writer's
# 16 MiB queue: well under half the member.
LIMIT = 48 * MiB


def digest_of(pieces: object) -> str:
    digest = hashlib.sha256()
    for piece in pieces:  # type: ignore[attr-defined]
        digest.update(piece)
    return digest.hexdigest()


def test_a_100_mb_member_is_stored_and_rebuilt_with_bounded_memory(repo: Repository, tmp_path: Path) -> None:
    name = "Data/dbo.Big/TableData-000-00000.BCP"
    path = write_bacpac(tmp_path / "big.bacpac", [(name, random_pieces(MEMBER, seed=7))])

    tracemalloc.start()
    try:
        with BacpacFile(path) as bacpac:
            result = backup_fileset(repo, bacpac, kind="bacpac")
        backup_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        point = repo.load_point(result.point.point_id)
        target = tmp_path / "restored.bacpac"
        with BacpacWriter(target, walk.files_of(point)) as sink:
            restore_fileset(repo, point, sink)
        restore_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert result.bytes_read >= MEMBER and result.chunks >= 50
    assert backup_peak < LIMIT, f"backup peaked at {backup_peak / MiB:.1f} MiB"
    assert restore_peak < LIMIT, f"restore peaked at {restore_peak / MiB:.1f} MiB"
    with zipfile.ZipFile(target) as rebuilt, rebuilt.open(name) as member:
        assert digest_of(iter(lambda: member.read(MiB), b"")) == digest_of(random_pieces(MEMBER, seed=7))
    print(f"peak traced memory: backup {backup_peak / MiB:.1f} MiB, restore {restore_peak / MiB:.1f} MiB")
