"""Fixtures shared by all test suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bulwark_local.azurite import Azurite, running_azurite


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite (blob, queue, table) on free loopback ports for this test session.

    It is started here, never assumed to be running; if it cannot start, the tests that need it
    fail with a hint to run ``make setup``.
    """
    with running_azurite(tmp_path_factory.mktemp("azurite")) as instance:
        yield instance
