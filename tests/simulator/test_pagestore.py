"""The copy-on-write page store against a naive per-sector model (random writes, clears, snapshots)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bulwark_local.simulator.pagestore import CHUNK_SIZE, SECTOR, PageStore, PageStoreError

SIZE = 2 * CHUNK_SIZE + 8 * SECTOR
SECTORS = SIZE // SECTOR


class Model:
    """Per sector: the generation of the last write or clear (0 = never written) and validity."""

    def __init__(self) -> None:
        self.gen = [0] * SECTORS
        self.valid = [False] * SECTORS
        self.content = bytearray(SIZE)
        self.clock = 0

    def write(self, first: int, end: int, data: bytes) -> None:
        self.clock += 1
        for k in range(first, end):
            self.gen[k], self.valid[k] = self.clock, True
        self.content[first * SECTOR : end * SECTOR] = data

    def clear(self, first: int, end: int) -> None:
        self.clock += 1
        for k in range(first, end):
            if self.gen[k]:  # a never-written page is already clear
                self.gen[k], self.valid[k] = self.clock, False
        self.content[first * SECTOR : end * SECTOR] = bytes((end - first) * SECTOR)

    def ranges(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for k in range(SECTORS):
            if self.valid[k]:
                _extend(out, (k * SECTOR, (k + 1) * SECTOR))
        return out

    def diff(self, old_gen: list[int]) -> list[tuple[int, int, bool]]:
        out: list[tuple[int, int, bool]] = []
        for k in range(SECTORS):
            if old_gen[k] != self.gen[k]:
                item = (k * SECTOR, (k + 1) * SECTOR, not self.valid[k])
                if out and out[-1][1] == item[0] and out[-1][2] == item[2]:
                    out[-1] = (out[-1][0], item[1], item[2])
                else:
                    out.append(item)
        return out


def _extend(out: list[tuple[int, int]], item: tuple[int, int]) -> None:
    if out and out[-1][1] == item[0]:
        out[-1] = (out[-1][0], item[1])
    else:
        out.append(item)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_store_matches_model(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = PageStore(tmp_path)
    store.create("disk", SIZE, lineage="family")
    model = Model()
    snapshots: list[tuple[str, list[int], bytes]] = []
    for step in range(40):
        first = rng.randrange(SECTORS)
        end = min(SECTORS, first + rng.choice([1, 3, 17, 300, 2048, 5000]))
        if rng.random() < 0.3:
            store.clear("disk", first * SECTOR, (end - first) * SECTOR)
            model.clear(first, end)
        else:
            data = rng.randbytes((end - first) * SECTOR)
            store.write("disk", first * SECTOR, data)
            model.write(first, end, data)
        if step % 8 == 7:
            name = f"snap{step}"
            store.clone("disk", name)
            snapshots.append((name, list(model.gen), bytes(model.content)))

    assert store.ranges("disk") == model.ranges()
    assert store.read("disk", 0, SIZE) == bytes(model.content)
    window = (CHUNK_SIZE - 4096, 12_288)
    for name, generations, content in snapshots:
        assert store.read(name, 0, SIZE) == content  # later writes never reach a snapshot
        expected = model.diff(generations)
        assert store.diff("disk", name) == expected
        clipped = [
            (max(a, window[0]), min(b, sum(window)), cleared)
            for a, b, cleared in expected
            if b > window[0] and a < sum(window)
        ]
        assert store.diff("disk", name, *window) == clipped
    store.close()

    reopened = PageStore(tmp_path)  # replayed from the journals
    assert reopened.ranges("disk") == model.ranges()
    for name, _, content in snapshots:
        assert reopened.read(name, 0, SIZE) == content
    reopened.close()


def test_alignment_and_bounds(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    store.create("disk", SIZE, lineage="family")
    with pytest.raises(PageStoreError):
        store.write("disk", 100, bytes(512))
    with pytest.raises(PageStoreError):
        store.clear("disk", SIZE - 512, 1024)
    with pytest.raises(PageStoreError):
        store.read("disk", SIZE - 10, 20)


def test_zero_writes_and_snapshots_store_nothing(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    store.create("disk", SIZE, lineage="family")
    store.write("disk", 0, bytes(CHUNK_SIZE))
    assert store.stored_bytes() == 0 and store.ranges("disk") == [(0, CHUNK_SIZE)]
    store.write("disk", 0, b"\x01" * SECTOR)
    store.clone("disk", "snap")
    assert store.stored_bytes() == CHUNK_SIZE
    store.delete("disk")
    assert store.stored_bytes() == CHUNK_SIZE  # still referenced by the snapshot
    store.delete("snap")
    assert store.stored_bytes() == 0 and not list((tmp_path / "data").glob("*/*"))
