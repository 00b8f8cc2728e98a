"""Only the adapter layer (shared/azure) imports the Azure management SDKs, so SDK errors and shapes
are translated in one place (issue 3: "only this layer imports azure-mgmt-*")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ROOT / "shared" / "azure"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_adapters_import_azure_mgmt() -> None:
    product = [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").rglob("*.py"), ROOT / "function_app.py"]
    outside = {
        str(path.relative_to(ROOT)): sorted(name for name in _imports(path) if name.startswith("azure.mgmt"))
        for path in product
        if ADAPTERS not in path.parents
    }
    assert {path: names for path, names in outside.items() if names} == {}
    inside = [path for path in ADAPTERS.glob("*.py") if any(n.startswith("azure.mgmt") for n in _imports(path))]
    assert len(inside) >= 3  # the check would pass vacuously if it read nothing
