"""What every CLI command needs: the repository location, the passphrase and progress output.

This is the CLI's edge: it reads the environment (BULWARK_PASSWORD and the storage credentials)
and hands explicit values to the library.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from shared.core.clock import SystemClock
from shared.core.errors import UsageError
from shared.repo.repository import Repository
from shared.storage.location import open_store
from shared.storage.port import BlobStore

__all__ = ["err_console", "open_repository", "progress_bar", "read_passphrase", "store_for"]

err_console = Console(stderr=True, highlight=False)


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


def open_repository(location: str | None, password_file: Path | None) -> Repository:
    store = store_for(location)
    return Repository.open(store, read_passphrase(password_file), SystemClock())


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool = True) -> Iterator[Progress | None]:
    """A byte progress bar on stderr, shown only when stderr is a terminal."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    with bar:
        bar.add_task(description, total=total)
        yield bar
