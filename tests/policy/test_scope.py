"""scope_includes: explicit ids, containers, tags (any/all), exclusions, kinds."""

from __future__ import annotations

import pytest

from shared.policy.azure_ids import ResourceKind
from shared.policy.scope import Exclusions, Scope, TagMatch, scope_includes
from tests.policy.documents import DB, GROUP, OTHER_SUB, SUB, VM, VM2

OTHER_VM = f"/subscriptions/{OTHER_SUB}/resourceGroups/apps/providers/Microsoft.Compute/virtualMachines/app1"
ELSEWHERE = (
    "/subscriptions/99999999-2222-3333-4444-555555555555/resourceGroups/x/providers/Microsoft.Compute/virtualMachines/y"
)


@pytest.mark.parametrize(
    ("scope", "resource", "tags", "included", "reason"),
    [
        (Scope(resources=(VM,)), VM.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"), {}, True,
         "listed in scope.resources"),
        (Scope(resource_groups=(GROUP,)), VM2, {}, True, "in the resource group 'prod-rg'"),
        (Scope(subscriptions=(OTHER_SUB,)), OTHER_VM, {}, True, f"in the subscription '{OTHER_SUB}'"),
        (Scope(subscriptions=(OTHER_SUB,)), ELSEWHERE, {}, False,
         "outside the scope's subscriptions, resource groups and resources"),
        (Scope(subscriptions=(SUB,), tags=("env=prod", "tier")), VM, {"ENV": "prod"}, True,
         "in the subscription '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' with the tags 'env=prod'"),
        (Scope(subscriptions=(SUB,), tags=("env=prod",)), VM, {"env": "Prod"}, False,
         "in the subscription '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' but with none of the tags (scope.tags)"),
        (Scope(subscriptions=(SUB,), tags=("env=prod", "tier"), tag_match=TagMatch.ALL), VM, {"env": "prod"}, False,
         "in the subscription '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' but without the tags 'tier' "
         "(scope.tag_match is 'all')"),
        (Scope(subscriptions=(SUB,), tags=("env=prod", "tier"), tag_match=TagMatch.ALL), VM,
         {"env": "prod", "Tier": "web"}, True,
         "in the subscription '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' with the tags 'env=prod', 'tier'"),
        (Scope(resources=(VM,), exclude=Exclusions(tags=("backup=none",))), VM, {"Backup": "none"}, False,
         "excluded by the tag 'backup=none' (scope.exclude.tags)"),
        (Scope(resource_groups=(GROUP,), exclude=Exclusions(resources=(VM2,))), VM2, {}, False,
         "excluded by id (scope.exclude.resources)"),
        (Scope(resource_groups=(GROUP,)), DB, {}, False, "not of the kinds vm (scope.kinds)"),
        (Scope(kinds=(ResourceKind.VM, ResourceKind.SQL_DATABASE), resource_groups=(GROUP,)), DB, {}, True,
         "in the resource group 'prod-rg'"),
    ],
)  # fmt: skip
def test_scope_includes(scope: Scope, resource: str, tags: dict[str, str], included: bool, reason: str) -> None:
    match = scope_includes(scope, resource, tags)
    assert (match.included, match.reason) == (included, reason)
