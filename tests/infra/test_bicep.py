"""Every Bicep file parses, documents itself, and wires its modules to parameters that exist.

There is no Bicep CLI on these machines; pycep-parser (what checkov parses Bicep with) stands in
for ``bicep build``, and the module checks below catch what the compiler would: a module given a
parameter it does not declare, or not given one it requires.
"""

from __future__ import annotations

import json
from typing import Any

from tests.infra.trees import INFRA, body, description

MAIN = "main.bicep"


def test_every_bicep_file_parses(bicep_files: dict[str, dict[str, Any]]) -> None:
    assert MAIN in bicep_files and len(bicep_files) >= 5, sorted(bicep_files)
    broken = {name: entry["error"] for name, entry in bicep_files.items() if "error" in entry}
    assert not broken, broken


def test_every_parameter_and_output_is_documented(bicep: dict[str, dict[str, Any]]) -> None:
    undocumented = [
        f"{file}: {kind} {name}"
        for file, tree in bicep.items()
        for kind in ("parameters", "outputs")
        for name, declaration in tree.get(kind, {}).items()
        if not (description(declaration) or "").strip()
    ]
    assert not undocumented, "add a @description(...) to: " + "; ".join(undocumented)


def test_modules_get_the_parameters_they_declare(bicep: dict[str, dict[str, Any]]) -> None:
    problems: list[str] = []
    checked = 0
    for file, tree in bicep.items():
        folder = (INFRA / file).parent
        for name, module in tree.get("modules", {}).items():
            target = (folder / module["detail"]["path"]).resolve().relative_to(INFRA).as_posix()
            if target not in bicep:
                problems.append(f"{file}: module {name} points at {target}, which is not a Bicep file under infra/")
                continue
            declared = bicep[target].get("parameters", {})
            given = set(body(module).get("params") or {})
            required = {p for p, d in declared.items() if "default" not in d}
            for extra in sorted(given - set(declared)):
                problems.append(f"{file}: module {name} passes '{extra}', which {target} does not declare")
            for missing in sorted(required - given):
                problems.append(f"{file}: module {name} does not pass '{missing}', which {target} requires")
            checked += 1
    assert checked >= 8, f"only {checked} module declarations found"
    assert not problems, "\n".join(problems)


def test_every_module_file_is_used(bicep: dict[str, dict[str, Any]]) -> None:
    used = {MAIN}
    for file, tree in bicep.items():
        folder = (INFRA / file).parent
        for module in tree.get("modules", {}).values():
            used.add((folder / module["detail"]["path"]).resolve().relative_to(INFRA).as_posix())
    assert set(bicep) == used, f"Bicep files nothing deploys: {sorted(set(bicep) - used)}"


def test_the_parameters_file_names_parameters_of_main(bicep: dict[str, dict[str, Any]]) -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    assert document["$schema"].endswith("deploymentParameters.json#")
    given = set(document["parameters"])
    declared = bicep[MAIN]["parameters"]
    assert given <= set(declared), f"not parameters of main.bicep: {sorted(given - set(declared))}"
    required = {name for name, d in declared.items() if "default" not in d}
    assert required <= given, f"main.bicep requires {sorted(required - given)}; give them in main.parameters.json"


def test_secrets_are_secure_parameters_and_never_outputs(bicep: dict[str, dict[str, Any]]) -> None:
    """A passphrase reaches Key Vault only: @secure() on the way in, no output on the way out."""
    for file, tree in bicep.items():
        for name, parameter in tree.get("parameters", {}).items():
            if any(word in name.lower() for word in ("passphrase", "password")) and not name.endswith("Name"):
                kinds = {d.get("type") for d in parameter.get("decorators", [])}
                assert "secure" in kinds, f"{file}: parameter {name} holds a secret and must be @secure()"
        for name, output in tree.get("outputs", {}).items():
            text = json.dumps(output.get("value"))
            assert "listKeys" not in text and "list_keys" not in text, f"{file}: output {name} exposes account keys"
            assert "repositoryPassphrase" not in text, f"{file}: output {name} exposes the passphrase"


def test_azure_yaml_deploys_the_app_and_builds_the_image_from_main_outputs(bicep: dict[str, dict[str, Any]]) -> None:
    import re

    import yaml

    project = yaml.safe_load((INFRA.parent / "azure.yaml").read_text(encoding="utf-8"))
    assert project["infra"]["provider"] == "bicep"
    assert (INFRA.parent / project["infra"]["path"] / f"{project['infra']['module']}.bicep") == INFRA / MAIN
    (service,) = project["services"].values()
    assert (service["host"], service["language"], service["project"]) == ("function", "python", ".")
    # azd deploys to the resource tagged azd-service-name with the service's name.
    app = json.dumps(bicep["modules/functionapp.bicep"]["resources"]["app"])
    tag = f'azd-service-name\'?": "{next(iter(project["services"]))}"'  # pycep keeps a quoted key's quotes
    assert re.search(tag, app), "the function app needs the azd-service-name tag of the azure.yaml service"
    outputs = set(bicep[MAIN]["outputs"])
    for shell in project["hooks"]["postprovision"].values():
        used = set(re.findall(r"\$(?:env:)?([A-Z_]+)", shell["run"]))
        assert used and used <= outputs, f"the hook uses {sorted(used - outputs)}, which main.bicep does not output"
        assert "infra/Dockerfile" in shell["run"]
