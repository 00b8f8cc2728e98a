"""The sources run against the same kind of simulator as the adapter tests, into a local repository."""

from __future__ import annotations

from tests.azure.conftest import _reset_settings, admin, clients, compute, data_plane, sdk, sim
from tests.repo.conftest import repo

__all__ = ["_reset_settings", "admin", "clients", "compute", "data_plane", "repo", "sdk", "sim"]
