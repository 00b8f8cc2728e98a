"""The ``bulwark`` command: the repository and data mover from a terminal.

Works with nothing but the repository location and the passphrase, so a repository stays
readable when the function app is gone.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shared.cli.session import err_console, open_repository, progress_bar, read_passphrase, store_for
from shared.core.clock import SystemClock, parse_time
from shared.core.errors import BulwarkError, UsageError, redact
from shared.core.ranges import ChangeSet
from shared.core.retention import PointRef, RetentionPolicy, apply_retention
from shared.engine.backup import backup_image
from shared.engine.restore import restore_image
from shared.repo.checker import verify_repository
from shared.repo.prune import prune_repository
from shared.repo.repository import Repository
from shared.sources.image_file import ImageFileSource

__all__ = ["app", "main"]

EXIT_CODES = """\
Exit codes: 0 success; 1 internal error; 2 bad usage or input; 3 configuration;
4 storage unreachable or refused; 5 repository missing, locked or inconsistent;
6 damaged data found (verify) or refused (restore); 7 wrong passphrase; 8 source unreadable.
"""

app = typer.Typer(
    name="bulwark",
    help="Back up disk images into an encrypted, deduplicated repository you own, and restore them.\n\n"
    "The repository is a directory or an Azure blob container (--repo or BULWARK_REPO); the passphrase "
    "comes from BULWARK_PASSWORD, --password-file, or a prompt.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help texts contain [brackets] that are not markup
)
repo_app = typer.Typer(help="Create and inspect repositories.", no_args_is_help=True)
app.add_typer(repo_app, name="repo")

RepoOption = Annotated[
    str | None,
    typer.Option(
        "--repo",
        "-r",
        envvar="BULWARK_REPO",
        help="Repository: a directory path, https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX] "
        "(key from AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, else Azure sign-in), or "
        "azure://CONTAINER[/PREFIX] with AZURE_STORAGE_CONNECTION_STRING.",
        show_default=False,
    ),
]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option("--password-file", help="Read the passphrase from this file.", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
WorkersOption = Annotated[int, typer.Option("--workers", min=1, max=64, help="Parallel threads.")]


def _emit_json(doc: object) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


def _parse_tags(tags: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for tag in tags:
        name, sep, value = tag.partition("=")
        if not sep or not name:
            raise UsageError(f"tag {tag!r} is not of the form key=value")
        parsed[name] = value
    return parsed


@repo_app.command("init")
def repo_init(repo: RepoOption = None, password_file: PasswordFileOption = None) -> None:
    """Create a new, empty repository.

    Example: BULWARK_PASSWORD=... bulwark repo init --repo /backups/bulwark
    """
    store = store_for(repo, create=True)
    created = Repository.init(store, read_passphrase(password_file, confirm=True), SystemClock())
    err_console.print(f"created repository {created.config.repo_id} at {store.describe()}")
    err_console.print("keep the passphrase safe: without it the data cannot be read by anyone")


@app.command("backup-image")
def backup_image_cmd(
    file: Annotated[Path, typer.Argument(help="Disk image or block device to back up.", show_default=False)],
    repo: RepoOption = None,
    password_file: PasswordFileOption = None,
    parent: Annotated[
        str | None, typer.Option("--parent", help="Previous point of this disk (id, prefix or 'latest').")
    ] = None,
    changed_ranges: Annotated[
        Path | None,
        typer.Option(
            "--changed-ranges",
            help='JSON {"changed": [[offset, length], ...], "cleared": [...]} relative to --parent; '
            "only these ranges are read.",
        ),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Label the point: key=value (repeatable).")] = None,
    workers: WorkersOption = 2,
    as_json: JsonOption = False,
) -> None:
    """Back up a disk image into a new restore point.

    Holes and all-zero blocks are skipped; every block is deduplicated against the repository.
    With --parent and --changed-ranges only the changed blocks are read.

    Example: bulwark backup-image disk.img --repo /backups --parent latest --changed-ranges diff.json
    """
    repository = open_repository(repo, password_file)
    with ImageFileSource(file) as source:
        parent_point = None
        if parent:
            parent_point = repository.load_point(repository.resolve_point(parent, source=source.source_id))
        changes = None
        if changed_ranges is not None:
            try:
                doc = json.loads(changed_ranges.read_text())
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read the changed-ranges file {changed_ranges}: {exc}") from exc
            changes = ChangeSet.from_json(doc, source.size)
        total = source.size if changes is None else sum(e.length for e in changes.changed)
        with progress_bar(f"backup {file.name}", total, enabled=not as_json) as bar:
            advance = (lambda n: bar.advance(bar.task_ids[0], n)) if bar else None
            result = backup_image(
                repository,
                source,
                parent=parent_point,
                changes=changes,
                tags=_parse_tags(tag or []),
                workers=workers,
                progress=advance,
            )
    if as_json:
        _emit_json(result.to_dict())
        return
    err_console.print(
        f"point {result.point.point_id}: read {_human(result.bytes_read)}, new {_human(result.bytes_new)}, "
        f"stored {_human(result.bytes_stored)} in {result.duration_s:.2f} s"
    )
    print(result.point.point_id)


@app.command("points")
def points_cmd(repo: RepoOption = None, password_file: PasswordFileOption = None, as_json: JsonOption = False) -> None:
    """List restore points, oldest first."""
    repository = open_repository(repo, password_file)
    points = repository.list_points()
    if as_json:
        _emit_json(
            [
                {
                    "point": p.point_id,
                    "kind": p.kind,
                    "time": p.time,
                    "source": p.source,
                    "host": p.host,
                    "parent": p.parent,
                    "tags": p.tags,
                    "size": p.image.size if p.image else None,
                    "stats": p.stats,
                }
                for p in points
            ]
        )
        return
    table = Table("point", "time", "kind", "size", "source", "tags", box=None)
    for p in points:
        size = _human(p.image.size) if p.image else "-"
        tags = ",".join(f"{k}={v}" for k, v in sorted(p.tags.items()))
        table.add_row(p.point_id, p.time, p.kind, size, p.source, tags)
    if not points:
        err_console.print("no restore points yet")
        return
    Console().print(table)


@app.command("restore-image")
def restore_image_cmd(
    point: Annotated[str, typer.Argument(help="Point id, unique prefix or 'latest'.", show_default=False)],
    target: Annotated[Path, typer.Argument(help="File to write (created sparse).", show_default=False)],
    repo: RepoOption = None,
    password_file: PasswordFileOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace TARGET if it exists.")] = False,
    workers: WorkersOption = 2,
    as_json: JsonOption = False,
) -> None:
    """Restore a disk image point into a sparse file, byte for byte.

    Every block is authenticated before it is written; if any is damaged the command fails and
    removes the partial file.

    Example: bulwark restore-image 3f2a9c restored.img --repo /backups
    """
    repository = open_repository(repo, password_file)
    chosen = repository.load_point(repository.resolve_point(point))
    size = chosen.image.size if chosen.image else 0
    with progress_bar(f"restore {chosen.point_id}", size, enabled=not as_json) as bar:
        advance = (lambda n: bar.advance(bar.task_ids[0], n)) if bar else None
        result = restore_image(repository, chosen, target, overwrite=overwrite, workers=workers, progress=advance)
    if as_json:
        _emit_json(result.to_dict())
    else:
        err_console.print(
            f"restored point {result.point_id} to {target}: {_human(result.size)} image, "
            f"{_human(result.bytes_written)} of data in {result.duration_s:.2f} s"
        )


@app.command("verify")
def verify_cmd(
    repo: RepoOption = None,
    password_file: PasswordFileOption = None,
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Also decrypt and re-hash every stored block.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check that every restore point can be restored; name what is damaged and which points it affects.

    Exit code 6 when damage is found.
    """
    repository = open_repository(repo, password_file)
    report = verify_repository(repository, read_data=read_data)
    if as_json:
        _emit_json(report.to_dict())
    else:
        for problem in report.problems:
            affected = ", ".join(problem.points) or "none"
            err_console.print(f"[red]damaged[/red] {problem.name}: {problem.message}; affected points: {affected}")
        status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        err_console.print(
            f"verify {status}: {report.points} points, {report.packs} packs"
            + (f", {report.blocks} blocks read" if read_data else "")
            + (
                f", {report.unreferenced_packs} unreferenced packs (bulwark prune removes them)"
                if report.unreferenced_packs
                else ""
            )
        )
    if not report.ok:
        raise typer.Exit(6)


@app.command("forget")
def forget_cmd(
    repo: RepoOption = None,
    password_file: PasswordFileOption = None,
    keep_last: Annotated[int, typer.Option("--keep-last", min=0, help="Keep the N newest points.")] = 0,
    keep_daily: Annotated[int, typer.Option("--keep-daily", min=0, help="Keep the newest point of N days.")] = 0,
    keep_weekly: Annotated[int, typer.Option("--keep-weekly", min=0, help="... of N ISO weeks.")] = 0,
    keep_monthly: Annotated[int, typer.Option("--keep-monthly", min=0, help="... of N months.")] = 0,
    keep_yearly: Annotated[int, typer.Option("--keep-yearly", min=0, help="... of N years.")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the decision, delete nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove restore points by a retention policy, per source disk (data goes with `prune`).

    Example: bulwark forget --repo /backups --keep-last 3 --keep-daily 7 --keep-monthly 12
    """
    policy = RetentionPolicy(keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly)
    if policy.is_empty:
        raise UsageError(
            "no keep rule given; refusing to forget every point",
            hint="pass at least one of --keep-last/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly",
        )
    repository = open_repository(repo, password_file)
    points = repository.list_points()
    decision = apply_retention([PointRef(p.point_id, parse_time(p.time), p.source) for p in points], policy)
    if not dry_run:
        for point_id in decision.remove:
            repository.delete_point(point_id)
    if as_json:
        _emit_json(
            {
                "keep": decision.keep,
                "remove": decision.remove,
                "reasons": decision.reasons,
                "dry_run": dry_run,
            }
        )
        return
    for point_id in decision.keep:
        err_console.print(f"keep   {point_id}  ({'; '.join(decision.reasons[point_id])})")
    for point_id in decision.remove:
        err_console.print(f"{'would remove' if dry_run else 'remove'} {point_id}")


@app.command("prune")
def prune_cmd(
    repo: RepoOption = None,
    password_file: PasswordFileOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be deleted.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete stored data that no restore point references (leftovers of forgotten points and
    interrupted backups). Safe while backups run: it then defers and tells you."""
    repository = open_repository(repo, password_file)
    report = prune_repository(repository, dry_run=dry_run)
    if as_json:
        _emit_json(report.to_dict())
        return
    err_console.print(
        f"prune: {report.packs_total} packs, {report.packs_garbage} unused, {report.packs_deleted} deleted "
        f"({_human(report.bytes_freed)} freed)" + (f"; {report.deferred}" if report.deferred else "")
    )


def main() -> None:
    """Entry point: one readable line and a documented exit code for every failure."""
    try:
        app()
    except BulwarkError as exc:
        err_console.print(f"bulwark: error: {redact(str(exc))}", markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("bulwark: interrupted", markup=False)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("BULWARK_DEBUG"):
            raise
        err_console.print(
            f"bulwark: internal error: {type(exc).__name__}: {redact(str(exc))} "
            "(set BULWARK_DEBUG=1 for a traceback, and please report it)",
            markup=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
