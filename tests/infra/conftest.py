"""Fixtures of the infrastructure checks: the tools venv (checkov, pycep-parser) and parsed Bicep.

The tools live in ``.venv-tools`` (``make setup`` builds it from requirements-tools.txt) because
checkov's exact pins clash with the project's own. They are part of ``make test``, so a missing tools
venv fails with the command that fixes it instead of skipping.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.trees import INFRA, tool


@pytest.fixture(scope="session")
def bicep_files() -> dict[str, dict[str, Any]]:
    """Every ``infra/**/*.bicep`` as ``{relative path: {"tree": ...} or {"error": ...}}``."""
    result = subprocess.run(
        [str(tool("python")), str(Path(__file__).with_name("bicep_dump.py")), str(INFRA)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"bicep_dump.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    files: dict[str, dict[str, Any]] = json.loads(result.stdout)
    return files


@pytest.fixture(scope="session")
def bicep(bicep_files: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The parsed trees (tests that need them fail here when a file does not parse)."""
    broken = {name: entry["error"] for name, entry in bicep_files.items() if "error" in entry}
    if broken:
        pytest.fail(f"Bicep files that do not parse: {broken}")
    return {name: entry["tree"] for name, entry in bicep_files.items()}
