"""host.json is valid for the Functions host and the Durable extension of the bundle it names.

Facts checked (Azure Functions docs): host.json version "2.0"; the extension bundle id and an
interval version range such as ``[4.*, 5.0.0)``; Flex Consumption apps (infra/) run bundle 4.x only;
bundle 4.x carries Durable Functions 2.x, whose ``extensions.durableTask`` keys are listed below;
an Azure Storage task hub name is 3-45 letters and digits starting with a letter; ``functionTimeout``
is a TimeSpan (hh:mm:ss, or -1 for unbounded on plans that allow it).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.infra.trees import ROOT

BUNDLE_IDS = {"Microsoft.Azure.Functions.ExtensionBundle", "Microsoft.Azure.Functions.ExtensionBundle.Preview"}
DURABLE_KEYS = {
    "hubname",
    "defaultversion",
    "versionmatchstrategy",
    "versionfailurestrategy",
    "storageprovider",
    "tracing",
    "httpsettings",
    "notifications",
    "maxconcurrentactivityfunctions",
    "maxconcurrentorchestratorfunctions",
    "maxconcurrententityfunctions",
    "localrpcendpointenabled",
    "extendedsessionsenabled",
    "extendedsessionidletimeoutinseconds",
    "maxorchestrationactions",
    "overridableexistinginstancestates",
    "entitymessagereorderwindowinminutes",
    "useapplease",
    "appleaseoptions",
    "usegracefulshutdown",
    "maxentityoperationbatchsize",
    "storeinputsinorchestrationhistory",
}
HOST_KEYS = {
    "version",
    "aggregator",
    "concurrency",
    "customhandler",
    "extensions",
    "extensionbundle",
    "functions",
    "functiontimeout",
    "healthmonitor",
    "logging",
    "manageddependency",
    "retry",
    "singleton",
    "telemetrymode",
    "watchdirectories",
    "watchfiles",
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "extensionBundle"],
    "properties": {
        "version": {"const": "2.0"},
        "functionTimeout": {"type": "string", "pattern": r"^(-1|(\d+\.)?\d{1,2}:\d{2}:\d{2})$"},
        "extensionBundle": {
            "type": "object",
            "required": ["id", "version"],
            "properties": {"id": {"enum": sorted(BUNDLE_IDS)}, "version": {"type": "string"}},
            "additionalProperties": False,
        },
        "logging": {
            "type": "object",
            "properties": {
                "applicationInsights": {
                    "type": "object",
                    "properties": {
                        "samplingSettings": {
                            "type": "object",
                            "properties": {
                                "isEnabled": {"type": "boolean"},
                                "excludedTypes": {"type": "string"},
                                "includedTypes": {"type": "string"},
                                "maxTelemetryItemsPerSecond": {"type": "number", "exclusiveMinimum": 0},
                            },
                        }
                    },
                },
                "logLevel": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "extensions": {
            "type": "object",
            "properties": {
                "durableTask": {
                    "type": "object",
                    "required": ["hubName"],
                    "properties": {
                        "hubName": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9]{2,44}$"},
                        "maxConcurrentActivityFunctions": {"type": "integer", "minimum": 1},
                        "maxConcurrentOrchestratorFunctions": {"type": "integer", "minimum": 1},
                        "maxConcurrentEntityFunctions": {"type": "integer", "minimum": 1},
                        "extendedSessionsEnabled": {"type": "boolean"},
                        "storageProvider": {"type": "object"},
                        "tracing": {"type": "object"},
                    },
                },
                "http": {"type": "object", "properties": {"routePrefix": {"type": "string"}}},
            },
        },
    },
}


@pytest.fixture(scope="module")
def host() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    return document


def test_host_json_matches_the_schema(host: dict[str, Any]) -> None:
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(host), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors)


def test_only_known_keys(host: dict[str, Any]) -> None:
    # The host binds configuration case-insensitively, so a misspelt key is silently ignored: catch it here.
    unknown = sorted(key for key in host if key.lower() not in HOST_KEYS)
    assert not unknown, f"host.json keys the host does not know: {unknown}"
    durable = host.get("extensions", {}).get("durableTask", {})
    unknown = sorted(key for key in durable if key.lower() not in DURABLE_KEYS)
    assert not unknown, f"extensions.durableTask keys Durable Functions 2.x does not know: {unknown}"


def _bound(text: str) -> tuple[int, ...]:
    parts = text.strip().split(".")
    assert parts and all(p.isdigit() or p == "*" for p in parts), f"not a version: {text!r}"
    return tuple(int(p) if p.isdigit() else 0 for p in parts)


def test_the_bundle_range_is_v4_which_carries_durable_functions_2(host: dict[str, Any]) -> None:
    match = re.fullmatch(r"\[\s*([\d.*]+)\s*,\s*([\d.*]+)\s*\)", host["extensionBundle"]["version"])
    assert match, f"extensionBundle.version {host['extensionBundle']['version']!r} is not a range like [4.*, 5.0.0)"
    low, high = _bound(match.group(1)), _bound(match.group(2))
    assert low < high, "the bundle range is empty"
    # Flex Consumption (infra/modules/functionapp.bicep) supports bundle 4.x only; 4.x brings Durable 2.x.
    assert low[0] == 4 and high <= (5, 0, 0), f"use [4.*, 5.0.0): {host['extensionBundle']['version']}"


def test_the_local_runtime_reads_the_same_task_hub(host: dict[str, Any]) -> None:
    from bulwark_local.runtime.host_config import load_host_config

    config = load_host_config(ROOT)
    assert config.hub_name == host["extensions"]["durableTask"]["hubName"]
    assert config.max_concurrent_activities == host["extensions"]["durableTask"]["maxConcurrentActivityFunctions"]


def test_the_checks_reject_a_broken_host_json() -> None:
    broken = {
        "version": "2.0",
        "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
        "extensions": {"durableTask": {"hubName": "bulwark-hub", "maxConcurrentActivityFunctions": 0}},
        "functionTimeout": "30 minutes",
    }
    paths = {"/".join(map(str, e.absolute_path)) for e in Draft202012Validator(SCHEMA).iter_errors(broken)}
    assert paths == {
        "extensions/durableTask/hubName",
        "extensions/durableTask/maxConcurrentActivityFunctions",
        "functionTimeout",
    }
