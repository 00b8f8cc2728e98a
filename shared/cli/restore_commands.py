"""The ``bulwark restore`` group: ``vm`` and ``disk`` (restore_vm_commands), ``sql`` and ``files``
(restore_sql_commands). VM, disk and SQL restores run in the function app; ``files`` needs only the
repository."""

from __future__ import annotations

import argparse

from shared.cli.restore_sql_commands import add_files_commands, add_sql_commands
from shared.cli.restore_vm_commands import add_vm_commands

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "restore",
        help="restore a VM, a disk, a SQL database or files",
        description="Restore a whole VM or one disk from a snapshot or image-level point, a SQL database from a "
        "BACPAC point (these three through the function app), or files from a disk image point (repository only).",
        epilog="Run `bulwark restore COMMAND --help` for examples.",
    )
    subcommands = group.add_subparsers(dest="restore_command", metavar="COMMAND", required=True)
    add_vm_commands(subcommands)
    add_sql_commands(subcommands)
    add_files_commands(subcommands)
