"""``bulwark restore sql`` and ``bulwark restore files``: subcommands of the ``restore`` group.

``restore sql`` goes through the function app's HTTP API (POST /api/restores/sql, then the status
link until the restore ends): the import needs the target server's admin password and a SAS for the
staging blob, which the app makes from its own references and storage key. Without the app, rebuild
the BACPAC with ``bulwark restore-bacpac`` and import it with SqlPackage or the portal.

``restore files`` extracts from an image point with nothing but the repository (``bulwark files get``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from shared.cli import files_commands
from shared.cli.app_client import APP_ENV, KEY_ENV, call, follow, refusal
from shared.cli.session import add_repo_options, emit_json, say
from shared.core.errors import (
    AzureOperationFailedError,
    UsageError,
)

__all__ = ["add_files_commands", "add_sql_commands"]


SQL_EPILOG = f"""\
The restore runs in the function app (through its HTTP API): a worker rebuilds the BACPAC from the
repository into the staging container, the app imports it with ARM and deletes the staging blob.
Without the app: `bulwark restore-bacpac POINT FILE --repo ...`, then import FILE with SqlPackage.

POINT is a catalog point id (GET /api/points?resource=<database id>&kind=bacpac); with --repo it is
a repository point id. Secrets are named, never sent: --login-secret and --password-secret name
secrets in the app's Key Vault; --login-file and --password-file name files the app reads, which
only an app on the local stack accepts.

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
  bulwark restore sql 3f2a9c --repo https://acct.blob.core.windows.net/backups --password-secret repo-pass \\
      --login-secret sql-dr-admin --server /subscriptions/.../servers/sql-dr --name sales

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
    passphrase = sql.add_mutually_exclusive_group()
    passphrase.add_argument("--password-file", type=Path, metavar="FILE", help="with --repo: its passphrase file")
    passphrase.add_argument("--password-secret", metavar="NAME", help="with --repo: its passphrase's Key Vault secret")
    login = sql.add_mutually_exclusive_group()
    login.add_argument("--login-file", type=Path, metavar="FILE", help="the server admin password file")
    login.add_argument("--login-secret", metavar="NAME", help="the server admin password's Key Vault secret")
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
        if args.password_file is None and args.password_secret is None:
            raise UsageError(
                "--repo needs --password-secret or --password-file", hint="the app reads the passphrase from there"
            )
        body["repository"] = {"location": args.repo, "passphrase": _reference(args.password_file, args.password_secret)}
    if args.login_file is not None or args.login_secret is not None:
        body["login"] = _reference(args.login_file, args.login_secret)
    if args.original:
        body["original"] = args.original
    base = args.app.rstrip("/")
    status, answer = call(f"{base}/api/restores/sql", key, "POST", body)
    if status != 202:
        raise refusal(status, answer)
    link = str(answer.get("statusQueryGetUri") or answer["status"])
    if args.no_wait:
        if args.json:
            emit_json(answer)
        else:
            print(answer["id"])
            say(f"restore {answer['id']} started; follow it at {answer['status']}")
        return 0
    say(f"restore {answer['id']} started")
    runtime, document = follow(link, key, timeout=args.timeout, quiet=args.json, name=f"restore {answer['id']}")
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


def _reference(file: Path | None, secret: str | None) -> dict[str, str]:
    """Where the app finds a secret: a Key Vault secret of its own, or a file (local stack only)."""
    return {"key_vault_secret": secret} if secret is not None else {"file": str(Path(str(file)).resolve())}
