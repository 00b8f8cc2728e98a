"""ImagePointReader: random access to an image point equals the image, byte for byte."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from shared.core.clock import SystemClock
from shared.core.crypto import ScryptParams
from shared.engine.backup import backup_image
from shared.engine.image_reader import ImagePointReader
from shared.repo.point import Point
from shared.repo.repository import Repository
from shared.sources.image_file import ImageFileSource
from shared.storage.directory import DirectoryStore
from tests.support.images import MiB, make_image


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Repository, Point, bytes]:
    repo = Repository.init(
        DirectoryStore(tmp_path / "repo", fsync=False), "reader", SystemClock(), scrypt=ScryptParams(n=2**10)
    )
    image = make_image(tmp_path / "disk.img", 24 * MiB, data_blocks=16)
    with open(image, "r+b") as f:  # a short last block
        f.truncate(24 * MiB + 5000)
        f.seek(24 * MiB)
        f.write(os.urandom(5000))
    with ImageFileSource(image) as source:
        point = backup_image(repo, source, workers=1).point  # blocks stored in image order
    return repo, point, image.read_bytes()


def test_random_reads_equal_the_image(stored: tuple[Repository, Point, bytes]) -> None:
    repo, point, data = stored
    reader = ImagePointReader(repo, point, cache_bytes=3 * MiB)
    assert reader.size == len(data) and reader.seekable() and reader.readable()
    rng = random.Random(3)
    for _ in range(400):
        offset = rng.randrange(len(data) + 10)
        length = rng.choice([1, 512, 4096, MiB - 3, 2 * MiB + 17, rng.randrange(3 * MiB)])
        reader.seek(offset)
        assert reader.read(length) == data[offset : offset + length]
        assert reader.tell() == min(offset + length, max(offset, len(data)))
    buffer = bytearray(MiB + 100)
    reader.seek(-len(buffer) - 7, io.SEEK_END)
    assert reader.readinto(memoryview(buffer)) == len(buffer)
    assert bytes(buffer) == data[-len(buffer) - 7 : -7]
    reader.seek(0)
    assert reader.read() == data
    assert reader._cached <= 3 * MiB  # the block cache stays bounded


def test_sequential_reads_fetch_each_block_once_in_few_requests(stored: tuple[Repository, Point, bytes]) -> None:
    repo, point, data = stored
    reader = ImagePointReader(repo, point)
    reader.seek(0)
    while reader.read(8192):  # what a parser's buffered stream does
        pass
    stored_blocks = sum(1 for i in range(0, len(data), MiB) if any(data[i : i + MiB]))
    assert reader.blocks_fetched == stored_blocks + 1  # every data block once, and the span map
    assert reader.requests < reader.blocks_fetched / 2  # adjacent blocks come together
    before = reader.blocks_fetched
    reader.seek(MiB)
    reader.read(4 * MiB)
    assert reader.blocks_fetched == before  # from the cache
