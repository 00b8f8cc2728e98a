"""``bulwark restore sql`` and ``bulwark restore files``: subcommands of the ``restore`` group.

``restore sql`` goes through the function app's HTTP API (POST /api/restores/sql, then the status
link until the restore ends): the import needs the target server's admin password and a SAS for the
staging blob, which the app makes from its own references and storage key. Without the app, rebuild
the BACPAC with ``bulwark restore-bacpac`` and import it with SqlPackage or the portal.

``restore files`` extracts from an image point with nothing but the repository (``bulwark files get``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from shared.cli import files_commands
from shared.cli.session import add_repo_options, emit_json, say
from shared.core.errors import (
    AzureOperationFailedError,
    BulwarkError,
    ConfigError,
    PointNotFoundError,
    UsageError,
)

__all__ = ["add_files_commands", "add_sql_commands", "register_restore_group"]

APP_ENV = "BULWARK_APP_URL"
KEY_ENV = "BULWARK_FUNCTION_KEY"
_TERMINAL = ("Completed", "Failed", "Terminated")

SQL_EPILOG = f"""\
The restore runs in the function app (through its HTTP API): a worker rebuilds the BACPAC from the
repository into the staging container, the app imports it with ARM and deletes the staging blob.
Without the app: `bulwark restore-bacpac POINT FILE --repo ...`, then import FILE with SqlPackage.

POINT is a catalog point id (GET /api/points?resource=<database id>&kind=bacpac); with --repo it is
a repository point id, and --login-file names the server admin password file the app reads.

environment:
  {APP_ENV}      the app, e.g. http://127.0.0.1:7071 (or --app)
  {KEY_ENV}  its function key (x-functions-key)

examples:
  bulwark restore sql bak-1a2b3c4d5e6f-0f1e2d3c4b5a --server /subscriptions/.../servers/sql-prod \\
      --name sales-restored
  bulwark restore sql bak-1a2b3c4d5e6f-0f1e2d3c4b5a --server /subscriptions/.../servers/sql-prod \\
      --name sales-new --swap-with-original --yes      # sales -> sales-old-<time>, sales-new -> sales
  bulwark restore sql 3f2a9c --repo /backups --password-file repo.pass --login-file /run/secrets/sql \\
      --server /subscriptions/.../servers/sql-dr --name sales --app http://127.0.0.1:7071

exit codes: 2 refused (the name exists without --yes, a bad server or name), 5 unknown point,
3 the app cannot be reached, 9 the restore ran and failed (the reason is printed).
"""

FILES_EPILOG = (
    files_commands.PATHS
    + """
examples:
  bulwark restore files 3f2a9c p1:/etc/nginx --out ./restored --repo /backups   # ./restored/nginx/...
  bulwark restore files latest /var/log/syslog --out . --repo /backups
"""
)


def register_restore_group(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """A minimal ``restore`` group holding ``sql`` and ``files`` (until the VM restore commands own it)."""
    group = commands.add_parser(
        "restore",
        help="restore a database or files",
        description="Restore a SQL database from a BACPAC point (through the app), or files from a disk image point.",
    )
    subcommands = group.add_subparsers(dest="restore_command", metavar="COMMAND", required=True)
    add_sql_commands(subcommands)
    add_files_commands(subcommands)


def add_sql_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sql = subparsers.add_parser(
        "sql",
        help="restore a BACPAC point into a new database (through the app's HTTP API)",
        description="Rebuild a BACPAC point from the repository and import it into a new database on a "
        "server, optionally taking the original database's name (the original is renamed aside and kept).",
        epilog=SQL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sql.add_argument("point", metavar="POINT", help="catalog point id (or, with --repo, a repository point id)")
    sql.add_argument("--server", required=True, metavar="ID", help="the target SQL server's resource id")
    sql.add_argument("--name", required=True, metavar="NEW", help="the new database's name")
    sql.add_argument(
        "--swap-with-original",
        action="store_true",
        help="after the import, rename the original <name>-old-<time> and give the restored one its name",
    )
    sql.add_argument("--yes", action="store_true", help="confirm replacing a name (swap, or a NEW that exists)")
    sql.add_argument("--app", metavar="URL", default=os.environ.get(APP_ENV), help=f"the app (default: ${APP_ENV})")
    sql.add_argument("--repo", metavar="REPO", help="the repository of a point the catalog does not know")
    sql.add_argument("--password-file", type=Path, metavar="FILE", help="with --repo: its passphrase file (a path)")
    sql.add_argument("--login-file", type=Path, metavar="FILE", help="the server admin password file (a path)")
    sql.add_argument("--original", metavar="ID", help="with --repo and --swap-with-original: the original database")
    sql.add_argument("--no-wait", action="store_true", help="print the restore's id and status link, and return")
    sql.add_argument("--timeout", type=float, default=24 * 3600, metavar="S", help="give up waiting after S seconds")
    sql.add_argument("--json", action="store_true", help="print the result as JSON")
    sql.set_defaults(run=sql_cmd)


def add_files_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    files = subparsers.add_parser(
        "files",
        help="extract a file or folder from a disk image point (same as `bulwark files get`)",
        description="Extract a file, a symlink or a whole folder from a disk image point into DIR/NAME, reading "
        "only what it needs from the repository; nothing is left half-written after a failure.",
        epilog=FILES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files.add_argument("point", metavar="POINT", help="image point id, unique prefix, or 'latest'")
    files.add_argument("path", metavar="PATH", help="[pN:]/path of the file or folder to extract")
    files.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to extract into (created)")
    add_repo_options(files)
    files.add_argument("--overwrite", action="store_true", help="replace DIR/NAME if it exists")
    files.add_argument("--json", action="store_true", help="print the result as JSON")
    files.set_defaults(run=files_commands.get_cmd)


def sql_cmd(args: argparse.Namespace) -> int:
    if not args.app:
        raise UsageError("no function app given", hint=f"pass --app URL or set {APP_ENV}")
    key = os.environ.get(KEY_ENV, "")
    body: dict[str, Any] = {"point": args.point, "server": args.server, "name": args.name}
    if args.swap_with_original:
        body["swap_with_original"] = True
    if args.yes:
        body["confirm"] = True
    if args.repo:
        if args.password_file is None:
            raise UsageError("--repo needs --password-file", hint="the app reads the passphrase from that file")
        body["repository"] = {"location": args.repo, "passphrase": {"file": str(args.password_file.resolve())}}
    if args.login_file is not None:
        body["login"] = {"file": str(args.login_file.resolve())}
    if args.original:
        body["original"] = args.original
    base = args.app.rstrip("/")
    status, answer = _call(f"{base}/api/restores/sql", key, "POST", body)
    if status != 202:
        raise _refusal(status, answer)
    link = str(answer.get("statusQueryGetUri") or answer["status"])
    if args.no_wait:
        if args.json:
            emit_json(answer)
        else:
            print(answer["id"])
            say(f"restore {answer['id']} started; follow it at {answer['status']}")
        return 0
    say(f"restore {answer['id']} started")
    deadline = time.monotonic() + args.timeout
    last = ""
    while True:
        status, document = _call(link, key, "GET")
        runtime = str(document.get("runtimeStatus") or document.get("runtime_status") or "")
        custom = document.get("customStatus") or document.get("custom_status") or {}
        phase = str(custom.get("phase", "")) if isinstance(custom, dict) else ""
        if phase and phase != last and not args.json:
            say(f"  {phase}")
            last = phase
        if runtime in _TERMINAL:
            break
        if time.monotonic() > deadline:
            raise ConfigError(f"restore {answer['id']} is still running after {args.timeout:.0f} s", hint=link)
        time.sleep(2)
    found = document.get("output")
    output: dict[str, Any] = found if isinstance(found, dict) else {}
    if args.json:
        emit_json(output or document)
    if runtime != "Completed" or output.get("status") != "Success":
        reasons = "; ".join(output.get("reasons") or []) or f"the orchestration ended {runtime}"
        raise AzureOperationFailedError(f"restore {answer['id']} failed: {reasons}")
    if not args.json:
        aside = (
            f" ({output['aside_id'].rsplit('/', 1)[-1]} is the database it replaced)" if output.get("aside_id") else ""
        )
        say(f"restored into {output['database_id']}{aside}")
    return 0


def _call(url: str, key: str, method: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("x-functions-key", key)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _json(error.read())
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the app at {url.split('/api/', 1)[0]}: {exc}", hint=f"check --app or ${APP_ENV}"
        ) from None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw[:200].decode(errors="replace")}
    return document if isinstance(document, dict) else {"value": document}


def _refusal(status: int, answer: dict[str, Any]) -> BulwarkError:
    inner = answer.get("error")
    error: dict[str, Any] = inner if isinstance(inner, dict) else answer
    message = str(error.get("message") or f"the app answered {status}")
    hint = error.get("hint")
    problems = error.get("problems") or []
    if problems:
        message = "; ".join(f"{p.get('path')}: {p.get('message')} ({p.get('fix')})" for p in problems)
    if status == 404:
        return PointNotFoundError(message, hint=hint)
    if status in (401, 403):
        return ConfigError(f"the app refused the function key ({status})", hint=f"set {KEY_ENV}")
    if 400 <= status < 500:
        return UsageError(message, hint=hint)
    return AzureOperationFailedError(f"the app answered {status}: {message}", hint=hint)
