"""What every CLI command needs: the repository, the passphrase, output and progress.

This is the CLI's edge: it reads the environment (BULWARK_PASSWORD, BULWARK_REPO and the storage
credentials) and hands explicit values to the library. rich is imported only when a terminal
will show its output, so scripted calls start fast.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.core.clock import SystemClock
from shared.core.errors import UsageError
from shared.repo.repository import Repository
from shared.storage.location import open_store
from shared.storage.port import BlobStore

__all__ = [
    "Advance",
    "add_repo_options",
    "emit_json",
    "human_size",
    "open_repository",
    "parse_tags",
    "progress",
    "read_passphrase",
    "say",
    "store_for",
    "workers_count",
]

Advance = Callable[[int], None]

REPO_HELP = (
    "repository: a directory path; https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX] (key from "
    "AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, else Azure sign-in); or azure://CONTAINER[/PREFIX] "
    "with AZURE_STORAGE_CONNECTION_STRING (default: $BULWARK_REPO)"
)


def add_repo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", "-r", metavar="REPO", default=os.environ.get("BULWARK_REPO"), help=REPO_HELP)
    parser.add_argument(
        "--password-file", type=Path, metavar="FILE", help="read the passphrase from FILE (default: $BULWARK_PASSWORD)"
    )


def workers_count(text: str) -> int:
    """argparse type for --workers."""
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 64")
    return int(text)


def parse_tags(tags: list[str]) -> dict[str, str]:
    """--tag key=value options as a dict."""
    parsed: dict[str, str] = {}
    for tag in tags:
        name, sep, value = tag.partition("=")
        if not sep or not name:
            raise UsageError(f"tag {tag!r} is not of the form key=value")
        parsed[name] = value
    return parsed


def say(message: str) -> None:
    """A line for people, on stderr (stdout carries results)."""
    sys.stderr.write(message + "\n")


def emit_json(doc: object) -> None:
    sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def store_for(location: str | None, *, create: bool = False) -> BlobStore:
    if not location:
        raise UsageError("no repository given", hint="pass --repo PATH|URL or set BULWARK_REPO")
    return open_store(location, os.environ, create=create)


def read_passphrase(password_file: Path | None, *, confirm: bool = False) -> str:
    """From --password-file, else BULWARK_PASSWORD, else a prompt on the terminal."""
    if password_file is not None:
        try:
            text = password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read the password file {password_file}: {exc.strerror}") from exc
        if not text:
            raise UsageError(f"the password file {password_file} is empty")
        return text
    from_env = os.environ.get("BULWARK_PASSWORD")
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise UsageError("no passphrase given", hint="set BULWARK_PASSWORD or pass --password-file FILE")
    first = getpass.getpass("Repository passphrase: ")
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise UsageError("the two passphrases differ")
    return first


def open_repository(args: argparse.Namespace) -> Repository:
    return Repository.open(store_for(args.repo), read_passphrase(args.password_file), SystemClock())


@contextmanager
def progress(description: str, total: int, *, enabled: bool = True) -> Iterator[Advance | None]:
    """A byte progress bar on stderr when it is a terminal; otherwise nothing at all."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
