"""What a policy protects, and the pure rule that decides whether one resource is in it.

A resource is protected when it is of one of ``kinds`` and not excluded, and either

* it is listed in ``resources``, or
* it lives in one of ``subscriptions`` or ``resource_groups`` and, if ``tags`` are given, carries
  any (``tag_match: "any"``) or all (``"all"``) of them.

Exclusions win over everything: a resource listed in ``exclude.resources`` or carrying any tag of
``exclude.tags`` is never protected. Tag names compare ignoring case (as in Azure), values exactly;
a filter without ``=value`` matches any value. ARM ids compare ignoring case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from shared.policy.azure_ids import ResourceKind, id_key, resource_group_key, resource_kind, subscription_key
from shared.policy.codec import spec
from shared.policy.formats import RESOURCE_GROUP_ID, RESOURCE_ID, SUBSCRIPTION_ID, TAG_FILTER, parse_tag_filter

__all__ = ["Exclusions", "Scope", "ScopeMatch", "TagMatch", "scope_includes", "tag_matches"]

_MAX_IDS = 2000


class TagMatch(StrEnum):
    ANY = "any"
    ALL = "all"


@dataclass(frozen=True)
class Exclusions:
    """Resources never protected by this policy, even when the scope selects them."""

    resources: tuple[str, ...] = field(
        default=(),
        metadata=spec("VM or SQL database ids", format=RESOURCE_ID, unique=True, max_items=_MAX_IDS),
    )
    tags: tuple[str, ...] = field(
        default=(),
        metadata=spec(
            "a resource with any of these tags is excluded",
            example=["backup=none"],
            format=TAG_FILTER,
            unique=True,
            max_items=50,
        ),
    )


@dataclass(frozen=True)
class Scope:
    """The resources a policy protects (see the module documentation for the rule)."""

    kinds: tuple[ResourceKind, ...] = field(
        default=(ResourceKind.VM,),
        metadata=spec("the kinds of resources to protect", example=["vm", "sql_database"], min_items=1, unique=True),
    )
    subscriptions: tuple[str, ...] = field(
        default=(),
        metadata=spec(
            "every resource of the kinds in these subscriptions", format=SUBSCRIPTION_ID, unique=True, max_items=200
        ),
    )
    resource_groups: tuple[str, ...] = field(
        default=(),
        metadata=spec(
            "every resource of the kinds in these resource groups",
            format=RESOURCE_GROUP_ID,
            unique=True,
            max_items=_MAX_IDS,
        ),
    )
    tags: tuple[str, ...] = field(
        default=(),
        metadata=spec(
            "only resources of the subscriptions and resource groups with these tags",
            example=["environment=production"],
            format=TAG_FILTER,
            unique=True,
            max_items=50,
        ),
    )
    tag_match: TagMatch = field(default=TagMatch.ANY, metadata=spec("whether any or all of the tags must match"))
    resources: tuple[str, ...] = field(
        default=(),
        metadata=spec(
            "VMs and SQL databases by id, protected whatever their tags",
            format=RESOURCE_ID,
            unique=True,
            max_items=_MAX_IDS,
        ),
    )
    exclude: Exclusions = field(default=Exclusions(), metadata=spec("resources never to protect"))


@dataclass(frozen=True)
class ScopeMatch:
    included: bool
    reason: str


def tag_matches(tag_filter: str, tags: Mapping[str, str]) -> bool:
    key, value = parse_tag_filter(tag_filter)
    return any(name.lower() == key.lower() and (value is None or actual == value) for name, actual in tags.items())


def scope_includes(scope: Scope, resource_id: str, tags: Mapping[str, str]) -> ScopeMatch:
    """Whether ``scope`` protects the resource ``resource_id`` with ``tags``, and why."""
    key = id_key(resource_id)
    if any(id_key(excluded) == key for excluded in scope.exclude.resources):
        return ScopeMatch(False, "excluded by id (scope.exclude.resources)")
    for tag_filter in scope.exclude.tags:
        if tag_matches(tag_filter, tags):
            return ScopeMatch(False, f"excluded by the tag '{tag_filter}' (scope.exclude.tags)")
    kind = resource_kind(resource_id)
    if kind is None or kind not in scope.kinds:
        return ScopeMatch(False, f"not of the kinds {', '.join(scope.kinds)} (scope.kinds)")
    if any(id_key(listed) == key for listed in scope.resources):
        return ScopeMatch(True, "listed in scope.resources")
    if any(resource_group_key(group) == resource_group_key(key) for group in scope.resource_groups):
        container = f"in the resource group '{key.split('/')[3]}'"
    elif any(subscription.lower() == subscription_key(key) for subscription in scope.subscriptions):
        container = f"in the subscription '{subscription_key(key)}'"
    else:
        return ScopeMatch(False, "outside the scope's subscriptions, resource groups and resources")
    if not scope.tags:
        return ScopeMatch(True, container)
    matched = [tag_filter for tag_filter in scope.tags if tag_matches(tag_filter, tags)]
    if scope.tag_match is TagMatch.ALL and len(matched) < len(scope.tags):
        missing = ", ".join(f"'{t}'" for t in scope.tags if t not in matched)
        return ScopeMatch(False, f"{container} but without the tags {missing} (scope.tag_match is 'all')")
    if not matched:
        return ScopeMatch(False, f"{container} but with none of the tags (scope.tags)")
    return ScopeMatch(True, f"{container} with the tags {', '.join(repr(t) for t in matched)}")
