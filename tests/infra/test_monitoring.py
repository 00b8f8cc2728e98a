"""The workbook and the failed-session alert query names the code really emits.

KQL inside Bicep is only text; nothing else would notice a renamed metric or orchestrator until an
alert stayed silent in production.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from tests.infra.trees import ROOT, resources_of_type, strings

METRIC = re.compile(r'"(bulwark\.[a-z_.]+)"')
INSTRUMENTS = {"create_counter", "create_histogram", "create_up_down_counter", "create_gauge"}


def metric_names_in_code() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "shared").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in INSTRUMENTS
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(str(node.args[0].value))
    return names


def test_queries_use_the_metrics_and_orchestrator_the_code_has(bicep: dict[str, dict[str, Any]]) -> None:
    from functions import names

    tree = bicep["modules/monitoring.bicep"]
    assert list(resources_of_type(tree, "Microsoft.Insights/workbooks"))
    assert list(resources_of_type(tree, "Microsoft.Insights/scheduledQueryRules"))
    text = "\n".join(strings({"variables": tree["variables"], "resources": tree["resources"]}))
    used = set(METRIC.findall(text))
    assert "bulwark.sessions" in used, "the failed-session alert must count session results"
    unknown = sorted(used - metric_names_in_code())
    assert not unknown, f"metrics the Bicep queries but the code never creates: {unknown}"
    assert tree["parameters"]["sessionOrchestrator"]["default"] == names.POLICY_SESSION
