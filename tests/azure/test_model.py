"""Pure parts of the Azure adapters: ids, SAS wrapper, names, selections, settings, error translation."""

from __future__ import annotations

import pickle
import re

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from shared.azure.arm import translate_arm_error
from shared.azure.compute import snapshot_name, snapshot_tags
from shared.azure.model import SasUrl, VmSelection
from shared.azure.resource_id import ResourceId, same_resource
from shared.azure.settings import AzureSettings
from shared.core.errors import ConfigError, ThrottledError, TransientAzureError, UsageError

DISK = "/subscriptions/s1/resourceGroups/Prod-RG/providers/Microsoft.Compute/disks/web-data.0"
SAS = "https://md-x.z1.blob.storage.azure.net/c1/abcd?sv=2018-03-28&sr=b&si=g&sp=r&se=2030-01-01T00%3A00%3A00Z&sig=SECRET%2Bsig%3D"


def test_resource_ids_parse_and_compare_case_insensitively() -> None:
    parsed = ResourceId.parse(DISK, expect="microsoft.compute/DISKS")
    assert (parsed.subscription, parsed.resource_group, parsed.name) == ("s1", "Prod-RG", "web-data.0")
    assert parsed.kind == "Microsoft.Compute/disks" and str(parsed) == DISK
    database = ResourceId.parse("/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/servers/a/databases/b")
    assert database.kind == "Microsoft.Sql/servers/databases" and database.parent().name == "a"
    assert same_resource(DISK.upper(), DISK + "/")
    for bad in ("", "disk", "/subscriptions/s/resourceGroups/g", "/subscriptions/s/resourceGroups/g/providers/X/y"):
        with pytest.raises(UsageError):
            ResourceId.parse(bad)


def test_sas_url_hides_its_signature() -> None:
    sas = SasUrl(SAS)
    assert sas.reveal() == SAS and sas.address == "https://md-x.z1.blob.storage.azure.net/c1/abcd"
    for shown in (repr(sas), str(sas), f"{sas}", f"{[sas]}", repr({"sas": sas})):
        assert "SECRET" not in shown
    with pytest.raises(TypeError):
        pickle.dumps(sas)
    with pytest.raises(UsageError):
        SasUrl("ftp://x")


def test_snapshot_names_are_valid_deterministic_and_distinct() -> None:
    name = snapshot_name(DISK, "2026-11-25T10:00:00Z/run 7")
    assert name == snapshot_name(DISK.lower(), "2026-11-25T10:00:00Z/run 7")  # ids are case-insensitive
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]", name)
    other = DISK.replace("Prod-RG", "Other-RG")
    assert snapshot_name(other, "s") != snapshot_name(DISK, "s")  # same disk name, other group
    long = snapshot_name(DISK.replace("web-data.0", "d" * 80), "x" * 90)
    assert len(long) <= 80
    assert snapshot_tags("p", "s", "d") == {"bulwark-policy": "p", "bulwark-session": "s", "bulwark-disk": "d",
                                            "created-by": "bulwark"}  # fmt: skip


def test_selection_tags_and_exclusions() -> None:
    selection = VmSelection(tags={"env": "prod", "team": "*"}, exclude_ids=("/X/VM",), exclude_tags={"backup": "off"})
    assert selection.wants_tags({"ENV": "prod", "team": "a"})
    assert not selection.wants_tags({"env": "Prod", "team": "a"})  # values are case-sensitive
    assert not selection.wants_tags({"env": "prod"})
    assert selection.excludes("/x/vm", {}) and selection.excludes("/y", {"Backup": "off"})
    assert not selection.excludes("/y", {"backup": "on"})


def test_settings_from_environment_and_for_the_local_stack() -> None:
    settings = AzureSettings.from_mapping({"AZURE_SUBSCRIPTION_ID": "s", "BULWARK_ARM_WRITES_PER_HOUR": "600"})
    assert settings.arm_endpoint == "https://management.azure.com" and settings.arm_writes_per_hour == 600
    assert settings.credential_scope == "https://management.azure.com/.default" and settings.static_token is None
    with pytest.raises(ConfigError, match="AZURE_SUBSCRIPTION_ID"):
        AzureSettings.from_mapping({})
    with pytest.raises(ConfigError, match="not a number"):
        AzureSettings.from_mapping({"AZURE_SUBSCRIPTION_ID": "s", "BULWARK_ARM_WRITES_PER_HOUR": "many"})
    local = AzureSettings.for_local_stack(
        {"subscription_id": "s", "arm_endpoint": "https://127.0.0.1:1", "ca_bundle": "/ca.pem"}
    )
    assert local.polling_interval == 0 and local.static_token and local.static_token not in repr(local)

    class Stack:  # what running_stack yields: attributes, not keys
        subscription_id, arm_endpoint, ca_bundle = "s", "https://127.0.0.1:2", "/ca.pem"

    assert AzureSettings.for_local_stack(Stack(), arm_retries=2).arm_endpoint == "https://127.0.0.1:2"


def test_credentials_come_from_azure_identity_in_azure_and_a_static_token_locally() -> None:
    from azure.identity import DefaultAzureCredential

    from shared.azure.credential import StaticTokenCredential, build_credential

    in_azure = AzureSettings.from_mapping({"AZURE_SUBSCRIPTION_ID": "s", "AZURE_CLIENT_ID": "client-1"})
    credential = build_credential(in_azure)
    assert isinstance(credential, DefaultAzureCredential)  # managed identity in Azure, az login elsewhere
    local = AzureSettings.for_local_stack(
        {"subscription_id": "s", "arm_endpoint": "https://127.0.0.1:1", "ca_bundle": "/ca.pem"}
    )
    static = build_credential(local)
    assert isinstance(static, StaticTokenCredential) and local.static_token
    assert static.get_token(local.credential_scope).token == local.static_token
    assert local.static_token not in repr(static)


def test_transient_errors_are_typed_and_secret_free() -> None:
    error = translate_arm_error(
        ServiceRequestError(f"Max retries exceeded with url: {SAS}"), action="grant access to", resource=DISK
    )
    assert isinstance(error, TransientAzureError) and "SECRET" not in str(error)
    assert "disk 'web-data.0' in resource group 'Prod-RG'" in str(error)
    throttled = HttpResponseError(message="Too many requests")
    throttled.status_code = 429
    assert isinstance(translate_arm_error(throttled, action="list"), ThrottledError)


def test_refusals_name_the_roles_to_grant() -> None:
    from shared.core.errors import AzureAuthError

    refused = HttpResponseError(message="The client does not have authorization to perform action")
    refused.status_code = 403
    error = translate_arm_error(refused, action="snapshot disk 'd' as", resource=DISK)
    assert isinstance(error, AzureAuthError) and "Disk Snapshot Contributor" in str(error)
