"""``python -m bulwark_local.runtime``: run a function app locally until stopped.

    python -m bulwark_local.runtime --app function_app --port 7071 --state .local/runtime [--key K]

The key may also come from the environment variable named by ``--key-env`` (so it stays out of
process listings). Logs go to stderr and never contain the key or request query strings.
SIGINT/SIGTERM stop the runtime cleanly; a SIGKILL loses nothing that was committed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from shared.core.errors import BulwarkError

from .host import HostOptions, LocalFunctionsHost


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bulwark_local.runtime",
        description="Run an Azure Functions (Python v2, Durable) app on this machine.",
    )
    parser.add_argument("--app", required=True, help="app module, e.g. function_app or pkg.mod:app")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port (7071; 0 picks one)")
    parser.add_argument("--state", type=Path, help="state directory (SQLite); in memory if omitted")
    parser.add_argument("--key", help="function key required by non-anonymous HTTP functions")
    parser.add_argument("--key-env", help="read the function key from this environment variable")
    parser.add_argument("--no-timers", action="store_true", help="do not fire timer triggers")
    parser.add_argument(
        "--paranoid",
        action="store_true",
        help="run each orchestration episode twice and fail on any difference",
    )
    parser.add_argument("--max-activities", type=int, help="activity pool size (host.json)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    key = args.key
    if args.key_env:
        key = os.environ.get(args.key_env)
        if not key:
            print(f"error: environment variable {args.key_env} is empty", file=sys.stderr)
            return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        host = LocalFunctionsHost.from_module(
            args.app,
            HostOptions(
                state_dir=args.state,
                host=args.host,
                port=args.port,
                key=key,
                paranoid=args.paranoid,
                max_concurrent_activities=args.max_activities,
                timers=not args.no_timers,
            ),
        )
    except BulwarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 3
    with host:
        print(f"listening on {host.base_url}", file=sys.stderr, flush=True)
        stop.wait()
    logging.getLogger("bulwark_local.runtime").info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
