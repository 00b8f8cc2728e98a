"""The string formats of policy fields: what each accepts and what its message says when it does not."""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo
from pathlib import PurePosixPath, PureWindowsPath

from shared.core.errors import UsageError
from shared.policy import azure_ids
from shared.policy.codec import StringFormat, show
from shared.storage.location import DirectoryLocation, parse_location

__all__ = [
    "KEY_VAULT_SECRET_NAME",
    "POLICY_ID",
    "REGION",
    "REPOSITORY_LOCATION",
    "RESOURCE_GROUP_ID",
    "RESOURCE_ID",
    "SECRET_FILE",
    "SQL_SERVER_ID",
    "SUBSCRIPTION_ID",
    "TAG_FILTER",
    "TIME_ZONE",
    "parse_tag_filter",
]

Problem = tuple[str, str] | None

_POLICY_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_TAG_KEY_FORBIDDEN = re.compile(r"[<>%&\\?/]")


def _policy_id(text: str) -> Problem:
    if _POLICY_ID.match(text):
        return None
    suggestion = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")
    example = f"'{suggestion}'" if suggestion and _POLICY_ID.match(suggestion) else "'prod-vms'"
    return (
        f"{show(text)} is not a policy id",
        f"use 1-63 lowercase letters, digits and inner hyphens, e.g. {example}",
    )


POLICY_ID = StringFormat(
    "policy-id",
    "1-63 lowercase letters, digits and inner hyphens; names the policy in URLs, storage keys and "
    "orchestration instance ids",
    _policy_id,
    pattern=_POLICY_ID.pattern,
)

SUBSCRIPTION_ID = StringFormat(
    "subscription-id",
    "an Azure subscription GUID",
    azure_ids.problem_subscription_id,
    pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    case_insensitive=True,
)

RESOURCE_GROUP_ID = StringFormat(
    "resource-group-id",
    "the id of a resource group, /subscriptions/<GUID>/resourceGroups/<name>",
    azure_ids.problem_resource_group_id,
    pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+$",
    case_insensitive=True,
)

RESOURCE_ID = StringFormat(
    "protected-resource-id",
    "the ARM id of a virtual machine (Microsoft.Compute/virtualMachines) or an Azure SQL database "
    "(Microsoft.Sql/servers/databases)",
    azure_ids.problem_resource_id,
    pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/.+$",
    case_insensitive=True,
)

SQL_SERVER_ID = StringFormat(
    "sql-server-id",
    "the ARM id of an Azure SQL server (Microsoft.Sql/servers)",
    azure_ids.problem_sql_server_id,
    pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Sql/servers/[^/]+$",
    case_insensitive=True,
)

REGION = StringFormat(
    "azure-region",
    "an Azure region name as the CLI prints it, e.g. westeurope",
    azure_ids.problem_region,
    pattern=r"^[a-z][a-z0-9]{2,39}$",
)


def parse_tag_filter(text: str) -> tuple[str, str | None]:
    """``"key=value"`` -> ``(key, value)``; ``"key"`` -> ``(key, None)``: any value."""
    key, sep, value = text.partition("=")
    return key.strip(), (value.strip() if sep else None)


def _tag_filter(text: str) -> Problem:
    key, value = parse_tag_filter(text)
    fix = "use 'key=value' (or 'key' for any value), e.g. 'environment=production'"
    if not key:
        return f"{show(text)} has no tag name", fix
    if len(key) > 512 or _TAG_KEY_FORBIDDEN.search(key):
        return (
            f"{show(text)} has a tag name Azure does not allow",
            "tag names have at most 512 characters and no <>%&\\?/",
        )
    if value is not None and len(value) > 256:
        return f"{show(text)} has a tag value longer than Azure allows", "tag values have at most 256 characters"
    return None


TAG_FILTER = StringFormat(
    "tag-filter",
    "an Azure tag, 'name=value', or 'name' for any value; names compare ignoring case",
    _tag_filter,
    case_insensitive=True,
)


@functools.cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def _time_zone(text: str) -> Problem:
    fix = "use an IANA time zone name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
    try:
        zoneinfo.ZoneInfo(text)
        return None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    names = _zone_names()
    exact = names.get(text.strip().lower().replace(" ", "_"))
    close = [exact] if exact else [names[key] for key in difflib.get_close_matches(text.lower(), names, n=1)]
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{show(text)} is not a known time zone", hint + fix


TIME_ZONE = StringFormat(
    "iana-time-zone",
    "an IANA time zone name, e.g. Europe/Berlin; schedules follow its daylight-saving rules",
    _time_zone,
)


def _secret_name(text: str) -> Problem:
    if _SECRET_NAME.match(text):
        return None
    return (
        f"{show(text)} is not a Key Vault secret name",
        "use 1-127 letters, digits and hyphens, e.g. 'bulwark-repo-passphrase'",
    )


KEY_VAULT_SECRET_NAME = StringFormat(
    "key-vault-secret-name",
    "the name of a secret in the function app's Key Vault (not the secret itself)",
    _secret_name,
    pattern=_SECRET_NAME.pattern,
)


def _secret_file(text: str) -> Problem:
    if "\x00" in text or "\n" in text:
        return "the path has a control character", "use a plain absolute path, e.g. '/etc/bulwark/passphrase'"
    if not (PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()):
        return f"{show(text)} is not an absolute path", "use an absolute path, e.g. '/etc/bulwark/passphrase'"
    return None


SECRET_FILE = StringFormat(
    "secret-file",
    "an absolute path to a file that holds the secret (local mode); the file is read when a session runs",
    _secret_file,
)


def _repository_location(text: str) -> Problem:
    fix = (
        "use the container's URL, e.g. 'https://myaccount.blob.core.windows.net/bulwark/prod', or in local "
        "mode an absolute folder path"
    )
    try:
        location = parse_location(text)
    except UsageError as exc:
        reason = exc.message.split("as a repository location: ", 1)[-1].rstrip(".")
        return f"{show(text)} is not a repository location: {reason}", fix
    if isinstance(location, DirectoryLocation) and not (
        PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
    ):
        return f"{show(text)} is a relative path", "use an absolute folder path, e.g. '/srv/bulwark/repo'"
    return None


REPOSITORY_LOCATION = StringFormat(
    "repository-location",
    "where the repository is: https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX], an emulator URL "
    "http://127.0.0.1:PORT/ACCOUNT/CONTAINER[/PREFIX], or an absolute folder path (local mode); never "
    "with a SAS token or key",
    _repository_location,
)
