"""The deduper claims each block id once, and forgets claims the index has taken over."""

from __future__ import annotations

import os

import pytest

import shared.repo.dedup as dedup_module
from shared.repo.dedup import Deduper
from shared.repo.index import Index
from shared.repo.pack import PackEntry


def test_each_id_is_claimed_once_and_sealed_claims_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup_module, "_SWEEP_EVERY", 4)
    index = Index()
    deduper = Deduper(index)
    ids = [os.urandom(32) for _ in range(12)]
    assert [deduper.claim(block_id) for block_id in ids[:6]] == [True] * 6
    assert not any(deduper.claim(block_id) for block_id in ids[:6])  # claimed already
    index.add_pack("00" * 16, [PackEntry(block_id, 1, 0, 0, 1, 1) for block_id in ids[:5]])  # sealed
    assert [deduper.claim(block_id) for block_id in ids[6:10]] == [True] * 4  # the 4th sweeps
    assert deduper._claimed == set(ids[5:10])  # the sealed five are the index's to answer now
    assert not any(deduper.claim(block_id) for block_id in ids[:10])  # and still not stored twice
