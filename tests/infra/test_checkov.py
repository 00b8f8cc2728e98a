"""checkov passes on infra/ (Bicep and the worker's Dockerfile), and every skip is justified.

A check may be skipped only inline, next to the resource, with checkov's
``#checkov:skip=ID:reason`` and a reason a reviewer can weigh; a skip that no longer matches a check
checkov runs is stale and fails too, so the list of exceptions cannot silently grow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.infra.trees import INFRA, tool

SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")
FRAMEWORKS = ("bicep", "dockerfile", "secrets")


@pytest.fixture(scope="module")
def report() -> dict[str, dict[str, Any]]:
    # Offline: no platform sign-in, no guideline download, no version check (these machines have no
    # network but the package registries).
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "ERROR"}
    result = subprocess.run(
        [str(tool("checkov")), "-d", str(INFRA), "--framework", *FRAMEWORKS, "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        pytest.fail(f"checkov did not run (exit {result.returncode}):\n{result.stderr[-3000:]}")
    parsed = json.loads(result.stdout)
    runs = parsed if isinstance(parsed, list) else [parsed]
    return {run["check_type"]: run for run in runs if "check_type" in run}


def test_checkov_finds_no_failed_check(report: dict[str, dict[str, Any]]) -> None:
    assert {"bicep", "dockerfile"} <= set(report), f"checkov ran only {sorted(report)}"
    assert report["bicep"]["summary"]["resource_count"] >= 30, report["bicep"]["summary"]
    failures = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}:{check['file_line_range']}): "
        f"{check['check_name']}"
        for run in report.values()
        for check in run["results"]["failed_checks"]
    ]
    assert not failures, "checkov failed:\n" + "\n".join(failures)
    errors = {
        kind: run["summary"]["parsing_errors"] for kind, run in report.items() if run["summary"]["parsing_errors"]
    }
    assert not errors, f"checkov could not parse: {errors}"


def test_every_skip_is_justified_and_still_needed(report: dict[str, dict[str, Any]]) -> None:
    skipped = {
        (check["check_id"], check["file_path"].lstrip("/"))
        for run in report.values()
        for check in run["results"]["skipped_checks"]
    }
    inline: set[tuple[str, str]] = set()
    for path in sorted([*INFRA.rglob("*.bicep"), INFRA / "Dockerfile"]):
        relative = path.relative_to(INFRA).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = SKIP.search(line)
            if match:
                reason = (match.group(2) or "").strip()
                assert len(reason) >= 20, f"{relative}:{number}: skip of {match.group(1)} needs a real reason"
                inline.add((match.group(1), relative))
    assert inline, "no inline skips found: did the skip syntax change?"
    stale = inline - skipped
    assert not stale, f"skips that match no check checkov runs (remove them): {sorted(stale)}"
