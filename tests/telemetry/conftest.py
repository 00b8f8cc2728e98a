"""Tests here that run the app use tests/app's stack fixtures (a stack of their own per directory)."""

from tests.app.conftest import admin, clients, stack

__all__ = ["admin", "clients", "stack"]
