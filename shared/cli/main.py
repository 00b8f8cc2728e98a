"""The ``bulwark`` command: the repository and data mover from a terminal.

It needs nothing but the repository location and the passphrase, so a repository stays readable
when the function app is gone. Commands live in one module per family and are wired here.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import sys
from collections.abc import Sequence

from shared.core.errors import BulwarkError, redact
from shared.telemetry.cli import command_telemetry

__all__ = ["FAMILIES", "OWNERS", "build_parser", "main", "tune_allocator"]

# Command families (modules of shared.cli), in the order --help lists their commands.
FAMILIES = (
    "repo_commands",
    "image_commands",
    "bacpac_commands",
    "files_commands",
    "catalog_commands",
    "restore_commands",
    "report_commands",
)

# Which families define each command, so that `bulwark CMD` imports only those: start-up time is
# paid by every scripted call (tests/cli check this table against what the families register).
OWNERS: dict[str, tuple[str, ...]] = {
    "repo": ("repo_commands",),
    "points": ("repo_commands", "catalog_commands"),  # catalog_commands adds --catalog to it
    "verify": ("repo_commands",),
    "forget": ("repo_commands",),
    "prune": ("repo_commands",),
    "backup-image": ("image_commands",),
    "restore-image": ("image_commands",),
    "backup-bacpac": ("bacpac_commands",),
    "restore-bacpac": ("bacpac_commands",),
    "files": ("files_commands",),
    "sessions": ("catalog_commands",),
    "session": ("catalog_commands",),
    "restore": ("restore_commands",),
    "report": ("report_commands",),
    "status": ("report_commands",),
}

EXIT_CODES = """\
exit codes:
  0  success                          5  repository missing, locked or inconsistent
  1  internal error (please report)   6  damaged data found (verify) or refused (restore)
  2  bad usage or input               7  wrong passphrase
  3  configuration                    8  the source cannot be read
  4  storage unreachable or refused   9  an Azure management call failed

environment:
  BULWARK_REPO       default for --repo
  BULWARK_PASSWORD   the repository passphrase (or --password-file, or a prompt)
  AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING  Azure credentials
"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or only the families that define ``command`` when it is known."""
    parser = argparse.ArgumentParser(
        prog="bulwark",
        description="Back up disk images into an encrypted, deduplicated repository you own, and restore them.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for family in OWNERS.get(command or "", FAMILIES):
        importlib.import_module(f"shared.cli.{family}").register(commands)
    return parser


def tune_allocator() -> None:
    """Keep freed block buffers in the heap instead of returning them to the kernel.

    The pipelines allocate and free megabyte buffers all the time; by default glibc hands such
    buffers back with munmap and page-faults fresh ones in, which costs more than hashing them
    on a VM. Bounded growth (tens of MiB) buys a steady allocation rate. No-op off glibc.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 64 << 20)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one readable line and a documented exit code for every failure."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    # The main parser has no options that take a value, so the first word is the command.
    command = next((word for word in arguments if not word.startswith("-")), None)
    args = build_parser(command).parse_args(arguments)
    tune_allocator()
    try:
        with command_telemetry(args.command, os.environ):  # off unless the environment names a target
            code = int(args.run(args))
    except BulwarkError as exc:
        sys.stderr.write(f"bulwark: error: {redact(str(exc))}\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("bulwark: interrupted\n")
        code = 130
    except Exception as exc:
        if os.environ.get("BULWARK_DEBUG"):
            raise
        sys.stderr.write(
            f"bulwark: internal error: {type(exc).__name__}: {redact(str(exc))} "
            "(set BULWARK_DEBUG=1 for a traceback, and please report it)\n"
        )
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
