"""Malformed policies: each is refused with a message that names the field, what is wrong and the fix."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from shared.core.errors import PolicyValidationError, UsageError
from shared.policy.document import policy_from_dict, policy_from_json
from tests.policy.documents import DB, DISK, GROUP, SERVER, SUB, VM, minimal_document, valid_document

Document = dict[str, Any]

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _walk(document: Document, path: str) -> tuple[Any, str | int]:
    steps: list[str | int] = [name if name else int(index) for name, index in _STEP.findall(path)]
    node: Any = document
    for step in steps[:-1]:
        node = node[step]
    return node, steps[-1]


def put(path: str, value: object) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        node, last = _walk(document, path)
        node[last] = value

    return change


def drop(path: str) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        node, last = _walk(document, path)
        del node[last]

    return change


def both(*changes: Callable[[Document], None]) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        for one in changes:
            one(document)

    return change


@dataclass(frozen=True)
class Case:
    name: str
    change: Callable[[Document], None]
    expected: str
    """The whole first problem as printed: ``path: message; fix`` (``...`` elides the middle)."""
    base: Callable[[], Document] = valid_document


CASES = [
    # -- schedules ----------------------------------------------------------------------------------
    Case(
        "hour 25",
        put("schedule.daily.times[1]", "25:00"),
        "schedule.daily.times[1]: '25:00' is not a time of day; use HH:MM, e.g. '02:30'",
    ),
    Case(
        "one-digit hour",
        put("schedule.daily.times[0]", "2:30"),
        "schedule.daily.times[0]: '2:30' is not a time of day; use HH:MM, e.g. '02:30'",
    ),
    Case(
        "time as a number",
        put("image_backup.schedule.weekly.time", 2200),
        "image_backup.schedule.weekly.time: a number, is not a time of day; use HH:MM, e.g. '02:30'",
    ),
    Case(
        "repeated time",
        put("schedule.daily.times", ["02:30", "02:30"]),
        "schedule.daily.times[1]: repeats schedule.daily.times[0]; remove the duplicate",
    ),
    Case(
        "no times",
        put("schedule.daily.times", []),
        "schedule.daily.times: is empty; list at least one item",
    ),
    Case(
        "too many times",
        put("schedule.daily.times", [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)]),
        "schedule.daily.times: has 48 items; list at most 24",
    ),
    Case(
        "unknown weekday",
        put("schedule.daily.weekdays[1]", "fryday"),
        "schedule.daily.weekdays[1]: 'fryday' is not one of the accepted values; did you mean 'fri'? "
        "use one of 'mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'",
    ),
    Case(
        "misspelt time zone",
        put("schedule.time_zone", "Europe/Berln"),
        "schedule.time_zone: 'Europe/Berln' is not a known time zone; did you mean 'Europe/Berlin'? "
        "use an IANA time zone name such as 'Europe/Berlin', 'America/New_York' or 'UTC'",
    ),
    Case(
        "time zone in the wrong case",
        put("schedule.time_zone", "america/new_york"),
        "schedule.time_zone: 'america/new_york' is not a known time zone; did you mean 'America/New_York'? ...",
    ),
    Case(
        "time zone abbreviation with an offset",
        put("schedule.time_zone", "GMT+2"),
        "schedule.time_zone: 'GMT+2' is not a known time zone; ...use an IANA time zone name such as ...",
    ),
    Case(
        "schedule without a rule",
        put("schedule", {"time_zone": "UTC"}),
        'schedule: has no daily, weekly, monthly or yearly rule; add one, e.g. "daily": {"times": ["02:30"]}',
    ),
    Case(
        "monthly day and week together",
        put("image_backup.schedule.monthly.day", 15),
        'image_backup.schedule.monthly.week: cannot be combined with day; keep either "day" (e.g. 1) or "week" '
        'with "weekday" (e.g. "last" and "fri")',
    ),
    Case(
        "monthly without a day",
        put("image_backup.schedule.monthly", {"time": "23:00"}),
        'image_backup.schedule.monthly: names no day; set "day" (1-31), or "week" and "weekday", e.g. "last" and "fri"',
    ),
    Case(
        "monthly week without weekday",
        drop("image_backup.schedule.monthly.weekday"),
        'image_backup.schedule.monthly.weekday: is missing; week needs it; add e.g. "weekday": "fri"',
    ),
    Case(
        "monthly day 32",
        put("image_backup.schedule.monthly", {"day": 32, "time": "23:00"}),
        "image_backup.schedule.monthly.day: 32 is out of range; use a whole number from 1 to 31",
    ),
    Case(
        "monthly fifth week",
        put("image_backup.schedule.monthly.week", "fifth"),
        "image_backup.schedule.monthly.week: 'fifth' is not one of the accepted values; did you mean 'last'? "
        "use one of 'first', 'second', 'third', 'fourth', 'last'",
    ),
    Case(
        "yearly February 30",
        put("image_backup.schedule.yearly.day", 30),
        "image_backup.schedule.yearly.day: February has no day 30; use 1 to 29 (29 runs on the 28th in common "
        "years, or never with short_month 'skip')",
    ),
    Case(
        "yearly April 31",
        put("image_backup.schedule.yearly", {"month": 4, "day": 31, "time": "01:00"}),
        "image_backup.schedule.yearly.day: April has no day 31; use 1 to 30",
    ),
    Case(
        "yearly month 13",
        put("image_backup.schedule.yearly.month", 13),
        "image_backup.schedule.yearly.month: 13 is out of range; use a whole number from 1 to 12",
    ),
    Case(
        "short_month unknown",
        put("image_backup.schedule.yearly.short_month", "previous"),
        "image_backup.schedule.yearly.short_month: 'previous' is not one of the accepted values; "
        "use one of 'last_day', 'skip'",
    ),
    # -- document shape -----------------------------------------------------------------------------
    Case(
        "misspelt top-level field",
        both(put("schedul", {}), drop("schedule")),
        "schedul: is not a field of the policy; did you mean 'schedule'? the fields are 'id', 'scope', ...",
    ),
    Case(
        "misspelt nested field",
        put("schedule.daily.time", "02:30"),
        "schedule.daily.time: is not a field of schedule.daily; did you mean 'times'? the fields are 'times', "
        "'weekdays'",
    ),
    Case("missing id", drop("id"), 'id: is missing; e.g. "prod-vms"'),
    Case(
        "missing scope",
        drop("scope"),
        'scope: is missing; e.g. {"resource_groups": ["/subscriptions/<GUID>/resourceGroups/<group>"]}',
    ),
    Case(
        "id with spaces and capitals",
        put("id", "Prod VMs"),
        "id: 'Prod VMs' is not a policy id; use 1-63 lowercase letters, digits and inner hyphens, e.g. 'prod-vms'",
    ),
    Case(
        "enabled as text",
        put("enabled", "yes"),
        "enabled: is a string, not true or false; use true or false",
    ),
    Case(
        "description too long",
        put("description", "x" * 1001),
        "description: is 1001 characters long; shorten it to 1000 characters",
    ),
    Case(
        "schedule as a list",
        put("schedule", ["02:30"]),
        "schedule: is a list, not an object; use an object with 'time_zone', 'daily', 'weekly', 'monthly', 'yearly'",
    ),
    Case(
        "null where a value is required",
        put("snapshots.keep", None),
        "snapshots.keep: is null; e.g. 14",
    ),
    # -- scope --------------------------------------------------------------------------------------
    Case(
        "subscription name instead of GUID",
        put("scope.subscriptions[0]", "prod-subscription"),
        "scope.subscriptions[0]: 'prod-subscription' is not a subscription id; use the subscription's GUID, "
        "e.g. '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' (az account list -o table)",
    ),
    Case(
        "resource group by bare name",
        put("scope.resource_groups[0]", "prod-rg"),
        "scope.resource_groups[0]: 'prod-rg' is a bare name, not a resource group id; use "
        "/subscriptions/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/resourceGroups/<group> (the group's full id)",
    ),
    Case(
        "a disk instead of its VM",
        put("scope.resources[0]", DISK),
        f"scope.resources[0]: '{DISK}' is a Microsoft.Compute/disks; a policy protects virtual machines "
        "(Microsoft.Compute/virtualMachines) and SQL databases (Microsoft.Sql/servers/databases); a policy "
        "protects the VM a disk is attached to; use the VM's id",
    ),
    Case(
        "a SQL server instead of its databases",
        put("scope.resources[1]", SERVER),
        f"scope.resources[1]: '{SERVER}' is a Microsoft.Sql/servers; ...; a policy protects databases; list each "
        "database, …/servers/<server>/databases/<db>",
    ),
    Case(
        "a VM name instead of its id",
        put("scope.resources[0]", "web01"),
        "scope.resources[0]: 'web01' is not an Azure resource id; use /subscriptions/...",
    ),
    Case(
        "subscription name inside a resource id",
        put("scope.resources[0]", VM.replace(SUB, "production")),
        "scope.resources[0]: '/subscriptions/production/resourceGroups/prod-rg/providers/Microsoft.Compute/"
        "virtualMachines/web01' has 'production' where the subscription GUID belongs; use the subscription's "
        "GUID, e.g. '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'",
    ),
    Case(
        "master database",
        put("scope.resources[1]", DB.replace("/orders", "/master")),
        "scope.resources[1]: ... is the master database, which cannot be exported to a BACPAC; list user "
        "databases only",
    ),
    Case(
        "the same VM twice in another case",
        put("scope.resources", [VM, VM.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")]),
        "scope.resources[1]: repeats scope.resources[0] (ids ignore case); remove the duplicate",
    ),
    Case(
        "tag without a name",
        put("scope.tags[0]", "=production"),
        "scope.tags[0]: '=production' has no tag name; use 'key=value' (or 'key' for any value), "
        "e.g. 'environment=production'",
    ),
    Case(
        "tag_match unknown",
        put("scope.tag_match", "most"),
        "scope.tag_match: 'most' is not one of the accepted values; use one of 'any', 'all'",
    ),
    Case(
        "scope selects nothing",
        put("scope", {"kinds": ["vm"]}),
        "scope: selects nothing; list subscriptions, resource_groups or resources (tags only filter subscriptions "
        "and groups)",
        minimal_document,
    ),
    Case(
        "tags without subscriptions or groups",
        put("scope", {"resources": [VM], "tags": ["environment=production"]}),
        "scope.tags: filter the resources of scope.subscriptions and scope.resource_groups, and there are none; "
        "add the subscriptions or resource groups to search, or drop the tags",
        minimal_document,
    ),
    Case(
        "a database listed but not its kind",
        put("scope", {"resources": [VM, DB]}),
        "scope.resources[1]: is a SQL database, but scope.kinds does not include 'sql_database'; add "
        "'sql_database' to scope.kinds or remove the resource",
        minimal_document,
    ),
    Case(
        "a resource both listed and excluded",
        put("scope.exclude.resources", [VM]),
        "scope.exclude.resources[0]: excludes scope.resources[0], which the policy also lists; remove it from one "
        "of the two lists",
    ),
    Case(
        "an excluded tag that is also included",
        put("scope.exclude.tags", ["Environment=production"]),
        "scope.exclude.tags[0]: excludes every resource that scope.tags[0] selects; remove it from one of the two "
        "lists",
    ),
    Case(
        "no kinds",
        put("scope.kinds", []),
        "scope.kinds: is empty; list at least one item",
    ),
    # -- snapshots and the 500-snapshot guard -------------------------------------------------------
    Case(
        "499 snapshots with image-level backup",
        put("snapshots.keep", 499),
        "snapshots.keep: 499 snapshots per disk, plus the one a session takes before retention runs, plus the base "
        "of the last image-level backup (kept until the next one), make 501; Azure allows at most 500 incremental "
        "snapshots per disk; keep at most 498",
    ),
    Case(
        "500 snapshots without image-level backup",
        put("snapshots.keep", 500),
        "snapshots.keep: 500 snapshots per disk, plus the one a session takes before retention runs, make 501; "
        "Azure allows at most 500 incremental snapshots per disk; keep at most 499",
        minimal_document,
    ),
    Case(
        "1000 snapshots",
        put("snapshots.keep", 1000),
        "snapshots.keep: 1000 is out of range; use 1 to 498: Azure allows at most 500 incremental snapshots per "
        "disk, and a session adds one before retention runs and image-level backup keeps one more",
    ),
    Case(
        "no snapshots kept",
        put("snapshots.keep", 0),
        "snapshots.keep: 0 is out of range; use 1 to 498: ...",
    ),
    Case(
        "keep as text",
        put("snapshots.keep", "14"),
        "snapshots.keep: is a string, not a whole number; use a whole number from 1 to 500",
    ),
    Case(
        "keep as a fraction",
        put("snapshots.keep", 14.5),
        "snapshots.keep: is a number, not a whole number; use a whole number from 1 to 500",
    ),
    Case(
        "VMs without snapshot retention",
        drop("snapshots"),
        'snapshots: is missing; VMs need a snapshot retention; add e.g. "snapshots": {"keep": 14}',
    ),
    Case(
        "snapshot retention without VMs",
        put("scope", {"kinds": ["sql_database"], "resources": [DB]}),
        "snapshots: applies to VMs, and scope.kinds has no 'vm'; add 'vm' to scope.kinds or remove snapshots",
    ),
    # -- image-level backup -------------------------------------------------------------------------
    Case(
        "image-level backup without a schedule",
        drop("image_backup.schedule"),
        "image_backup.schedule: is missing; image-level backup is enabled; add a schedule, e.g. "
        '{"time_zone": "Europe/Berlin", "daily": {"times": ["02:30"]}}, or set image_backup.enabled to false',
    ),
    Case(
        "image-level backup without retention",
        drop("image_backup.retention"),
        'image_backup.retention: is missing; image-level backup is enabled; add e.g. {"days": 30, "weekly": 8, '
        '"monthly": 12}',
    ),
    Case(
        "retention of 0 days",
        put("image_backup.retention.days", 0),
        "image_backup.retention.days: 0 is out of range; use a whole number from 1 to 36500",
    ),
    Case(
        "negative weekly retention",
        put("image_backup.retention.weekly", -1),
        "image_backup.retention.weekly: -1 is out of range; use a whole number from 0 to 5200",
    ),
    # -- SQL ----------------------------------------------------------------------------------------
    Case(
        "staging without a server",
        drop("sql.staging_server"),
        "sql.staging_server: is missing; sql.mode is 'staging'; add the id of the server that holds the copy, "
        "/subscriptions/<GUID>/resourceGroups/<group>/providers/Microsoft.Sql/servers/<server>",
    ),
    Case(
        "staging without a region",
        drop("sql.staging_region"),
        "sql.staging_region: is missing; the worker that exports the copy runs in the staging server's region; "
        "add the staging server's region, e.g. 'westeurope' (az sql server show --query location)",
    ),
    Case(
        "a staging server for a direct export",
        put("sql.mode", "direct"),
        "sql.staging_server: is only used when sql.mode is 'staging'; set sql.mode to 'staging' or remove "
        "sql.staging_server",
    ),
    Case(
        "region as a display name",
        put("sql.staging_region", "West Europe"),
        "sql.staging_region: 'West Europe' is a display name, not a region name; use 'westeurope'",
    ),
    Case(
        "a database as the staging server",
        put("sql.staging_server", DB),
        f"sql.staging_server: '{DB}' is a Microsoft.Sql/servers/databases, not a SQL server (Microsoft.Sql/servers); "
        "use /subscriptions/...",
    ),
    Case(
        "databases without sql settings",
        drop("sql"),
        'sql: is missing; scope.kinds includes \'sql_database\'; add e.g. "sql": {"mode": "direct", '
        '"retention": {"days": 30}}',
    ),
    Case(
        "sql mode unknown",
        put("sql.mode", "copy"),
        "sql.mode: 'copy' is not one of the accepted values; use one of 'direct', 'staging'",
    ),
    # -- repository, encryption and secrets by reference --------------------------------------------
    Case(
        "repository in a relative folder",
        put("repository", {"location": "./repo"}),
        "repository.location: './repo' is a relative path; use an absolute folder path, e.g. '/srv/bulwark/repo'",
    ),
    Case(
        "repository on FTP",
        put("repository.location", "ftp://example.com/repo"),
        "repository.location: 'ftp://example.com/repo' is not a repository location: unknown scheme 'ftp'; use "
        "the container's URL, e.g. 'https://myaccount.blob.core.windows.net/bulwark/prod', or in local mode an "
        "absolute folder path",
    ),
    Case(
        "Azure repository without its region",
        drop("repository.region"),
        "repository.region: is missing; Bulwark needs it to tell cross-region traffic apart; add the storage "
        "account's region, e.g. 'westeurope' (az storage account show --query location)",
    ),
    Case(
        "folder repository with a credential",
        put("repository.credential", {"file": "/etc/bulwark/key"}),
        "repository.credential: a folder repository needs no credential; remove it",
        minimal_document,
    ),
    Case(
        "passphrase pasted as text",
        put("encryption.passphrase", "correct horse battery staple"),
        "encryption.passphrase: is text, and secrets are never accepted inline; store the secret in Key Vault and "
        'reference it, e.g. {"key_vault_secret": "bulwark-repo-passphrase"} (in local mode, '
        '{"file": "/etc/bulwark/passphrase"})',
    ),
    Case(
        "passphrase reference naming nothing",
        put("encryption.passphrase", {}),
        'encryption.passphrase: names neither a Key Vault secret nor a file; give {"key_vault_secret": "<name>"} '
        'in Azure or {"file": "/absolute/path"} in local mode',
    ),
    Case(
        "passphrase reference naming two places",
        put("encryption.passphrase", {"key_vault_secret": "a", "file": "/etc/bulwark/passphrase"}),
        "encryption.passphrase: names both a Key Vault secret and a file; keep exactly one of the two",
    ),
    Case(
        "Key Vault secret name with underscores",
        put("sql.login.key_vault_secret", "sql_login"),
        "sql.login.key_vault_secret: 'sql_login' is not a Key Vault secret name; use 1-127 letters, digits and "
        "hyphens, e.g. 'bulwark-repo-passphrase'",
    ),
    Case(
        "secret file by relative path",
        put("encryption.passphrase", {"file": "passphrase.txt"}),
        "encryption.passphrase.file: 'passphrase.txt' is not an absolute path; use an absolute path, e.g. "
        "'/etc/bulwark/passphrase'",
    ),
    # -- workers and concurrency ----------------------------------------------------------------------
    Case(
        "unknown placement",
        put("workers.placement", "closest"),
        "workers.placement: 'closest' is not one of the accepted values; use one of 'repository_region', "
        "'source_region'",
    ),
    Case(
        "more workers than resources",
        put("concurrency", {"resources_in_flight": 4, "workers_in_flight": 8}),
        "concurrency.workers_in_flight: 8 is more than concurrency.resources_in_flight (4), and each worker serves "
        "one resource; lower it to 4 or raise resources_in_flight",
    ),
    Case(
        "no resources in flight",
        put("concurrency.resources_in_flight", 0),
        "concurrency.resources_in_flight: 0 is out of range; use a whole number from 1 to 200",
    ),
    Case(
        "a thousand workers",
        put("concurrency.workers_in_flight", 1000),
        "concurrency.workers_in_flight: 1000 is out of range; use a whole number from 1 to 50",
    ),
]


def _matches(expected: str, actual: str) -> bool:
    """``...`` in ``expected`` stands for any text."""
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual, re.DOTALL) is not None


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_policy_is_refused_with_field_and_fix(case: Case) -> None:
    document = case.base()
    case.change(document)
    with pytest.raises(PolicyValidationError) as caught:
        policy_from_dict(document)
    error = caught.value
    first = str(error.problems[0])
    assert _matches(case.expected, first), f"\nexpected: {case.expected}\nactual:   {first}"
    assert isinstance(error, UsageError)
    assert error.code == "policy_invalid"
    assert error.exit_code == 2
    assert str(error).startswith(("policy 'prod-vms' is invalid", "policy 'small' is invalid", "the policy is invalid"))
    body = error.to_dict()
    assert body["problems"][0] == error.problems[0].to_dict()


def test_every_problem_is_reported_at_once() -> None:
    document = valid_document()
    document["schedule"]["daily"]["times"] = ["25:00", "02:30", "99:99"]
    document["concurrency"]["workers_in_flight"] = 0
    document["scope"]["subscriptions"] = ["nope"]
    with pytest.raises(PolicyValidationError) as caught:
        policy_from_dict(document)
    paths = [problem.path for problem in caught.value.problems]
    assert paths == [
        "scope.subscriptions[0]",
        "schedule.daily.times[0]",
        "schedule.daily.times[2]",
        "concurrency.workers_in_flight",
    ]
    assert "(4 problems)" in str(caught.value)


def test_staging_without_server_and_region_names_both() -> None:
    document = valid_document()
    document["sql"] = {"mode": "staging", "retention": {"days": 7}}
    with pytest.raises(PolicyValidationError) as caught:
        policy_from_dict(document)
    assert [p.path for p in caught.value.problems] == ["sql.staging_server", "sql.staging_region"]


def test_document_that_is_not_an_object() -> None:
    with pytest.raises(PolicyValidationError) as caught:
        policy_from_dict(["prod-vms"])
    assert str(caught.value) == (
        "the policy is invalid: (document): is a list, not an object; use an object with 'id', 'scope', "
        "'schedule', 'repository', 'encryption', 'description', 'enabled', 'snapshots', 'image_backup', 'sql', "
        "'workers', 'concurrency'"
    )


def test_text_that_is_not_json() -> None:
    with pytest.raises(PolicyValidationError) as caught:
        policy_from_json('{"id": "prod-vms",\n "scope": }')
    assert str(caught.value) == (
        "the policy is invalid: (document): is not valid JSON at line 2 column 11; send one JSON object"
    )


def test_group_and_database_ids_are_the_examples() -> None:
    # The documents module's ids are themselves valid: a guard against typos in the fixtures above.
    for resource in (VM, DB):
        document = minimal_document()
        document["scope"] = {"kinds": ["vm", "sql_database"], "resources": [resource]}
        document["sql"] = {"retention": {"days": 7}}
        policy_from_dict(document)
    assert GROUP.endswith("/resourceGroups/prod-rg")
