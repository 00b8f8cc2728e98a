"""Disk image commands: backup-image, restore-image."""

from __future__ import annotations

import argparse
import json
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

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser(
        "backup-image",
        help="back up a disk image into a new restore point",
        description="Back up a disk image (or block device) into a new restore point. Holes and all-zero "
        "blocks are skipped and every block is deduplicated against the repository. With --parent and "
        "--changed-ranges only the changed blocks are read; the rest is taken from the parent point.",
        epilog="examples:\n"
        "  bulwark backup-image disk.img --repo /backups --tag vm=web-01\n"
        "  bulwark backup-image disk.img --repo /backups --parent latest --changed-ranges diff.json\n\n"
        'diff.json holds what a page-range diff reports: {"changed": [[offset, length], ...],\n'
        '"cleared": [[offset, length], ...]} in bytes; cleared ranges read back as zeros.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="disk image or block device")
    add_repo_options(backup)
    backup.add_argument("--parent", metavar="POINT", help="earlier point of this disk: id, prefix or 'latest'")
    backup.add_argument("--changed-ranges", type=Path, metavar="FILE.json", help="what changed since --parent")
    backup.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="label the point (repeatable)")
    backup.add_argument("--workers", type=workers_count, default=2, metavar="N", help="parallel threads (default 2)")
    backup.add_argument("--json", action="store_true", help="print one JSON object: point id and statistics")
    backup.set_defaults(run=backup_cmd)

    restore = commands.add_parser(
        "restore-image",
        help="restore a disk image point into a sparse file",
        description="Restore a disk image point byte for byte into a new sparse file. Every block is "
        "authenticated before it is written; if any is damaged the command fails and removes the partial file.",
        epilog="example:\n  bulwark restore-image 3f2a9c restored.img --repo /backups",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    restore.add_argument("point", metavar="POINT", help="point id, unique prefix, or 'latest'")
    restore.add_argument("target", type=Path, metavar="TARGET", help="file to create")
    add_repo_options(restore)
    restore.add_argument("--overwrite", action="store_true", help="replace TARGET if it exists")
    restore.add_argument("--workers", type=workers_count, default=2, metavar="N", help="parallel threads (default 2)")
    restore.add_argument("--json", action="store_true", help="print the result as JSON")
    restore.set_defaults(run=restore_cmd)


def backup_cmd(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `bulwark` starts faster for every other command.
    from shared.core.ranges import ChangeSet
    from shared.engine.backup import backup_image
    from shared.sources.image_file import ImageFileSource

    tags = parse_tags(args.tag)
    repository = open_repository(args)
    with ImageFileSource(args.file) as source:
        parent = None
        if args.parent:
            parent = repository.load_point(repository.resolve_point(args.parent, source=source.source_id))
        changes = None
        if args.changed_ranges is not None:
            try:
                doc = json.loads(args.changed_ranges.read_text())
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read the changed-ranges file {args.changed_ranges}: {exc}") from exc
            changes = ChangeSet.from_json(doc, source.size)
        total = source.size if changes is None else sum(e.length for e in changes.changed)
        with progress(f"backup {args.file.name}", total, enabled=not args.json) as advance:
            result = backup_image(
                repository, source, parent=parent, changes=changes, tags=tags, workers=args.workers, progress=advance
            )
    if args.json:
        emit_json(result.to_dict())
        return 0
    say(
        f"point {result.point.point_id}: read {human_size(result.bytes_read)}, new {human_size(result.bytes_new)}, "
        f"stored {human_size(result.bytes_stored)} in {result.duration_s:.2f} s"
    )
    print(result.point.point_id)
    return 0


def restore_cmd(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `bulwark` starts faster for every other command.
    from shared.engine.restore import restore_image

    repository = open_repository(args)
    point = repository.load_point(repository.resolve_point(args.point))
    size = point.image.size if point.image else 0
    with progress(f"restore {point.point_id}", size, enabled=not args.json) as advance:
        result = restore_image(
            repository, point, args.target, overwrite=args.overwrite, workers=args.workers, progress=advance
        )
    if args.json:
        emit_json(result.to_dict())
    else:
        say(
            f"restored point {result.point_id} to {args.target}: {human_size(result.size)} image, "
            f"{human_size(result.bytes_written)} of data in {result.duration_s:.2f} s"
        )
    return 0
