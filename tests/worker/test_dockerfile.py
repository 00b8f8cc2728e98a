"""The worker image's Dockerfile: the shape the deployment relies on (no Docker daemon needed)."""

from __future__ import annotations

import json
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "infra" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    lines = []
    for raw in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            lines.append((keyword.upper(), rest.strip()))
    return lines


def test_worker_image_is_slim_pinned_non_root_and_runs_the_worker() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert ("COPY", "requirements.txt ./") in steps
    assert any(k == "RUN" and "pip install" in v and "-r requirements.txt" in v for k, v in steps)
    assert ("COPY", "shared/ ./shared/") in steps
    users = [v for k, v in steps if k == "USER"]
    assert users and not users[-1].startswith(("root", "0"))
    entrypoints = [v for k, v in steps if k == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["python", "-m", "shared.worker"]]
    requirements = (DOCKERFILE.parents[1] / "requirements.txt").read_text().splitlines()
    pins = [r for r in requirements if r.strip() and not r.startswith("#")]
    assert pins and all("==" in r for r in pins)
