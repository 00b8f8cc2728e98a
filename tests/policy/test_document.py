"""The policy document: round trips, defaults, inline secrets, JSON Schema and OpenAPI components."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from shared.core.errors import PolicyValidationError
from shared.policy.azure_ids import ResourceKind
from shared.policy.document import (
    openapi_components,
    policy_from_dict,
    policy_from_json,
    policy_json_schema,
    policy_to_dict,
    validate_policy,
)
from shared.policy.model import (
    Encryption,
    ImageBackup,
    Policy,
    RepositoryRef,
    SecretRef,
    SnapshotSettings,
    SqlMode,
    WorkerPlacement,
)
from shared.policy.schedule import DailySchedule, Schedule, ShortMonth, Week, Weekday
from shared.policy.scope import Scope, TagMatch
from tests.policy.documents import DB, SERVER, VM, VM2, minimal_document, valid_document

ACCOUNT_KEY = base64.b64encode(bytes(range(7, 71))).decode()  # 88 characters, like a storage account key
SAS_SIGNATURE = "sv=2022-11-02&ss=b&srt=co&sp=rwdl&se=2030-01-01T00:00:00Z&sig=Zm9vYmFyYmF6cXV4%2Bp0%3D"
PASSWORD = "S3cr3t!Pa55w0rd"
HEX_KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


# -- round trips -------------------------------------------------------------------------------------


def test_full_document_round_trips() -> None:
    policy = policy_from_dict(valid_document())
    document = policy_to_dict(policy)
    assert policy_from_dict(document) == policy
    assert policy_from_json(json.dumps(document)) == policy
    assert policy_to_dict(policy_from_dict(document)) == document


def test_full_document_is_read_into_the_model() -> None:
    policy = policy_from_dict(valid_document())
    assert policy.scope.kinds == (ResourceKind.VM, ResourceKind.SQL_DATABASE)
    assert policy.scope.resources == (VM, DB)
    assert policy.scope.exclude.resources == (VM2,)
    assert policy.scope.tag_match is TagMatch.ANY
    assert policy.schedule.daily == DailySchedule((dt.time(2, 30), dt.time(14, 30)), (Weekday.MON, Weekday.FRI))
    image = policy.image_backup.schedule
    assert image is not None and image.monthly is not None and image.yearly is not None
    assert (image.monthly.week, image.monthly.weekday) == (Week.LAST, Weekday.FRI)
    assert (image.yearly.month, image.yearly.day, image.yearly.short_month) == (2, 29, ShortMonth.LAST_DAY)
    assert policy.sql is not None and policy.sql.mode is SqlMode.STAGING and policy.sql.staging_server == SERVER
    assert policy.workers.placement is WorkerPlacement.SOURCE_REGION
    assert policy.encryption.passphrase == SecretRef(key_vault_secret="bulwark-repo-passphrase")


def test_minimal_document_gets_the_defaults() -> None:
    policy = policy_from_dict(minimal_document())
    assert policy.enabled is True
    assert policy.description == ""
    assert policy.scope.kinds == (ResourceKind.VM,)
    assert policy.image_backup == ImageBackup(enabled=False)
    assert policy.sql is None
    assert policy.workers.placement is WorkerPlacement.REPOSITORY_REGION
    assert (policy.concurrency.resources_in_flight, policy.concurrency.workers_in_flight) == (10, 4)
    assert policy.schedule.daily is not None and policy.schedule.daily.weekdays == tuple(Weekday)
    document = policy_to_dict(policy)
    assert "sql" not in document  # None is left out ...
    assert document["concurrency"] == {"resources_in_flight": 10, "workers_in_flight": 4}  # ... defaults are written
    assert policy_from_dict(document) == policy


def test_full_weekday_names_are_accepted_and_written_short() -> None:
    document = minimal_document()
    document["schedule"]["daily"]["weekdays"] = ["Monday", "THURSDAY", "sat"]
    policy = policy_from_dict(document)
    assert policy_to_dict(policy)["schedule"]["daily"]["weekdays"] == ["mon", "thu", "sat"]


def test_policy_built_in_code_is_validated_like_a_document() -> None:
    policy = Policy(
        id="code-built",
        scope=Scope(resources=(VM,)),
        schedule=Schedule("Europe/Berlin", daily=DailySchedule((dt.time(1, 0),))),
        repository=RepositoryRef("/srv/repo"),
        encryption=Encryption(SecretRef(file="/etc/bulwark/passphrase")),
        snapshots=SnapshotSettings(keep=499),
    )
    validate_policy(policy)
    with pytest.raises(PolicyValidationError, match=r"snapshots\.keep: 499 snapshots per disk"):
        validate_policy(
            Policy(**{**policy.__dict__, "image_backup": ImageBackup(True, policy.schedule, None)})  # type: ignore[arg-type]
        )


def test_emulator_repository_needs_no_region() -> None:
    document = minimal_document()
    document["repository"] = {"location": "http://127.0.0.1:10000/devstoreaccount1/bulwark"}
    assert policy_from_dict(document).repository.region is None


# -- inline secrets --------------------------------------------------------------------------------

SECRET_CASES: list[tuple[str, str, Any, str]] = [
    ("SAS in the location", "repository.location", f"https://acct.blob.core.windows.net/c?{SAS_SIGNATURE}", "sig="),
    (
        "connection string in the location",
        "repository.location",
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};",
        "AccountKey=",
    ),
    ("password in the description", "description", f"login sa, password={PASSWORD}", "password="),
    ("account key as a tag value", "scope.tags[0]", f"key={ACCOUNT_KEY}", "88-character base64 blob"),
    ("account key as a secret name", "encryption.passphrase.key_vault_secret", ACCOUNT_KEY, "base64 blob"),
    (
        "hex key in the description",
        "description",
        "key " + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "hex key",
    ),
    (
        "PEM key in the description",
        "description",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----",
        "PEM private key",
    ),
    ("token in an unknown field", "token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig", "access token"),
]


@pytest.mark.parametrize(("name", "path", "value", "kind"), SECRET_CASES, ids=[case[0] for case in SECRET_CASES])
def test_inline_secrets_are_refused_by_path_without_repeating_them(name: str, path: str, value: Any, kind: str) -> None:
    document = valid_document()
    node: Any = document
    steps = path.replace("[0]", ".0").split(".")
    for step in steps[:-1]:
        node = node[int(step)] if step.isdigit() else node[step]
    last = steps[-1]
    node[int(last) if last.isdigit() else last] = value
    with pytest.raises(PolicyValidationError) as caught:
        policy_from_dict(document)
    problems = caught.value.problems
    assert [problem.path for problem in problems] == [path]
    assert problems[0].message.startswith("looks like an inline secret (")
    assert kind in problems[0].message
    assert problems[0].fix == (
        'store the secret in Key Vault and reference it by name, e.g. {"key_vault_secret": "bulwark-repo-key"} '
        '(in local mode, {"file": "/etc/bulwark/secret"})'
    )
    text = str(caught.value) + json.dumps(caught.value.to_dict())
    for secret in (ACCOUNT_KEY, PASSWORD, "Zm9vYmFyYmF6cXV4", "9f86d081884c7d", "MIIEow", "eyJzdWIi"):
        assert secret not in text


def test_secret_looking_field_name_is_refused() -> None:
    document = valid_document()
    document["repository"]["AccountKey=abc"] = True
    with pytest.raises(PolicyValidationError) as caught:
        policy_from_dict(document)
    assert caught.value.problems[0].path == "repository.AccountKey=abc"
    assert caught.value.problems[0].message == "the field name looks like an inline secret (it contains 'AccountKey=')"


@pytest.mark.parametrize(
    "harmless",
    [
        "/subscriptions/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/resourceGroups/ProductionWorkloads2/providers/"
        "Microsoft.Compute/virtualMachines/MyProductionVirtualMachine01WestEuropeRegion",
        "Backups of the billing database; owner: finance-platform-team@example.com; password: in Key Vault",
        "bulwark-repository-passphrase-production-westeurope",
    ],
)
def test_long_names_are_not_mistaken_for_secrets(harmless: str) -> None:
    document = valid_document()
    if harmless.startswith("/"):
        document["scope"]["resources"][0] = harmless
    elif "@" in harmless:
        document["description"] = harmless
    else:
        document["encryption"]["passphrase"]["key_vault_secret"] = harmless
    policy_from_dict(document)


# -- JSON Schema / OpenAPI ---------------------------------------------------------------------------


def test_schema_describes_every_field_and_forbids_others() -> None:
    schema = policy_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$ref"] == "#/$defs/Policy"
    definitions = schema["$defs"]
    assert set(definitions) >= {"Policy", "Scope", "Exclusions", "Schedule", "DailySchedule", "MonthlySchedule",
                                "YearlySchedule", "WeeklySchedule", "SnapshotSettings", "ImageBackup",
                                "BackupRetention", "SqlSettings", "SecretRef", "RepositoryRef", "Encryption",
                                "Workers", "Concurrency"}  # fmt: skip
    for definition in definitions.values():
        assert definition["type"] == "object"
        assert definition["additionalProperties"] is False
    policy = definitions["Policy"]
    assert policy["required"] == ["id", "scope", "schedule", "repository", "encryption"]
    assert policy["properties"]["id"]["pattern"] == "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
    assert policy["properties"]["sql"] == {
        "description": "SQL export (required when scope.kinds has 'sql_database')",
        "anyOf": [{"$ref": "#/$defs/SqlSettings"}, {"type": "null"}],
    }
    keep = definitions["SnapshotSettings"]["properties"]["keep"]
    assert (keep["type"], keep["minimum"], keep["maximum"]) == ("integer", 1, 500)
    times = definitions["DailySchedule"]["properties"]["times"]
    assert times["minItems"] == 1 and times["maxItems"] == 24 and times["uniqueItems"] is True
    assert times["items"]["pattern"] == "^([01]\\d|2[0-3]):([0-5]\\d)$"
    assert definitions["Scope"]["properties"]["tag_match"]["enum"] == ["any", "all"]
    assert definitions["Scope"]["properties"]["kinds"]["default"] == ["vm"]
    json.dumps(schema)  # serialisable as is


def _validate(instance: Any, schema: dict[str, Any], definitions: dict[str, Any]) -> None:
    """A small JSON Schema check (the subset the policy schema uses), enough to cross-check the codec."""
    if "$ref" in schema:
        _validate(instance, definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
        return
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _validate(instance, option, definitions)
                return
            except AssertionError as exc:
                errors.append(exc)
        raise AssertionError(errors)
    kind = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if kind == "integer":
        assert isinstance(instance, int) and not isinstance(instance, bool)
        assert instance >= schema.get("minimum", instance) and instance <= schema.get("maximum", instance)
    elif kind is not None:
        assert isinstance(instance, checks[kind]), (instance, kind)
    if "enum" in schema:
        assert instance in schema["enum"]
    if kind == "object":
        assert set(instance) <= set(schema["properties"]), set(instance) - set(schema["properties"])
        assert set(schema.get("required", [])) <= set(instance)
        for name, value in instance.items():
            _validate(value, schema["properties"][name], definitions)
    if kind == "array":
        assert len(instance) >= schema.get("minItems", 0)
        for item in instance:
            _validate(item, schema["items"], definitions)


@pytest.mark.parametrize("make", [valid_document, minimal_document])
def test_written_documents_satisfy_the_schema(make: Any) -> None:
    schema = policy_json_schema()
    _validate(policy_to_dict(policy_from_dict(make())), schema, schema["$defs"])


def test_openapi_components_reference_components() -> None:
    components = openapi_components()
    refs = json.dumps(components)
    assert "#/$defs/" not in refs
    assert '"$ref": "#/components/schemas/Scope"' in refs
    assert components["Policy"]["properties"]["scope"]["$ref"] == "#/components/schemas/Scope"
