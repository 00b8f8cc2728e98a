"""``bulwark-sim``: drive the local Azure simulator (guest disk I/O, the demo estate).

Every command reads the stack file (``.local/stack.json`` from ``make stack-up``, or ``--stack FILE``)
and talks to the simulator's admin API, not to ARM. Command groups are separate Typer apps, so
``sql`` and ``faults`` slot in beside ``guest`` and ``seed`` with one ``add_typer`` line each.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from .simulator.client import GUEST_PIECE, AdminApiError, AdminClient
from .stack import DEFAULT_STACK_FILE, Stack, load_stack

app = typer.Typer(help="Control the local Azure simulator.", no_args_is_help=True, add_completion=False)
guest_app = typer.Typer(
    help="Act as the guest OS of a simulated VM: write, trim and read its disks.", no_args_is_help=True
)
seed_app = typer.Typer(help="Create simulated estates.", no_args_is_help=True)
app.add_typer(guest_app, name="guest")
app.add_typer(seed_app, name="seed")

_state: dict[str, Path] = {}

DiskArg = Annotated[str, typer.Argument(help="Managed disk resource id, snapshot id (read only) or VHD blob URL.")]
OffsetOpt = Annotated[int, typer.Option("--offset", min=0, help="Byte offset on the disk.")]
LengthOpt = Annotated[int, typer.Option("--length", min=0, help="Number of bytes.")]


@app.callback()
def _options(
    stack: Annotated[Path, typer.Option("--stack", help="Stack file written by `make stack-up`.")] = DEFAULT_STACK_FILE,
) -> None:
    _state["stack"] = stack


def _stack() -> Stack:
    try:
        return load_stack(_state.get("stack", DEFAULT_STACK_FILE))
    except FileNotFoundError as error:
        _fail(str(error))


def _admin() -> AdminClient:
    stack = _stack()
    return AdminClient(stack.arm_endpoint, stack.ca_bundle)


def _fail(message: str) -> NoReturn:
    typer.echo(f"bulwark-sim: {message}", err=True)
    raise typer.Exit(code=1)


@guest_app.command("write")
def guest_write(
    disk: DiskArg,
    offset: OffsetOpt,
    length: LengthOpt,
    zero: Annotated[bool, typer.Option("--zero", help="Write zeros (the pages stay allocated, unlike trim).")] = False,
    random: Annotated[bool, typer.Option("--random", help="Write random bytes.")] = False,
    source: Annotated[Path | None, typer.Option("--from", help="Write LENGTH bytes read from this file.")] = None,
) -> None:
    """Write LENGTH bytes at OFFSET, as the VM's guest would."""
    if sum([zero, random, source is not None]) != 1:
        _fail("choose exactly one of --zero, --random, --from FILE")
    admin = _admin()
    try:
        with open(source, "rb") if source else open(os.devnull, "rb") as handle:
            for start in range(0, length, GUEST_PIECE):
                size = min(GUEST_PIECE, length - start)
                if source:
                    data = handle.read(size)
                    if len(data) != size:
                        _fail(f"{source} has fewer than {length} bytes")
                else:
                    data = bytes(size) if zero else os.urandom(size)
                admin.guest_write(disk, offset + start, data)
    except AdminApiError as error:
        _fail(str(error))
    typer.echo(f"wrote {length} bytes at {offset}")


@guest_app.command("trim")
def guest_trim(disk: DiskArg, offset: OffsetOpt, length: LengthOpt) -> None:
    """Discard (TRIM) a range: whole pages are cleared and read back as zeros."""
    try:
        _admin().guest_trim(disk, offset, length)
    except AdminApiError as error:
        _fail(str(error))
    typer.echo(f"trimmed {length} bytes at {offset}")


@guest_app.command("read")
def guest_read(
    disk: DiskArg,
    out: Annotated[Path, typer.Option("--out", help="File to write the disk's bytes to (sparse).")],
) -> None:
    """Save the disk's current bytes as the guest sees them; unallocated ranges become holes."""
    admin = _admin()
    try:
        info = admin.guest_info(disk)
        with open(out, "wb") as handle:
            handle.truncate(int(info["size"]))
            for start, end in info["ranges"]:
                handle.seek(start)
                for piece in admin.iter_guest_read(disk, start, end - start):
                    handle.write(piece)
    except AdminApiError as error:
        _fail(str(error))
    typer.echo(f"saved {info['size']} bytes ({sum(e - s for s, e in info['ranges'])} allocated) to {out}")


@seed_app.command("demo")
def seed_demo_command() -> None:
    """Two resource groups of VMs with ext4 disks (one VM on an unmanaged VHD); idempotent."""
    from .simulator.seed import SeedTarget, seed_demo

    stack = _stack()
    target = SeedTarget(
        stack.arm_endpoint, stack.data_plane_endpoint, stack.ca_bundle, stack.subscription_id, stack.location
    )
    try:
        seed_demo(target, log=typer.echo)
    except AdminApiError as error:
        _fail(str(error))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
