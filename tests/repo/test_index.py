"""The in-memory index answers as a plain dict of first-written locations would: across many merges
of its packed table, for ids at the edges of the id space and sharing prefixes, and while another
thread looks up; anything that is not a 32-byte id is simply absent."""

from __future__ import annotations

import random
import threading

import pytest

import shared.repo.index as index_module
from shared.repo.index import Index, Location
from shared.repo.pack import PackEntry


def _entry(rng: random.Random, block_id: bytes | None = None) -> PackEntry:
    return PackEntry(
        block_id or rng.randbytes(32),
        rng.randrange(1, 4),
        rng.randrange(0, 2),
        rng.randrange(0, 1 << 32),
        rng.randrange(0, 1 << 32),
        rng.randrange(0, 1 << 32),
    )


@pytest.mark.parametrize("merge_at", [1 << 14, 16, 1])
def test_lookups_match_a_dict_of_first_written_locations(merge_at: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "_MERGE_MIN", merge_at)  # 16 and 1: hundreds of merges
    rng = random.Random(5)
    index, model = Index(), dict[bytes, Location]()
    edges = [bytes(32), b"\xff" * 32, b"\x00\x01" + bytes(30), b"\xff\xfe" + b"\xff" * 30]
    same_prefix = [b"\xab\xcd" + rng.randbytes(30) for _ in range(300)]
    written: list[bytes] = []
    for _ in range(120):
        pack_id = rng.randbytes(16).hex()
        entries = [_entry(rng) for _ in range(rng.randrange(1, 40))]
        entries += [_entry(rng, same_prefix.pop()) for _ in range(min(3, len(same_prefix)))]
        if edges:
            entries.append(_entry(rng, edges.pop()))
        if written:  # copies of blocks stored before: the first location must win
            entries += [_entry(rng, rng.choice(written)) for _ in range(3)]
        index.add_pack(pack_id, entries)
        for entry in entries:
            model.setdefault(entry.block_id, Location(pack_id, entry))
            written.append(entry.block_id)
    assert len(index) == len(model) > 2000
    for block_id, location in model.items():
        assert block_id in index
        assert index.get(block_id) == location
    for _ in range(500):
        absent = rng.randbytes(32)
        assert absent not in index and index.get(absent) is None
    assert b"short" not in index and "text" not in index and index.get(b"short") is None
    assert {location.pack_id for location in model.values()} <= index.pack_ids()


def test_a_reader_thread_finds_every_block_added_before_while_the_table_is_rebuilt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_module, "_MERGE_MIN", 50)
    rng = random.Random(9)
    index = Index()
    first = [_entry(rng) for _ in range(300)]
    index.add_pack("00" * 16, first)
    misses: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            misses.extend(entry.block_id for entry in first if index.get(entry.block_id) is None)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for pack in range(300):  # a merge every other pack swaps the table under the reader
            index.add_pack(f"{pack + 1:032x}", [_entry(rng) for _ in range(30)])
    finally:
        stop.set()
        reader.join()
    assert misses == []
    assert len(index) == 300 + 300 * 30
