"""Every setting the code reads is defined by the Bicep function app, or is explicitly not an app
setting (local mode, the CLI, a worker's per-job environment), with the reason.

The names are extracted from the sources, not kept by hand: every string literal in the app's code
that has the shape of an environment variable of ours (``BULWARK_*``, ``AZURE_*``, ``OTEL_*``,
``APPLICATIONINSIGHTS_*``, ``AzureWebJobs*``). A literal of that shape is there to be read from, or
handed to, an environment, so a new setting cannot reach the code without this test noticing.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.infra.trees import ROOT, resources_of_type, strings

SOURCES = ("function_app.py", "functions", "shared")
ENV_NAME = re.compile(r"(?:BULWARK|AZURE|APPLICATIONINSIGHTS|OTEL|FUNCTIONS|WEBSITE)_[A-Z0-9_]+|AzureWebJobs\w*")

NOT_APP_SETTINGS = {
    "BULWARK_LOCAL_STACK": "local mode: the stack file of the simulator and Azurite, which stand in for Azure",
    "BULWARK_CA_BUNDLE": "local mode: the simulator's own CA; Azure's endpoints use publicly trusted certificates",
    "BULWARK_STATIC_TOKEN": "local mode: the simulator's fixed token; in Azure the managed identity signs in",
    "BULWARK_STATE_DIR": "local-process workers' files; in Azure workers run in Container Instances",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "local telemetry; in Azure APPLICATIONINSIGHTS_CONNECTION_STRING is set",
    "OTEL_TRACES_SAMPLER": "an operator's own trace sampling (OpenTelemetry's variable); unset, every span is kept",
    "BULWARK_JOB": "a worker's job spec, set per container by the launcher as a secure environment variable",
    "AZURE_STORAGE_CONNECTION_STRING": "repository credentials for the CLI or a worker outside Azure; "
    "in Azure the identity signs in (the repository account has shared keys off)",
    "AZURE_STORAGE_KEY": "as AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN": "as AZURE_STORAGE_CONNECTION_STRING",
    "BULWARK_PASSWORD": "the bulwark CLI's passphrase on an operator's machine (the app resolves Key Vault references)",
    "BULWARK_REPO": "the bulwark CLI's default --repo",
    "BULWARK_DEBUG": "the bulwark CLI's tracebacks",
    "BULWARK_CATALOG_CONNECTION_STRING": "the bulwark CLI's access to the app's catalog tables",
    "BULWARK_CATALOG_ENDPOINT": "as BULWARK_CATALOG_CONNECTION_STRING",
    "BULWARK_APP_URL": "the bulwark CLI's address of a deployed app's HTTP API",
    "BULWARK_FUNCTION_KEY": "the bulwark CLI's function key for that API (the app checks keys itself)",
}
"""Names the code reads that the deployed function app must not (or need not) get, and why."""


def names_in_code() -> dict[str, list[str]]:
    """Every env-shaped string literal in the app's sources, with where it appears."""
    found: dict[str, list[str]] = defaultdict(list)
    for root in SOURCES:
        path = ROOT / root
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        for file in files:
            tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
            exported = {id(node) for node in ast.walk(tree) if _is_all(node) for node in ast.walk(node)}
            for node in ast.walk(tree):
                if id(node) in exported:
                    continue  # __all__ lists Python names, not settings
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value):
                    found[node.value].append(f"{Path(file).relative_to(ROOT)}:{node.lineno}")
    return dict(found)


def _is_all(node: ast.AST) -> bool:
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    return isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == "__all__"


def app_settings(bicep: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every app setting name of every function app in the Bicep, with its file."""
    settings: dict[str, str] = {}
    for file, tree in bicep.items():
        for _, site in resources_of_type(tree, "Microsoft.Web/sites"):
            for entry in site["properties"]["siteConfig"]["appSettings"]:
                assert isinstance(entry.get("name"), str), f"{file}: app settings need literal names: {entry}"
                assert entry["name"] not in settings, f"{entry['name']} is set twice"
                settings[entry["name"]] = file
    return settings


def test_the_extraction_finds_what_the_settings_document() -> None:
    from shared.config import ENV_NAMES

    found = names_in_code()
    missed = set(ENV_NAMES) - set(found)
    assert not missed, f"the extraction misses names Settings.from_env reads: {sorted(missed)}"


def test_every_setting_the_code_reads_is_deployed_or_explained(bicep: dict[str, dict[str, Any]]) -> None:
    deployed = app_settings(bicep)
    assert deployed, "no Microsoft.Web/sites resource with app settings in infra/"
    unexplained = {
        name: places
        for name, places in names_in_code().items()
        if name not in deployed and name not in NOT_APP_SETTINGS
    }
    assert not unexplained, "\n".join(
        f"{name} (read at {', '.join(places[:3])}) is neither an app setting in the Bicep function app "
        f"nor listed in NOT_APP_SETTINGS with a reason"
        for name, places in sorted(unexplained.items())
    )


def test_the_exceptions_are_current(bicep: dict[str, dict[str, Any]]) -> None:
    deployed = app_settings(bicep)
    in_code = names_in_code()
    both = sorted(set(NOT_APP_SETTINGS) & set(deployed))
    assert not both, f"deployed although listed as not app settings: {both}"
    gone = sorted(set(NOT_APP_SETTINGS) - set(in_code))
    assert not gone, f"NOT_APP_SETTINGS lists names the code no longer reads: {gone}"


def test_every_bulwark_setting_deployed_is_read(bicep: dict[str, dict[str, Any]]) -> None:
    """No dead settings: what the deployment sets for Bulwark, the code reads."""
    in_code = names_in_code()
    dead = sorted(
        f"{name} ({file})"
        for name, file in app_settings(bicep).items()
        if name.startswith(("BULWARK_", "OTEL_", "AZURE_")) and name not in in_code
    )
    assert not dead, f"app settings no code reads: {dead}"


# Values only known at deployment, in the shape the deployment gives them.
DEPLOYMENT_VALUES = {
    # What the Key Vault reference resolves to: keyvault.bicep's app-storage-connection secret.
    "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=stbwapp0;AccountKey=a2V5;"
    "EndpointSuffix=core.windows.net",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
    "BULWARK_ARM_ENDPOINT": "https://management.azure.com",
}


def _resolve(value: Any, tree: dict[str, Any]) -> str | None:
    """A setting's value with parameter defaults filled in; None when only the deployment knows it.
    pycep writes identifiers and string literals alike, so a string naming a parameter is that parameter."""
    parameters = tree.get("parameters", {})
    if isinstance(value, str):
        if value in parameters:
            default = parameters[value].get("default")
            return str(default) if isinstance(default, str | int) else None
        return None if value in tree.get("variables", {}) else value
    function = value.get("function", {}) if isinstance(value, dict) else {}
    if function.get("type") == "string":
        return _resolve(function["parameters"]["value_to_convert"], tree)
    return None


def deployed_environment(bicep: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The function app's environment as the Bicep defaults set it."""
    env: dict[str, str] = {}
    for tree in bicep.values():
        for _, site in resources_of_type(tree, "Microsoft.Web/sites"):
            for entry in site["properties"]["siteConfig"]["appSettings"]:
                value = _resolve(entry["value"], tree)
                env[entry["name"]] = value or DEPLOYMENT_VALUES.get(entry["name"], "deployed-value")
    return env


def test_the_deployed_settings_are_accepted_by_the_code(bicep: dict[str, dict[str, Any]]) -> None:
    from shared.config import Settings
    from shared.telemetry.setup import TelemetryTarget

    connection = "".join(strings(bicep["modules/keyvault.bicep"]["resources"]["storageConnection"]))
    assert "AccountName=" in connection and "AccountKey=" in connection, "Settings.from_env needs that shape"
    env = deployed_environment(bicep)
    settings = Settings.from_env(env)
    assert not settings.is_local
    assert settings.worker.launcher == "aci" and settings.worker.resource_group and settings.worker.identity_id
    assert settings.worker.identity_client_id == DEPLOYMENT_VALUES["AZURE_CLIENT_ID"]
    assert (settings.worker.cpu, settings.worker.memory_gb, settings.worker.max_attempts) == (2.0, 4.0, 3)
    assert settings.azure.arm_writes_per_hour == 1200 and settings.key_vault
    assert TelemetryTarget.from_env(env).kind == "azure-monitor"
