"""``python -m bulwark_local.runtime.check``: the determinism check CI runs over every orchestrator.

    python -m bulwark_local.runtime.check --app function_app [--state DIR]

Always scans the orchestrators' code (DET001-DET005, see :mod:`.determinism`); with ``--state``
it also replays every history recorded in that runtime state directory through today's code.
Exits 0 when nothing is found, 1 with one line per finding otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from shared.core.errors import BulwarkError

from .determinism import Finding, lint_orchestrators, replay_recorded
from .function_index import index_app, load_app
from .invoker import FunctionInvoker
from .store import StateStore


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bulwark_local.runtime.check")
    parser.add_argument("--app", required=True, help="app module, e.g. function_app")
    parser.add_argument("--state", type=Path, help="runtime state directory to replay")
    args = parser.parse_args(argv)
    try:
        app, _ = load_app(args.app)
        functions = index_app(app)
    except BulwarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    findings: list[Finding] = lint_orchestrators(functions)
    replayed = 0
    database = args.state / "state.sqlite" if args.state else None
    if database is not None:
        if not database.is_file():
            print(f"error: no runtime state in {args.state}", file=sys.stderr)
            return 2
        store = StateStore(database)
        invoker = FunctionInvoker()
        try:
            replayed = len(store.list_instances())
            findings += replay_recorded(functions, store, invoker)
        finally:
            invoker.close()
            store.close()
    for finding in findings:
        print(finding)
    print(
        f"{len(functions.orchestrators)} orchestrators scanned, {replayed} histories replayed, "
        f"{len(findings)} findings",
        file=sys.stderr,
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
