"""Telemetry tests run the function app like tests/app does: its stack fixtures, shared."""

from tests.app.conftest import admin, clients, pytest_collection_modifyitems, stack

__all__ = ["admin", "clients", "pytest_collection_modifyitems", "stack"]
