"""Repository commands: repo init, points, verify, forget, prune."""

from __future__ import annotations

import argparse

from shared.cli.session import (
    add_repo_options,
    emit_json,
    human_size,
    open_repository,
    read_passphrase,
    say,
    store_for,
)
from shared.core.clock import SystemClock, parse_time
from shared.core.errors import IntegrityError, UsageError
from shared.repo.point import Point
from shared.repo.repository import Repository

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    repo = commands.add_parser("repo", help="create repositories", description="Create repositories.")
    repo_commands = repo.add_subparsers(dest="repo_command", metavar="COMMAND", required=True)
    init = repo_commands.add_parser(
        "init",
        help="create a new, empty repository",
        description="Create a new, empty, encrypted repository (and the blob container if missing).",
        epilog="example:\n  BULWARK_PASSWORD=... bulwark repo init --repo /backups/bulwark",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_repo_options(init)
    init.set_defaults(run=repo_init)

    points = commands.add_parser("points", help="list restore points", description="List restore points, oldest first.")
    add_repo_options(points)
    points.add_argument("--json", action="store_true", help="print a JSON list (each object has key 'point')")
    points.set_defaults(run=list_points)

    verify = commands.add_parser(
        "verify",
        help="check that every restore point can be restored",
        description="Check the repository: every index, pack trailer, point and referenced block. Names each "
        "damaged object and the restore points it breaks. Exits 6 when damage is found.",
    )
    add_repo_options(verify)
    verify.add_argument("--read-data", action="store_true", help="also decrypt and re-hash every stored block")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(run=verify_cmd)

    forget = commands.add_parser(
        "forget",
        help="remove restore points by a retention policy",
        description="Remove restore points by a retention policy, applied per source disk. The data they "
        "alone used is freed by `bulwark prune`. Every kept point says which rule kept it.",
        epilog="example:\n  bulwark forget --repo /backups --keep-last 3 --keep-daily 7 --keep-monthly 12",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_repo_options(forget)
    for rule, what in (
        ("last", "the N newest points"),
        ("daily", "the newest point of each of the last N days"),
        ("weekly", "... of N ISO weeks"),
        ("monthly", "... of N months"),
        ("yearly", "... of N years"),
    ):
        forget.add_argument(f"--keep-{rule}", type=_count, default=0, metavar="N", help=f"keep {what}")
    forget.add_argument("--dry-run", action="store_true", help="show the decision, delete nothing")
    forget.add_argument("--json", action="store_true", help="print keep/remove/reasons as JSON")
    forget.set_defaults(run=forget_cmd)

    prune = commands.add_parser(
        "prune",
        help="delete data no restore point references",
        description="Delete stored data that no restore point references: leftovers of forgotten points and "
        "of interrupted backups. Safe while backups run (it then defers, and says so).",
    )
    add_repo_options(prune)
    prune.add_argument("--dry-run", action="store_true", help="report what would be deleted")
    prune.add_argument("--json", action="store_true", help="print the report as JSON")
    prune.set_defaults(run=prune_cmd)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def repo_init(args: argparse.Namespace) -> int:
    store = store_for(args.repo, create=True)
    created = Repository.init(store, read_passphrase(args.password_file, confirm=True), SystemClock())
    say(f"created repository {created.config.repo_id} at {store.describe()}")
    say("keep the passphrase safe: without it nobody can read the data, us included")
    return 0


def list_points(args: argparse.Namespace) -> int:
    points = open_repository(args).list_points()
    if args.json:
        emit_json(
            [
                {
                    "point": p.point_id,
                    "kind": p.kind,
                    "time": p.time,
                    "source": p.source,
                    "host": p.host,
                    "parent": p.parent,
                    "tags": p.tags,
                    "size": _size(p),
                    "stats": p.stats,
                }
                for p in points
            ]
        )
        return 0
    if not points:
        say("no restore points yet")
        return 0
    print(f"{'point':16}  {'time (UTC)':19}  {'kind':6}  {'size':>10}  source")
    for p in points:
        size = human_size(_size(p))
        tags = " " + ",".join(f"{k}={v}" for k, v in sorted(p.tags.items())) if p.tags else ""
        print(f"{p.point_id:16}  {p.time[:19].replace('T', ' '):19}  {p.kind:6}  {size:>10}  {p.source}{tags}")
    return 0


def _size(point: Point) -> int:
    """Logical size: the disk for an image, the members' total for a file set."""
    if point.image is not None:
        return point.image.size
    if point.files is not None:
        return sum(member.size for member in point.files.members)
    return 0


def verify_cmd(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `bulwark` starts faster for every other command.
    from shared.repo.checker import verify_repository

    report = verify_repository(open_repository(args), read_data=args.read_data)
    if args.json:
        emit_json(report.to_dict())
    else:
        for problem in report.problems:
            affected = ", ".join(problem.points) or "none"
            say(f"damaged {problem.name}: {problem.message}; restore points affected: {affected}")
        status = "ok" if report.ok else f"found {len(report.problems)} problem(s)"
        details = [f"{report.points} points", f"{report.packs} packs"]
        if args.read_data:
            details.append(f"{report.blocks} blocks read")
        if report.unreferenced_packs:
            details.append(f"{report.unreferenced_packs} unreferenced packs (bulwark prune removes them)")
        say(f"verify {status}: {', '.join(details)}")
    if not report.ok:
        return IntegrityError.exit_code
    return 0


def forget_cmd(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `bulwark` starts faster for every other command.
    from shared.core.retention import PointRef, RetentionPolicy, apply_retention

    policy = RetentionPolicy(args.keep_last, args.keep_daily, args.keep_weekly, args.keep_monthly, args.keep_yearly)
    if policy.is_empty:
        raise UsageError(
            "no keep rule given; refusing to forget every point",
            hint="pass at least one of --keep-last/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly",
        )
    repository = open_repository(args)
    points = repository.list_points()
    decision = apply_retention([PointRef(p.point_id, parse_time(p.time), p.source) for p in points], policy)
    if not args.dry_run:
        for point_id in decision.remove:
            repository.delete_point(point_id)
    if args.json:
        emit_json(
            {"keep": decision.keep, "remove": decision.remove, "reasons": decision.reasons, "dry_run": args.dry_run}
        )
        return 0
    for point_id in decision.keep:
        say(f"keep   {point_id}  ({'; '.join(decision.reasons[point_id])})")
    for point_id in decision.remove:
        say(f"{'would remove' if args.dry_run else 'remove'} {point_id}")
    return 0


def prune_cmd(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `bulwark` starts faster for every other command.
    from shared.repo.prune import prune_repository

    report = prune_repository(open_repository(args), dry_run=args.dry_run)
    if args.json:
        emit_json(report.to_dict())
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    say(
        f"prune: {report.packs_total} packs, {report.packs_garbage} unused, {verb} "
        f"{report.packs_garbage if args.dry_run else report.packs_deleted} "
        f"({human_size(report.bytes_freed)} freed)" + (f"; {report.deferred}" if report.deferred else "")
    )
    return 0
