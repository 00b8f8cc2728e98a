"""Where the read-only project material lives: ../shared beside the repository (also in CI).

Nothing from it is copied into the project; tests that need it skip with a clear reason when it
is absent.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ADVENTURE_WORKS_BACPAC", "AZURE_RECORDINGS", "SHARED_FIXTURES"]

SHARED_FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
ADVENTURE_WORKS_BACPAC = SHARED_FIXTURES / "AdventureWorksLT.bacpac"
AZURE_RECORDINGS = SHARED_FIXTURES / "azure-recordings"
