"""Which secret references an HTTP caller may name: files only on the local stack, and in Azure
only the app's own Key Vault; a SQL restore body is refused field by field otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from functions.triggers.http_browse import parse_restore_request, request_secrets
from shared.config import Settings
from shared.core.errors import ConfigError, InvalidDocumentError
from shared.services.job_spec import SecretRef
from shared.services.request_secrets import RequestSecrets

AZURE = RequestSecrets("kv-bulwark", files=False)
# What the app reads of a local stack file (the simulator's, without a running simulator).
LOCAL_STACK = {
    "subscription_id": "00000000-0000-0000-0000-000000000000",
    "arm_endpoint": "https://127.0.0.1:1",
    "ca_bundle": "ca.pem",
    "storage_connection_string": "UseDevelopmentStorage=true",
}
LOCAL = RequestSecrets(None, files=True)


def test_the_apps_vault_is_named_by_secret_name() -> None:
    assert AZURE.parse({"key_vault_secret": "sql-admin"}) == SecretRef("keyvault", vault="kv-bulwark", name="sql-admin")
    full = {"kind": "keyvault", "vault": "kv-bulwark", "name": "repo"}
    assert AZURE.parse(full) == SecretRef("keyvault", vault="kv-bulwark", name="repo")


@pytest.mark.parametrize("raw", [{"file": "/etc/shadow"}, {"kind": "file", "path": "/proc/self/environ"}])
def test_in_azure_a_file_reference_is_refused_with_what_to_send(raw: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"only on the local stack.*key_vault_secret"):
        AZURE.parse(raw)


def test_in_azure_another_vault_is_refused() -> None:
    with pytest.raises(ConfigError, match="reads secrets only from its own, 'kv-bulwark'"):
        AZURE.parse({"kind": "keyvault", "vault": "kv-elsewhere", "name": "x"})


def test_locally_files_are_fine_and_a_vault_name_needs_a_vault() -> None:
    assert LOCAL.parse({"file": "/tmp/pw"}) == SecretRef("file", path="/tmp/pw")
    with pytest.raises(ConfigError, match="has no Key Vault"):
        LOCAL.parse({"key_vault_secret": "x"})


@pytest.mark.parametrize("raw", ["hunter2", {"password": "hunter2"}, {"file": "/x", "value": "hunter2"}])
def test_a_secret_itself_is_never_accepted(raw: object) -> None:
    with pytest.raises(ConfigError) as caught:
        AZURE.parse(raw)
    assert "hunter2" not in str(caught.value)


def test_a_restore_body_with_file_references_is_refused_in_azure_field_by_field() -> None:
    body = {
        "point": "3f2a9c",
        "server": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/servers/dr",
        "name": "sales",
        "repository": {"location": "https://a.blob.core.windows.net/c", "passphrase": {"file": "/etc/passwd"}},
        "login": {"file": "/etc/shadow"},
    }
    with pytest.raises(InvalidDocumentError) as caught:
        parse_restore_request(body, restore_id="r", stamp="20261125", secrets=AZURE)
    fields = {problem.path for problem in caught.value.problems}
    assert fields == {"repository", "login"}
    allowed = parse_restore_request(body, restore_id="r", stamp="20261125", secrets=LOCAL)
    assert allowed.login == SecretRef("file", path="/etc/shadow")


def test_the_app_accepts_files_only_when_it_runs_on_the_local_stack(tmp_path: Path) -> None:
    account = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=bm90LWEta2V5"  # "not-a-key", made up
    azure = {"AZURE_SUBSCRIPTION_ID": "0" * 8, "AzureWebJobsStorage": account, "BULWARK_KEY_VAULT": "kv-bulwark"}
    assert request_secrets(Settings.from_env(azure)) == AZURE
    stack = tmp_path / "stack.json"
    stack.write_text(json.dumps(LOCAL_STACK))
    local = request_secrets(Settings.from_env({"BULWARK_LOCAL_STACK": str(stack)}))
    assert local.files and local.key_vault is None
