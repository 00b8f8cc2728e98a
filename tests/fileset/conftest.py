from __future__ import annotations

from pathlib import Path

import pytest

from shared.core.clock import SystemClock
from shared.core.crypto import ScryptParams
from shared.repo.repository import Repository
from shared.storage.directory import DirectoryStore

PASSPHRASE = "fileset test passphrase"


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    # A small pack target spreads even a small BACPAC over a few packs.
    return Repository.init(
        DirectoryStore(tmp_path / "repo", fsync=False),
        PASSPHRASE,
        SystemClock(),
        scrypt=ScryptParams(n=2**10),
        pack_target=4 << 20,
    )
