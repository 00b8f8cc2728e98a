"""File-level restore commands: files ls, files get.

The parsers (dissect) are imported only when one of these commands runs, so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shared.cli.session import add_repo_options, emit_json, human_size, open_repository, progress, say
from shared.core.errors import UsageError
from shared.repo.repository import Repository

if TYPE_CHECKING:
    from shared.restore.files import Disk, Entry

__all__ = ["register"]

PATHS = """\
paths:
  p1:/etc/hostname   /etc/hostname on partition 1 (numbers as `bulwark files ls POINT` shows them)
  /etc/hostname      the same, when the disk holds a single file system Bulwark can read
                     (one readable partition, or a file system on the whole disk)

file systems: ext2, ext3 and ext4; NTFS. Partition tables: GPT and MBR.
`files get POINT p1:/ --out DIR` extracts a whole partition as DIR/p1 (DIR/disk without a table).

exit codes: 2 no such path or partition, or DIR/NAME exists; 6 a damaged block in the
repository; 8 a file system Bulwark cannot read (the message says what was found).
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    files = commands.add_parser(
        "files",
        help="list and extract files from a disk image point",
        description="List and extract files and folders from a disk image point without restoring the disk: "
        "partition tables and file systems are read on demand from the repository.",
        epilog=PATHS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files_commands = files.add_subparsers(dest="files_command", metavar="COMMAND", required=True)

    ls = files_commands.add_parser(
        "ls",
        help="list partitions, or the entries of a folder",
        description="Without PATH: the disk's partitions with their offsets, sizes, types and file systems. "
        "With PATH: the entries of that folder (or the file itself) with type, size, modification time and mode.",
        epilog=PATHS + "\nexamples:\n"
        "  bulwark files ls 3f2a9c --repo /backups\n"
        "  bulwark files ls 3f2a9c p1:/etc --repo /backups\n"
        "  bulwark files ls latest /home/user --repo /backups --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("point", metavar="POINT", help="image point id, unique prefix, or 'latest'")
    ls.add_argument("path", nargs="?", metavar="PATH", help="[pN:]/path of a folder or file (see paths below)")
    add_repo_options(ls)
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(run=ls_cmd)

    get = files_commands.add_parser(
        "get",
        help="extract a file or a whole folder into a local folder",
        description="Extract a file, a symlink or a whole folder (recursively) into DIR/NAME, keeping names, "
        "sizes, modification times and permission bits; symlinks are recreated as symlinks. Everything is "
        "written under a temporary name and renamed into place when complete, so a failure (a damaged block, "
        "a full disk) leaves nothing half-written. Existing files are kept unless --overwrite is given.",
        epilog=PATHS + "\nexamples:\n"
        "  bulwark files get 3f2a9c p1:/etc/nginx --out ./restored --repo /backups   # ./restored/nginx/...\n"
        "  bulwark files get latest /var/log/syslog --out . --repo /backups",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    get.add_argument("point", metavar="POINT", help="image point id, unique prefix, or 'latest'")
    get.add_argument("path", metavar="PATH", help="[pN:]/path of the file or folder to extract")
    get.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to extract into (created)")
    add_repo_options(get)
    get.add_argument("--overwrite", action="store_true", help="replace DIR/NAME if it exists")
    get.add_argument("--json", action="store_true", help="print the result as JSON")
    get.set_defaults(run=get_cmd)


def _open_disk(repository: Repository, point_ref: str) -> Disk:
    from shared.engine.image_reader import ImagePointReader
    from shared.restore.files import Disk

    point = repository.load_point(_resolve(repository, point_ref))
    return Disk(ImagePointReader(repository, point))


def _resolve(repository: Repository, point: str) -> str:
    """Like Repository.resolve_point, but 'latest' means the newest disk image point."""
    if point != "latest":
        return repository.resolve_point(point)
    points = [p for p in repository.list_points() if p.image is not None]
    if not points:
        raise UsageError(
            f"there are no disk image points in {repository.store.describe()}", hint="list them with `bulwark points`"
        )
    return max(points, key=lambda p: p.time).point_id


def ls_cmd(args: argparse.Namespace) -> int:
    disk = _open_disk(open_repository(args), args.point)
    point_id = disk.reader.point_id
    if args.path is None:
        if args.json:
            emit_json(
                {
                    "point": point_id,
                    "size": disk.reader.size,
                    "scheme": disk.scheme,
                    "partitions": [v.to_dict() for v in disk.volumes],
                }
            )
            return 0
        say(f"point {point_id}: {human_size(disk.reader.size)} disk, partition table: {disk.scheme}")
        print(f"{'NAME':<6} {'OFFSET':>14} {'SIZE':>10}  {'FILESYSTEM':<10} TYPE")
        for v in disk.volumes:
            name = f" {v.name!r}" if v.name else ""
            print(f"{v.label:<6} {v.offset:>14} {human_size(v.size):>10}  {v.found:<10} {v.type}{name}")
        return 0
    volume, path = disk.resolve(args.path)
    fs = disk.filesystem(volume)
    entry = fs.lookup(path)
    entries = fs.children(entry) if entry.kind == "dir" else [entry]
    if args.json:
        emit_json(
            {
                "point": point_id,
                "partition": volume.number,
                "filesystem": fs.kind,
                "path": path,
                "type": entry.kind,
                "entries": [e.to_dict() for e in entries],
            }
        )
        return 0
    for e in entries:
        print(_ls_line(e))
    return 0


def _ls_line(entry: Entry) -> str:
    mode = stat.filemode(entry.mode)
    when = datetime.fromtimestamp(entry.mtime_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
    name = entry.name + ("/" if entry.kind == "dir" else "")
    if entry.target is not None:
        name += f" -> {entry.target}"
    return f"{mode} {entry.size:>12} {when} {name}"


def get_cmd(args: argparse.Namespace) -> int:
    from shared.restore.files import extract

    disk = _open_disk(open_repository(args), args.point)
    volume, path = disk.resolve(args.path)
    fs = disk.filesystem(volume)
    entry = fs.lookup(path)
    name = entry.name or volume.label  # the root of a partition extracts as DIR/p1
    total = entry.size if entry.kind == "file" else 0
    with progress(f"extract {entry.name or path}", total, enabled=not args.json and total > 0) as advance:
        result = extract(fs, entry, args.out, name=name, overwrite=args.overwrite, progress=advance)
    doc = {
        **result.to_dict(),
        "point": disk.reader.point_id,
        "source": args.path,
        "blocks_fetched": disk.reader.blocks_fetched,
        "requests": disk.reader.requests,
    }
    if args.json:
        emit_json(doc)
        return 0
    say(
        f"extracted {args.path} to {result.path}: {result.files} files, {result.folders} folders, "
        f"{result.symlinks} symlinks, {human_size(result.bytes_written)}"
    )
    for skipped in result.skipped:
        say(f"  skipped {skipped} (device, pipe or socket)")
    return 0
