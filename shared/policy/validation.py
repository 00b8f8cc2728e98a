"""The rules of a policy that span fields; each broken rule is one FieldProblem with a fix.

Field-by-field rules (types, ranges, formats, unknown fields) are the codec's; these run on a
policy the codec could read.
"""

from __future__ import annotations

import calendar
import json

from shared.core.errors import FieldProblem
from shared.policy.azure_ids import ResourceKind, id_key, resource_kind
from shared.policy.codec import join_path
from shared.policy.model import (
    AZURE_MAX_INCREMENTAL_SNAPSHOTS_PER_DISK,
    Policy,
    SecretRef,
    SqlMode,
    WorkerPlacement,
)
from shared.policy.schedule import Schedule
from shared.policy.scope import Scope
from shared.storage.location import AzureLocation, DirectoryLocation, parse_location

__all__ = ["check_policy", "check_schedule", "peak_snapshots_per_disk"]

_SCHEDULE_EXAMPLE = json.dumps({"time_zone": "Europe/Berlin", "daily": {"times": ["02:30"]}})
_RETENTION_EXAMPLE = json.dumps({"days": 30, "weekly": 8, "monthly": 12})


def peak_snapshots_per_disk(keep: int, *, image_backup: bool) -> int:
    """The most snapshots one disk can have at once under this policy.

    A session takes its snapshot before retention runs (+1); with image-level backup, the base of
    the last image-level backup is kept until the next image-level session completes, also when it
    is older than the ``keep`` newest (+1).
    """
    return keep + 1 + (1 if image_backup else 0)


def check_policy(policy: Policy) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    _check_scope(policy.scope, problems)
    problems.extend(check_schedule(policy.schedule, "schedule"))
    kinds = set(policy.scope.kinds)
    _check_vm_settings(policy, ResourceKind.VM in kinds, problems)
    _check_sql(policy, ResourceKind.SQL_DATABASE in kinds, problems)
    _check_repository(policy, problems)
    _check_secret(policy.encryption.passphrase, "encryption.passphrase", problems)
    concurrency = policy.concurrency
    if concurrency.workers_in_flight > concurrency.resources_in_flight:
        problems.append(
            FieldProblem(
                "concurrency.workers_in_flight",
                f"{concurrency.workers_in_flight} is more than concurrency.resources_in_flight "
                f"({concurrency.resources_in_flight}), and each worker serves one resource",
                f"lower it to {concurrency.resources_in_flight} or raise resources_in_flight",
            )
        )
    return problems


def check_schedule(schedule: Schedule, path: str) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if not (schedule.daily or schedule.weekly or schedule.monthly or schedule.yearly):
        problems.append(
            FieldProblem(
                path, "has no daily, weekly, monthly or yearly rule", 'add one, e.g. "daily": {"times": ["02:30"]}'
            )
        )
    monthly = schedule.monthly
    if monthly is not None:
        where = join_path(path, "monthly")
        by_week = monthly.week is not None or monthly.weekday is not None
        if monthly.day is not None and by_week:
            extra = "week" if monthly.week is not None else "weekday"
            problems.append(
                FieldProblem(
                    join_path(where, extra),
                    "cannot be combined with day",
                    'keep either "day" (e.g. 1) or "week" with "weekday" (e.g. "last" and "fri")',
                )
            )
        elif monthly.day is None and not by_week:
            problems.append(
                FieldProblem(where, "names no day", 'set "day" (1-31), or "week" and "weekday", e.g. "last" and "fri"')
            )
        elif monthly.day is None and monthly.week is None:
            problems.append(
                FieldProblem(join_path(where, "week"), "is missing; weekday needs it", 'add e.g. "week": "last"')
            )
        elif monthly.day is None and monthly.weekday is None:
            problems.append(
                FieldProblem(join_path(where, "weekday"), "is missing; week needs it", 'add e.g. "weekday": "fri"')
            )
    yearly = schedule.yearly
    if yearly is not None:
        longest = calendar.monthrange(2024, yearly.month)[1]  # a leap year: February has 29 days
        if yearly.day > longest:
            month = _MONTHS[yearly.month - 1]
            problems.append(
                FieldProblem(
                    join_path(path, "yearly.day"),
                    f"{month} has no day {yearly.day}",
                    f"use 1 to {longest}"
                    + (
                        " (29 runs on the 28th in common years, or never with short_month 'skip')"
                        if longest == 29
                        else ""
                    ),
                )
            )
    return problems


_FEB_29 = " (29 runs on the 28th in common years, or never with short_month 'skip')"
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _check_scope(scope: Scope, problems: list[FieldProblem]) -> None:
    if not (scope.subscriptions or scope.resource_groups or scope.resources):
        problems.append(
            FieldProblem(
                "scope",
                "selects nothing",
                "list subscriptions, resource_groups or resources (tags only filter subscriptions and groups)",
            )
        )
    elif scope.tags and not (scope.subscriptions or scope.resource_groups):
        problems.append(
            FieldProblem(
                "scope.tags",
                "filter the resources of scope.subscriptions and scope.resource_groups, and there are none",
                "add the subscriptions or resource groups to search, or drop the tags",
            )
        )
    for index, resource in enumerate(scope.resources):
        kind = resource_kind(resource)
        if kind is not None and kind not in scope.kinds:
            problems.append(
                FieldProblem(
                    f"scope.resources[{index}]",
                    f"is a {_KIND_NAMES[kind]}, but scope.kinds does not include '{kind}'",
                    f"add '{kind}' to scope.kinds or remove the resource",
                )
            )
    listed = {id_key(resource): index for index, resource in enumerate(scope.resources)}
    for index, excluded in enumerate(scope.exclude.resources):
        if id_key(excluded) in listed:
            problems.append(
                FieldProblem(
                    f"scope.exclude.resources[{index}]",
                    f"excludes scope.resources[{listed[id_key(excluded)]}], which the policy also lists",
                    "remove it from one of the two lists",
                )
            )
    included_tags = {tag.lower(): index for index, tag in enumerate(scope.tags)}
    for index, tag in enumerate(scope.exclude.tags):
        if tag.lower() in included_tags:
            problems.append(
                FieldProblem(
                    f"scope.exclude.tags[{index}]",
                    f"excludes every resource that scope.tags[{included_tags[tag.lower()]}] selects",
                    "remove it from one of the two lists",
                )
            )


_KIND_NAMES = {ResourceKind.VM: "virtual machine", ResourceKind.SQL_DATABASE: "SQL database"}


def _check_vm_settings(policy: Policy, has_vms: bool, problems: list[FieldProblem]) -> None:
    image = policy.image_backup
    if not has_vms:
        if policy.snapshots is not None:
            problems.append(
                FieldProblem(
                    "snapshots",
                    "applies to VMs, and scope.kinds has no 'vm'",
                    "add 'vm' to scope.kinds or remove snapshots",
                )
            )
        if image.enabled:
            problems.append(
                FieldProblem(
                    "image_backup.enabled",
                    "image-level backup applies to VMs, and scope.kinds has no 'vm'",
                    "add 'vm' to scope.kinds or set it to false",
                )
            )
        return
    if policy.snapshots is None:
        problems.append(
            FieldProblem(
                "snapshots",
                "is missing; VMs need a snapshot retention",
                'add e.g. "snapshots": {"keep": 14}',
            )
        )
    else:
        keep = policy.snapshots.keep
        peak = peak_snapshots_per_disk(keep, image_backup=image.enabled)
        if peak > AZURE_MAX_INCREMENTAL_SNAPSHOTS_PER_DISK:
            reasons = "plus the one a session takes before retention runs"
            if image.enabled:
                reasons += ", plus the base of the last image-level backup (kept until the next one)"
            most = keep - (peak - AZURE_MAX_INCREMENTAL_SNAPSHOTS_PER_DISK)
            problems.append(
                FieldProblem(
                    "snapshots.keep",
                    f"{keep} snapshots per disk, {reasons}, make {peak}; Azure allows at most "
                    f"{AZURE_MAX_INCREMENTAL_SNAPSHOTS_PER_DISK} incremental snapshots per disk",
                    f"keep at most {most}",
                )
            )
    if image.enabled:
        if image.schedule is None:
            problems.append(
                FieldProblem(
                    "image_backup.schedule",
                    "is missing; image-level backup is enabled",
                    f"add a schedule, e.g. {_SCHEDULE_EXAMPLE}, or set image_backup.enabled to false",
                )
            )
        if image.retention is None:
            problems.append(
                FieldProblem(
                    "image_backup.retention",
                    "is missing; image-level backup is enabled",
                    f"add e.g. {_RETENTION_EXAMPLE}",
                )
            )
    if image.schedule is not None:
        problems.extend(check_schedule(image.schedule, "image_backup.schedule"))


def _check_sql(policy: Policy, has_databases: bool, problems: list[FieldProblem]) -> None:
    sql = policy.sql
    if sql is None:
        if has_databases:
            problems.append(
                FieldProblem(
                    "sql",
                    "is missing; scope.kinds includes 'sql_database'",
                    'add e.g. "sql": {"mode": "direct", "retention": {"days": 30}}',
                )
            )
        return
    if not has_databases:
        problems.append(
            FieldProblem(
                "sql",
                "applies to SQL databases, and scope.kinds has no 'sql_database'",
                "add 'sql_database' to scope.kinds or remove sql",
            )
        )
    if sql.mode is SqlMode.STAGING:
        if sql.staging_server is None:
            problems.append(
                FieldProblem(
                    "sql.staging_server",
                    "is missing; sql.mode is 'staging'",
                    "add the id of the server that holds the copy, "
                    "/subscriptions/<GUID>/resourceGroups/<group>/providers/Microsoft.Sql/servers/<server>",
                )
            )
        if sql.staging_region is None:
            problems.append(
                FieldProblem(
                    "sql.staging_region",
                    "is missing; the worker that exports the copy runs in the staging server's region",
                    "add the staging server's region, e.g. 'westeurope' (az sql server show --query location)",
                )
            )
    else:
        for name in ("staging_server", "staging_region"):
            if getattr(sql, name) is not None:
                problems.append(
                    FieldProblem(
                        f"sql.{name}",
                        "is only used when sql.mode is 'staging'",
                        f"set sql.mode to 'staging' or remove sql.{name}",
                    )
                )
    if sql.login is not None:
        _check_secret(sql.login, "sql.login", problems)


def _check_repository(policy: Policy, problems: list[FieldProblem]) -> None:
    repository = policy.repository
    location = parse_location(repository.location)  # the codec has checked it
    if isinstance(location, DirectoryLocation):
        if repository.credential is not None:
            problems.append(
                FieldProblem("repository.credential", "a folder repository needs no credential", "remove it")
            )
    elif isinstance(location, AzureLocation) and not location.emulator and repository.region is None:
        placement = policy.workers.placement
        why = (
            "workers start in the repository's region (workers.placement is 'repository_region')"
            if placement is WorkerPlacement.REPOSITORY_REGION
            else "Bulwark needs it to tell cross-region traffic apart"
        )
        problems.append(
            FieldProblem(
                "repository.region",
                f"is missing; {why}",
                "add the storage account's region, e.g. 'westeurope' (az storage account show --query location)",
            )
        )
    if repository.credential is not None:
        _check_secret(repository.credential, "repository.credential", problems)


def _check_secret(ref: SecretRef, path: str, problems: list[FieldProblem]) -> None:
    fix = 'give {"key_vault_secret": "<name>"} in Azure or {"file": "/absolute/path"} in local mode'
    if ref.key_vault_secret is None and ref.file is None:
        problems.append(FieldProblem(path, "names neither a Key Vault secret nor a file", fix))
    elif ref.key_vault_secret is not None and ref.file is not None:
        problems.append(FieldProblem(path, "names both a Key Vault secret and a file", "keep exactly one of the two"))
