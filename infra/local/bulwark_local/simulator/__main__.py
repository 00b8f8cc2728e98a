"""``python -m bulwark_local.simulator --state DIR [--arm-port N] [--data-port N] [--ready-file F]``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path

from .server import Simulator


def main() -> None:
    parser = argparse.ArgumentParser(prog="bulwark_local.simulator", description=__doc__)
    parser.add_argument("--state", type=Path, required=True, help="state folder (kept across restarts)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--arm-port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--data-port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--ready-file", type=Path, help="written (JSON endpoints) once both ports answer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    simulator = Simulator(args.state, host=args.host, arm_port=args.arm_port, data_port=args.data_port)
    simulator.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.ready_file:
        temporary = args.ready_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({**simulator.endpoints(), "pid": os.getpid()}))
        os.replace(temporary, args.ready_file)
    logging.getLogger("bulwark_local.simulator").info("listening: %s", simulator.endpoints())
    stop.wait()
    simulator.stop()


if __name__ == "__main__":
    main()
