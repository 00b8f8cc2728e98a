from __future__ import annotations

import pytest

from tests.storage.contract import Advance, BlobStoreContract
from tests.support.memory_store import FakeClock, InMemoryBlobStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> InMemoryBlobStore:
    return InMemoryBlobStore(clock=clock)


@pytest.fixture
def advance(clock: FakeClock) -> Advance:
    return clock.advance


class TestInMemoryBlobStore(BlobStoreContract):
    pass
