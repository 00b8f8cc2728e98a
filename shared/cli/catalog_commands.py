"""Catalog commands: the backup sessions and restore points the function app recorded.

    bulwark sessions [--policy ID] [--since T] [--until T] [--limit N] [--json]
    bulwark session SESSION_ID [--json]
    bulwark points --catalog [--resource ID] [--kind K] [--policy ID] [--limit N] [--json]

``bulwark points`` (registered by ``repo_commands``) lists a *repository's* points; here it gains
``--catalog`` (implied by ``--resource``/``--kind``), which lists the *catalog's* restore points
instead: snapshots, image-level and BACPAC points, with the sessions that made them.

Where the catalog is (the app's storage account, tables ``bulwarksessions``/``bulwarkpoints``):
``--stack FILE`` (local mode: the stack file's Azurite connection string; default
$BULWARK_LOCAL_STACK), ``--table-endpoint URL`` (Azure: signs in with azure-identity, e.g. ``az
login`` or a managed identity; default $BULWARK_CATALOG_ENDPOINT), or a connection string in
$BULWARK_CATALOG_CONNECTION_STRING (never a flag: it holds the account key).

The Azure SDK is imported only when a command runs, so ``bulwark --help`` stays fast.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.cli.session import emit_json, human_size, say
from shared.core.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from azure.data.tables import TableClient

    from shared.catalog.model import RestorePoint, Session
    from shared.catalog.table import AzureTableCatalog

__all__ = ["register"]

SESSIONS_TABLE = "bulwarksessions"
POINTS_TABLE = "bulwarkpoints"
"""The function app's catalog tables (``shared.wiring``; not imported here to keep start-up light)."""

LOCATION_HELP = """\
where the catalog is (the first that is given):
  --stack FILE             local mode: the Azurite of the local stack
  --table-endpoint URL     Azure: https://ACCOUNT.table.core.windows.net, signed in with azure-identity
                           (az login, a managed identity ...)
  $BULWARK_CATALOG_CONNECTION_STRING   a storage connection string (e.g. the app's AzureWebJobsStorage)
  $BULWARK_CATALOG_ENDPOINT            as --table-endpoint
  $BULWARK_LOCAL_STACK                 as --stack
"""

POINTS_CATALOG_NOTE = """\
repository or catalog:
  without --catalog, the points of the repository (--repo): what a restore reads;
  with --catalog (implied by --resource, --kind or --policy), the restore points the function app recorded
  in its catalog, newest first: snapshots, image-level and BACPAC points, and their sessions.

"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sessions = commands.add_parser(
        "sessions",
        help="list backup sessions from the catalog",
        description="List the backup sessions the function app recorded in its catalog, newest first: of one "
        "policy, or of every policy that has sessions.",
        epilog=LOCATION_HELP + "\nexample:\n  bulwark sessions --stack .local/stack.json --policy prod-vms --limit 5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sessions.add_argument("--policy", metavar="ID", help="only this policy's sessions")
    sessions.add_argument(
        "--since", type=_time, metavar="TIME", help="started at or after TIME (ISO 8601; UTC if no zone)"
    )
    sessions.add_argument("--until", type=_time, metavar="TIME", help="started before TIME")
    sessions.add_argument("--limit", type=_limit, default=20, metavar="N", help="at most N sessions (default 20)")
    sessions.add_argument("--json", action="store_true", help="print a JSON list of session records")
    _add_location(sessions)
    sessions.set_defaults(run=list_sessions)

    session = commands.add_parser(
        "session",
        help="show one backup session from the catalog",
        description="Show one backup session: its status and, per VM or database, the result, the reason, the "
        "snapshots and restore points, bytes read and stored, and the duration. A session appears in the "
        "catalog when it ends; while it runs, ask the app (GET /api/sessions/ID).",
        epilog=LOCATION_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    session.add_argument("session_id", metavar="SESSION_ID", help="the session's id (as `bulwark sessions` shows it)")
    session.add_argument("--json", action="store_true", help="print the session record as JSON")
    _add_location(session)
    session.set_defaults(run=show_session)

    _extend_points(commands)


def _extend_points(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Give the repository's ``points`` command the catalog listing (``--catalog``)."""
    points = commands.choices.get("points")
    if points is None:  # registered alone (tests): the catalog listing only
        points = commands.add_parser("points", help="list restore points")
        points.add_argument("--json", action="store_true", help="print a JSON list")
        repository_points: Callable[[argparse.Namespace], int] | None = None
    else:
        repository_points = points.get_default("run")
    points.description = (points.description or "List restore points.") + (
        " With --catalog: the restore points in the function app's catalog instead of a repository's."
    )
    points.formatter_class = argparse.RawDescriptionHelpFormatter
    points.epilog = (
        POINTS_CATALOG_NOTE
        + LOCATION_HELP
        + (
            "\nexamples:\n  bulwark points --repo /backups/bulwark\n"
            "  bulwark points --catalog --stack .local/stack.json --resource /subscriptions/.../virtualMachines/web-1"
        )
    )
    group = points.add_argument_group("catalog")
    group.add_argument(
        "--catalog", action="store_true", help="list the catalog's restore points instead of a repository's"
    )
    group.add_argument("--resource", metavar="ID", help="the VM or database (ARM id); default: every resource")
    group.add_argument("--kind", choices=("snapshot", "image", "bacpac"), help="only points of this kind")
    group.add_argument("--policy", metavar="ID", help="only points this policy made")
    group.add_argument("--limit", type=_limit, default=50, metavar="N", help="at most N points (default 50)")
    _add_location(group)

    def run(args: argparse.Namespace) -> int:
        if args.catalog or args.resource or args.kind or args.policy:
            return list_catalog_points(args)
        if repository_points is None:
            raise UsageError("give --catalog to list the catalog's restore points")
        return repository_points(args)

    points.set_defaults(run=run)


def _add_location(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--stack",
        type=Path,
        metavar="FILE",
        help="the local stack's stack.json (local mode)",
    )
    parser.add_argument(
        "--table-endpoint",
        metavar="URL",
        help="the Table endpoint of the app's storage account (Azure)",
    )


# -- commands --------------------------------------------------------------------------------------


def list_sessions(args: argparse.Namespace) -> int:
    from shared.services.api import SessionApi

    if args.policy is not None:
        _check_policy_id(args.policy)
    if args.since is not None and args.until is not None and args.until <= args.since:
        raise UsageError("--until is not after --since", hint="give a later --until, or leave one out")
    with _catalog(args) as (catalog, sessions_table, _):
        api = SessionApi(catalog, lambda: _policies_with_sessions(sessions_table))
        found = api.sessions(args.policy, since=args.since, until=args.until, limit=args.limit)
    if args.json:
        from shared.catalog.model import to_dict

        emit_json([to_dict(s) for s in found])
        return 0
    if not found:
        say("no sessions" + (f" of policy '{args.policy}'" if args.policy else "") + " in the catalog")
        return 0
    print(
        f"{'STARTED (UTC)':<17}  {'STATUS':<7}  {'TRIGGER':<9}  {'RES':>3}  {'READ':>10}  {'STORED':>10}  "
        f"{'TOOK':>8}  SESSION"
    )
    for s in found:
        print(
            f"{_when(s.started):<17}  {s.status.value:<7}  {s.trigger.value:<9}  {len(s.resources):>3}  "
            f"{human_size(s.bytes_read):>10}  {human_size(s.bytes_stored):>10}  {_took(s.duration):>8}  {s.session_id}"
        )
    return 0


def show_session(args: argparse.Namespace) -> int:
    from shared.catalog.model import CATALOG_ID, to_dict

    problem = CATALOG_ID.check(args.session_id)
    if problem is not None:
        raise UsageError(f"SESSION_ID: {problem[0]}", hint=problem[1])
    with _catalog(args) as (catalog, _, _):
        session = catalog.get_session(args.session_id)
    if args.json:
        emit_json(to_dict(session))
        return 0
    _print_session(session)
    return 0


def list_catalog_points(args: argparse.Namespace) -> int:
    from shared.catalog.model import PointKind, to_dict
    from shared.policy.formats import RESOURCE_ID

    if args.resource is not None:
        problem = RESOURCE_ID.check(args.resource)
        if problem is not None:
            raise UsageError(f"--resource: {problem[0]}", hint=problem[1])
    if args.policy is not None:
        _check_policy_id(args.policy)
    kind = PointKind(args.kind) if args.kind else None
    with _catalog(args) as (catalog, _, points_table):
        if args.resource is not None:
            found = catalog.list_points(args.resource, kind=kind, limit=None if args.policy else args.limit)
        else:
            found = _every_point(points_table, kind)
    found = [p for p in found if args.policy is None or p.policy_id == args.policy][: args.limit]
    if args.json:
        emit_json([to_dict(p) for p in found])
        return 0
    if not found:
        say("no restore points in the catalog" + (f" for {args.resource}" if args.resource else ""))
        return 0
    print(f"{'TIME (UTC)':<17}  {'KIND':<8}  {'SIZE':>10}  {'RESOURCE':<24}  {'POINT':<28}  SESSION")
    for p in found:
        print(
            f"{_when(p.time):<17}  {p.kind.value:<8}  {human_size(p.size):>10}  {_name(p.resource_id):<24}  "
            f"{p.point_id:<28}  {p.session_id}"
        )
    return 0


# -- output ----------------------------------------------------------------------------------------


def _print_session(session: Session) -> None:
    print(f"session   {session.session_id}")
    print(f"policy    {session.policy_id}")
    print(f"status    {session.status.value}" + (f": {session.reason}" if session.reason else ""))
    trigger = session.trigger.value + (f" (slot {_when(session.slot)})" if session.slot else "")
    print(f"trigger   {trigger}" + (", image-level" if session.image_backup else ", snapshots only"))
    ended = _when(session.ended) if session.ended else "-"
    print(f"started   {_when(session.started)}   ended {ended}   took {_took(session.duration)}")
    print(f"bytes     read {human_size(session.bytes_read)}, stored {human_size(session.bytes_stored)}")
    if not session.resources:
        print("resources none")
        return
    print(f"resources {len(session.resources)}")
    for result in session.resources:
        print(f"  {result.status.value:<7}  {result.kind.value:<12}  {_name(result.resource_id)}")
        print(f"           {result.resource_id}")
        facts = [f"read {human_size(result.bytes_read)}", f"stored {human_size(result.bytes_stored)}"]
        if result.duration is not None:
            seconds = max(result.duration.total_seconds(), 1e-3)
            facts += [f"took {_took(result.duration)}", f"{human_size(result.bytes_read / seconds)}/s"]
        print(f"           {', '.join(facts)}")
        for snapshot in result.snapshot_ids:
            print(f"           snapshot {snapshot}")
        for point in result.point_ids:
            print(f"           point    {point}")
        if result.reason:
            print(f"           reason   {result.reason}")


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if moment else "-"


def _took(duration: dt.timedelta | None) -> str:
    if duration is None:
        return "-"
    seconds = int(duration.total_seconds())
    if seconds < 60:
        return f"{duration.total_seconds():.1f}s"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _name(resource_id: str) -> str:
    """The last segment of an ARM id (a VM's or database's name); the id when it has none."""
    return resource_id.rstrip("/").rsplit("/", 1)[-1] or resource_id


# -- arguments -------------------------------------------------------------------------------------


def _time(text: str) -> dt.datetime:
    """argparse type: ISO 8601; a time without a zone is UTC (a person typing at a terminal)."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-11-01T00:00Z") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 1000")
    return int(text)


def _check_policy_id(policy_id: str) -> None:
    from shared.policy.formats import POLICY_ID

    problem = POLICY_ID.check(policy_id)
    if problem is not None:
        raise UsageError(f"--policy: {problem[0]}", hint=problem[1])


# -- the catalog's location ------------------------------------------------------------------------


@contextmanager
def _catalog(args: argparse.Namespace) -> Iterator[tuple[AzureTableCatalog, TableClient, TableClient]]:
    """The catalog (and its two tables) at the location the flags or the environment give."""
    from azure.data.tables import TableClient

    from shared.catalog.table import AzureTableCatalog

    connection = _connection_string(args)
    if connection is not None:
        sessions = TableClient.from_connection_string(connection, table_name=SESSIONS_TABLE)
        points = TableClient.from_connection_string(connection, table_name=POINTS_TABLE)
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        endpoint = str(args.table_endpoint).rstrip("/")
        sessions = TableClient(endpoint, SESSIONS_TABLE, credential=credential)
        points = TableClient(endpoint, POINTS_TABLE, credential=credential)
    with sessions, points:
        yield AzureTableCatalog(sessions, points), sessions, points


def _connection_string(args: argparse.Namespace) -> str | None:
    """The connection string to use, or None for ``args.table_endpoint`` (set from the flag or the
    environment); a UsageError when nothing names the catalog."""
    if args.stack is not None:
        return _stack_connection(Path(args.stack))
    if not args.table_endpoint:
        connection = os.environ.get("BULWARK_CATALOG_CONNECTION_STRING")
        if connection:
            return connection
        args.table_endpoint = os.environ.get("BULWARK_CATALOG_ENDPOINT") or None
        if not args.table_endpoint and os.environ.get("BULWARK_LOCAL_STACK"):
            return _stack_connection(Path(os.environ["BULWARK_LOCAL_STACK"]))
    if args.table_endpoint:
        if not str(args.table_endpoint).startswith(("https://", "http://")):
            raise UsageError(
                f"--table-endpoint {args.table_endpoint!r} is not a URL",
                hint="e.g. https://ACCOUNT.table.core.windows.net",
            )
        return None
    raise UsageError(
        "no catalog given",
        hint="pass --stack FILE (local mode) or --table-endpoint URL (Azure), or set BULWARK_CATALOG_CONNECTION_STRING",
    )


def _stack_connection(path: Path) -> str:
    """The Azurite connection string of a local stack file."""
    try:
        stack = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"the stack file {path} does not exist", hint="start the stack with `make stack-up`"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the stack file {path}: {exc}") from None
    connection = stack.get("storage_connection_string") if isinstance(stack, dict) else None
    if not isinstance(connection, str) or not connection:
        raise ConfigError(f"the stack file {path} has no storage_connection_string", hint="is it a stack.json?")
    return connection


def _policies_with_sessions(sessions: TableClient) -> list[str]:
    """Every policy that has a session in the catalog (from the sessions' pointer entities)."""
    from azure.core.exceptions import AzureError

    from shared.catalog.table import POINTER_PARTITION
    from shared.policy.azure_table import translate_table_error

    try:
        entities = sessions.query_entities(
            "PartitionKey eq @partition", parameters={"partition": POINTER_PARTITION}, select=["PolicyId"]
        )
        return sorted({str(entity["PolicyId"]) for entity in entities})
    except AzureError as exc:
        raise translate_table_error(exc, "the list of sessions", sessions.table_name) from exc


def _every_point(points: TableClient, kind: Any) -> list[RestorePoint]:
    """Every restore point in the catalog (a scan: without --resource there is no key to go by), newest first."""
    from azure.core.exceptions import AzureError

    from shared.catalog.model import point_from_dict
    from shared.policy.azure_table import translate_table_error, unpack_document

    try:
        if kind is not None:
            entities = list(points.query_entities("Kind eq @kind", parameters={"kind": kind.value}))
        else:
            entities = list(points.list_entities())
    except AzureError as exc:
        raise translate_table_error(exc, "the list of restore points", points.table_name) from exc
    found = [point_from_dict(unpack_document(e, what=f"restore point in '{e.get('RowKey')}'")) for e in entities]
    found.sort(key=lambda p: p.point_id)
    found.sort(key=lambda p: p.time, reverse=True)
    return found
