"""BACPAC commands: backup-bacpac, restore-bacpac."""

from __future__ import annotations

import argparse
from pathlib import Path

from shared.cli.session import (
    add_repo_options,
    emit_json,
    human_size,
    open_repository,
    parse_tags,
    progress,
    say,
    workers_count,
)
from shared.core.errors import UsageError
from shared.repo.repository import Repository

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser(
        "backup-bacpac",
        help="back up a BACPAC file into a new restore point",
        description="Back up a BACPAC (an Azure SQL or SqlPackage export) into a new restore point. The file "
        "is checked first: a zip with model.xml and Origin.xml whose checksums hold. Each member is stored "
        "on its own, cut into content-defined chunks, so the tables that did not change since an earlier "
        "backup cost no new space.",
        epilog="examples:\n"
        "  bulwark backup-bacpac sales.bacpac --repo /backups --source sales-db --tag policy=gold\n"
        '  bulwark backup-bacpac sales.bacpac --repo /backups --json   # prints {"point": ..., "tables": ...}',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="the .bacpac file")
    add_repo_options(backup)
    backup.add_argument(
        "--source",
        metavar="NAME",
        help="the database the BACPAC exports, e.g. its Azure resource id (default: the file's path); "
        "retention keeps points per source",
    )
    backup.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="label the point (repeatable)")
    backup.add_argument("--workers", type=workers_count, default=2, metavar="N", help="parallel threads (default 2)")
    backup.add_argument(
        "--json", action="store_true", help="print one JSON object: point id, statistics and the tables"
    )
    backup.set_defaults(run=backup_cmd)

    restore = commands.add_parser(
        "restore-bacpac",
        help="rebuild a BACPAC file from its restore point",
        description="Rebuild a BACPAC from its restore point, ready for SqlPackage or an Azure SQL import. "
        "Every member comes back with its name, order, time and content; every chunk is authenticated, and "
        "every member's CRC-32 and Origin.xml's checksums are checked before the file appears. If anything "
        "is damaged the command fails and OUT_FILE is not created.",
        epilog="examples:\n"
        "  bulwark restore-bacpac 3f2a9c sales.bacpac --repo /backups\n"
        "  bulwark restore-bacpac latest sales.bacpac --repo /backups   # the newest BACPAC point",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    restore.add_argument("point", metavar="POINT", help="BACPAC point id, unique prefix, or 'latest'")
    restore.add_argument("out_file", type=Path, metavar="OUT_FILE", help="the .bacpac file to create")
    add_repo_options(restore)
    restore.add_argument("--overwrite", action="store_true", help="replace OUT_FILE if it exists")
    restore.add_argument("--workers", type=workers_count, default=2, metavar="N", help="parallel threads (default 2)")
    restore.add_argument("--json", action="store_true", help="print the result as JSON")
    restore.set_defaults(run=restore_cmd)


def backup_cmd(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `bulwark` starts faster for every other command.
    from shared.engine.fileset import backup_fileset
    from shared.sources.bacpac import BacpacFile

    tags = parse_tags(args.tag)
    # The BACPAC is validated before the repository is opened: a wrong file fails at once.
    with BacpacFile(args.file, source_id=args.source) as bacpac:
        tables = bacpac.tables()
        repository = open_repository(args)
        total = sum(member.size for member in bacpac.members())
        with progress(f"backup {args.file.name}", total, enabled=not args.json) as advance:
            result = backup_fileset(
                repository, bacpac, kind="bacpac", tags=tags, workers=args.workers, progress=advance
            )
        total_rows = bacpac.total_rows
    if args.json:
        emit_json({**result.to_dict(), "tables": [t.to_dict() for t in tables], "total_rows": total_rows})
        return 0
    say(
        f"point {result.point.point_id}: {result.members} members ({len(tables)} tables), "
        f"read {human_size(result.bytes_read)}, new {human_size(result.bytes_new)}, "
        f"stored {human_size(result.bytes_stored)} in {result.duration_s:.2f} s"
    )
    print(result.point.point_id)
    return 0


def _resolve(repository: Repository, point: str) -> str:
    """Like Repository.resolve_point, but 'latest' means the newest BACPAC point."""
    if point != "latest":
        return repository.resolve_point(point)
    points = [p for p in repository.list_points() if p.files is not None]
    if not points:
        raise UsageError(
            f"there are no BACPAC points in {repository.store.describe()}", hint="list them with `bulwark points`"
        )
    return max(points, key=lambda p: p.time).point_id


def restore_cmd(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `bulwark` starts faster for every other command.
    from shared.engine.fileset import restore_fileset
    from shared.repo import walk
    from shared.sources.bacpac import BacpacWriter

    repository = open_repository(args)
    point = repository.load_point(_resolve(repository, args.point))
    files = walk.files_of(point)
    with (
        progress(f"restore {point.point_id}", files.size, enabled=not args.json) as advance,
        BacpacWriter(args.out_file, files, overwrite=args.overwrite) as sink,
    ):
        result = restore_fileset(repository, point, sink, workers=args.workers, progress=advance)
    if args.json:
        emit_json({**result.to_dict(), "file": str(args.out_file)})
    else:
        say(
            f"restored point {result.point_id} to {args.out_file}: {result.members} members, "
            f"{human_size(result.bytes_written)} in {result.duration_s:.2f} s"
        )
    return 0
