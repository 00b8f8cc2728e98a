"""Report tests that need the app use tests/app's stack fixtures, shared."""

from tests.app.conftest import admin, clients, pytest_collection_modifyitems, stack

__all__ = ["admin", "clients", "pytest_collection_modifyitems", "stack"]
