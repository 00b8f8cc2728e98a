"""Reading pycep-parser's Bicep trees (the JSON bicep_dump.py prints) and the tools venv."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TOOLS_BIN = ROOT / ".venv-tools" / "bin"


def tool(name: str) -> Path:
    """A command of the tools venv; fails (never skips) with the fix when it is missing."""
    path = TOOLS_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make setup` (it builds .venv-tools from requirements-tools.txt)")
    return path


def body(declaration: dict[str, Any]) -> dict[str, Any]:
    """The body of a resource or module, under any ``if``/``for`` wrappers pycep puts around it."""
    config: dict[str, Any] = declaration["config"]
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def description(declaration: dict[str, Any]) -> str | None:
    for decorator in declaration.get("decorators", []):
        if decorator.get("type") == "description":
            text = decorator.get("argument")
            return text if isinstance(text, str) else None
    return None


def resources_of_type(tree: dict[str, Any], resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in tree.get("resources", {}).items():
        if resource.get("type", "").lower() == resource_type.lower():
            yield name, body(resource)


def strings(node: Any) -> Iterator[str]:
    """Every string literal in a subtree (including variable values and interpolations)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
