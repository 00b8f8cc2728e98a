"""Report commands: the function app's sessions, RPO compliance and cost, from its catalog.

    bulwark report --session SESSION_ID [--out FILE]     one session's HTML report
    bulwark report --policy ID [--out FILE]              a policy's HTML report
    bulwark status [--policy ID]                         a summary per policy for the terminal

The catalog is found like ``bulwark sessions`` finds it (``--stack``, ``--table-endpoint`` or the
environment); the stored policies are in the same storage account. The Azure SDK and the report
modules are imported only when a command runs, so ``bulwark --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from shared.cli.catalog_commands import LOCATION_HELP, POINTS_TABLE, SESSIONS_TABLE, _add_location, _connection_string
from shared.cli.session import say
from shared.core.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from shared.policy.store import PolicyStore
    from shared.report.gather import Reports

__all__ = ["register"]

POLICIES_TABLE = "bulwarkpolicies"
"""The function app's policy table (``shared.wiring``; not imported here to keep start-up light)."""

REPORT_EXAMPLES = """\
examples:
  bulwark report --session 'prod-vms@run-20261125T031500Z-1a2b3c' --stack .local/stack.json
  bulwark report --policy prod-vms --out prod-vms.html --table-endpoint https://ACCOUNT.table.core.windows.net
  bulwark report --policy prod-vms --prices my-prices.json    # your own price table (same shape)

The page is self-contained (inline CSS and SVG, no script, nothing fetched): open it in any browser,
attach it to a ticket. The cost estimate uses shared/report/prices.json unless --prices names another.
"""

STATUS_EXAMPLES = """\
examples:
  bulwark status --stack .local/stack.json
  bulwark status --policy prod-vms --table-endpoint https://ACCOUNT.table.core.windows.net
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="write a session's or a policy's HTML report",
        description="Write an HTML report: per resource the result, duration, data read and stored and throughput; "
        "charts of the policy's last sessions; RPO compliance per resource; the estimated monthly cost.",
        epilog=REPORT_EXAMPLES + "\n" + LOCATION_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = report.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", metavar="SESSION_ID", help="the session to report (as `bulwark sessions` shows)")
    which.add_argument("--policy", metavar="ID", help="the policy to report")
    report.add_argument("--out", type=Path, metavar="FILE", help="where to write it (default: bulwark-report-ID.html)")
    report.add_argument("--prices", type=Path, metavar="FILE", help="a price table like shared/report/prices.json")
    _add_location(report)
    report.set_defaults(run=write_report)

    status = commands.add_parser(
        "status",
        help="summarize policies: last session, RPO compliance, cost",
        description="Print, per policy (or for one), its last session, how its recent sessions went, which "
        "resources miss their RPO (no restore point within the schedule's interval) and the estimated monthly cost.",
        epilog=STATUS_EXAMPLES + "\n" + LOCATION_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("--policy", metavar="ID", help="only this policy")
    status.add_argument("--prices", type=Path, metavar="FILE", help="a price table like shared/report/prices.json")
    _add_location(status)
    status.set_defaults(run=show_status)


def write_report(args: argparse.Namespace) -> int:
    from shared.report.page import policy_page, session_page

    if args.session is not None:
        _check("session", args.session)
    else:
        _check("policy", args.policy)
    with _reports(args) as (reports, _):
        if args.session is not None:
            page = session_page(reports.session_report(args.session))
        else:
            page = policy_page(reports.policy_report(args.policy))
    name = args.session or args.policy
    out: Path = args.out or Path(f"bulwark-report-{_file_safe(name)}.html")
    _write_atomically(out, page)
    say(f"wrote {out} ({len(page.encode()):,} bytes)")
    return 0


def show_status(args: argparse.Namespace) -> int:
    from shared.report.terminal import status_text

    if args.policy is not None:
        _check("policy", args.policy)
    with _reports(args) as (reports, store):
        if args.policy is not None:
            found = [reports.policy_report(args.policy)]
        else:
            ids = sorted(stored.policy.id for stored in store.list())
            found = [reports.policy_report(policy_id) for policy_id in ids]
    sys.stdout.write(status_text(found))
    return 0


@contextmanager
def _reports(args: argparse.Namespace) -> Iterator[tuple[Reports, PolicyStore]]:
    """Reports over the catalog and stored policies at the location the flags or the environment give."""
    from azure.data.tables import TableClient

    from shared.catalog.table import AzureTableCatalog
    from shared.core.clock import SystemClock
    from shared.policy.table_store import AzureTablePolicyStore
    from shared.report.gather import Reports
    from shared.report.prices import load_prices

    prices = load_prices(args.prices)
    connection = _connection_string(args)
    names = (SESSIONS_TABLE, POINTS_TABLE, POLICIES_TABLE)
    if connection is not None:
        tables = [TableClient.from_connection_string(connection, table_name=name) for name in names]
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        endpoint = str(args.table_endpoint).rstrip("/")
        tables = [TableClient(endpoint, name, credential=credential) for name in names]
    sessions, points, policies = tables
    with sessions, points, policies:
        store = AzureTablePolicyStore(policies)
        yield Reports(AzureTableCatalog(sessions, points), store, prices, SystemClock()), store


def _check(what: str, value: str) -> None:
    from shared.catalog.model import CATALOG_ID
    from shared.policy.formats import POLICY_ID

    problem = (POLICY_ID if what == "policy" else CATALOG_ID).check(value)
    if problem is not None:
        raise UsageError(f"--{what}: {problem[0]}", hint=problem[1])


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _write_atomically(path: Path, text: str) -> None:
    """The whole page or nothing: a temporary file beside it, renamed into place."""
    folder = path.resolve().parent
    if not folder.is_dir():
        raise ConfigError(f"--out: the folder {folder} does not exist", hint="create it, or write elsewhere")
    handle, temporary = tempfile.mkstemp(prefix=".bulwark-report-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as output:
            output.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
