"""Parse every Bicep file under a directory with pycep-parser and print the trees as one JSON object.

Runs in the tools venv (``.venv-tools/bin/python tests/infra/bicep_dump.py infra``), where
pycep-parser is installed beside checkov; the tests read its output. A file that does not parse maps
to ``{"error": "..."}`` instead of a tree, so one bad file does not hide the others.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pycep import BicepParser


def main(root: str) -> int:
    base = Path(root)
    parser = BicepParser()
    trees: dict[str, object] = {}
    for path in sorted(base.rglob("*.bicep")):
        name = path.relative_to(base).as_posix()
        try:
            trees[name] = {"tree": parser.parse(file_path=path)}
        except Exception as exc:  # every parser failure is reported per file
            trees[name] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(trees, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
