"""The local stack: Azurite (storage) plus the Azure simulator (ARM + managed-disk data plane).

``make stack-up`` runs ``python -m bulwark_local.stack up``: both start as background processes on free
loopback ports, and ``.local/stack.json`` (git-ignored) tells clients where they are:

| key                        | what                                                                |
|----------------------------|---------------------------------------------------------------------|
| arm_endpoint               | ARM base URL for the mgmt clients (``base_url=``)                   |
| ca_bundle                  | the simulator's CA certificate (``connection_verify=``)            |
| subscription_id, tenant_id | the simulated subscription and tenant                               |
| location                   | the region the demo estate lives in                                 |
| storage_connection_string  | Azurite (Blob, Queue, Table)                                        |
| data_plane_endpoint        | the simulator's blob data plane (SAS URLs, VHD page blobs)          |
| vhd_storage_account        | the simulator's storage account for unmanaged VHD disks             |
| admin_endpoint             | the simulator's admin API (guest I/O, settings; ``bulwark-sim``)    |
| pids                       | ``{"azurite": pid, "simulator": pid}`` (each leads its own group) |
| state_dir                  | where both keep their data (kept across stack-down/up)              |

``make stack-down`` (``... stack down``) stops both and removes the file. Tests, the demo and the
benchmark use ``running_stack(workdir)`` instead: their own ports and folders, stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .azurite import running_azurite, start_azurite
from .simulator.process import running_simulator, start_simulator

SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
TENANT_ID = "00000000-0000-0000-0000-0000000b0b0a"
LOCATION = "westeurope"
VHD_ACCOUNT = "bulwarkvhds"
DEFAULT_STACK_FILE = Path(".local/stack.json")


@dataclass(frozen=True)
class Stack:
    arm_endpoint: str
    ca_bundle: str
    subscription_id: str
    tenant_id: str
    location: str
    storage_connection_string: str
    data_plane_endpoint: str
    vhd_storage_account: dict[str, str]
    admin_endpoint: str
    pids: dict[str, int]
    state_dir: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(self.to_json())
        os.replace(temporary, path)


def load_stack(path: Path = DEFAULT_STACK_FILE) -> Stack:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no local stack file at {path}; start the stack with `make stack-up`") from None
    return Stack(**data)


def _stack(workdir: Path, *, arm: str, data: str, ca: str, storage: str, pids: dict[str, int]) -> Stack:
    return Stack(
        arm_endpoint=arm,
        ca_bundle=ca,
        subscription_id=SUBSCRIPTION_ID,
        tenant_id=TENANT_ID,
        location=LOCATION,
        storage_connection_string=storage,
        data_plane_endpoint=data,
        vhd_storage_account={
            "name": VHD_ACCOUNT,
            "blob_endpoint": f"{data}/{VHD_ACCOUNT}",
            "note": "simulated account: any SharedKey/SAS credential is accepted",
        },
        admin_endpoint=f"{arm}/_bulwark",
        pids=pids,
        state_dir=str(workdir),
    )


@contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    """Azurite and the simulator on free ports for a ``with`` block; ``workdir/stack.json`` describes them."""
    with ExitStack() as stack:
        azurite = stack.enter_context(running_azurite(workdir / "azurite"))
        simulator = stack.enter_context(running_simulator(workdir / "simulator"))
        result = _stack(
            workdir,
            arm=simulator.arm,
            data=simulator.data,
            ca=simulator.ca_bundle,
            storage=azurite.connection_string,
            pids={"azurite": azurite.pid, "simulator": simulator.pid},
        )
        result.write(workdir / "stack.json")
        yield result


def stack_up(stack_file: Path, workdir: Path) -> Stack:
    """Start both in the background (they outlive this process); reuse a stack that still runs."""
    if stack_file.exists():
        current = load_stack(stack_file)
        if all(_is_ours(pid) for pid in current.pids.values()):
            return current
        stack_down(stack_file)
    azurite = start_azurite(workdir / "azurite")
    try:
        simulator = start_simulator(workdir / "simulator")
    except BaseException:
        azurite.stop()
        raise
    result = _stack(
        workdir,
        arm=simulator.arm,
        data=simulator.data,
        ca=simulator.ca_bundle,
        storage=azurite.connection_string,
        pids={"azurite": azurite.pid, "simulator": simulator.pid},
    )
    result.write(stack_file)
    return result


def stack_down(stack_file: Path, *, timeout: float = 15.0) -> list[int]:
    """Stop the processes named in the stack file (their whole process groups); remove the file."""
    if not stack_file.exists():
        return []
    data = json.loads(stack_file.read_text())
    stopped = []
    for pid in data.get("pids", {}).values():
        if _is_ours(pid):
            _stop_group(pid, timeout)
            stopped.append(pid)
    stack_file.unlink()
    return stopped


def _is_ours(pid: int) -> bool:
    """True if ``pid`` runs Azurite or the simulator (a recycled pid must not be killed)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z" and (b"azurite" in command or b"bulwark_local.simulator" in command)


def _stop_group(pid: int, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _is_ours(pid):
                return
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bulwark_local.stack", description="Start or stop the local stack.")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--stack-file", type=Path, default=DEFAULT_STACK_FILE)
    parser.add_argument("--workdir", type=Path, default=Path(".local/stack"))
    args = parser.parse_args(argv)
    if args.command == "up":
        stack = stack_up(args.stack_file, args.workdir.resolve())
        print(
            f"local stack up: ARM {stack.arm_endpoint}, data plane {stack.data_plane_endpoint}; see {args.stack_file}"
        )
    elif args.command == "down":
        stopped = stack_down(args.stack_file)
        print(f"local stack down (stopped {len(stopped)} process groups)")
    else:
        if not args.stack_file.exists():
            print("local stack: not running")
            return 1
        stack = load_stack(args.stack_file)
        alive = {name: _is_ours(pid) for name, pid in stack.pids.items()}
        print(json.dumps({"running": alive, "arm_endpoint": stack.arm_endpoint}, indent=2))
        return 0 if all(alive.values()) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
