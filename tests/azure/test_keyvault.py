"""Key Vault secrets: the simulator's vault data plane, seeded by `bulwark-sim keyvault set`, read by
the real SecretClient through shared.azure.keyvault, and errors translated with the next step."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError
from bulwark_local.sim_cli import app
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.stack import LOCATION, SUBSCRIPTION_ID, TENANT_ID, Stack
from typer.testing import CliRunner

from shared.azure.credential import StaticTokenCredential
from shared.azure.keyvault import KeyVaultSecrets, vault_url
from shared.core.errors import AzureAuthError, ConfigError
from shared.policy.document import policy_from_dict
from shared.policy.store import InMemoryPolicyStore
from shared.services.job_spec import SecretRef
from shared.services.sql_backup import SqlPolicies
from shared.worker.adapters import SecretResolvers

from .conftest import settings_for

VALUE = "kv passphrase: correct horse battery staple"


@pytest.fixture
def stack_file(sim: SimulatorEndpoints, tmp_path: Path) -> Path:
    path = tmp_path / "stack.json"
    Stack(
        arm_endpoint=sim.arm,
        ca_bundle=sim.ca_bundle,
        subscription_id=SUBSCRIPTION_ID,
        tenant_id=TENANT_ID,
        location=LOCATION,
        storage_connection_string="UseDevelopmentStorage=true",
        data_plane_endpoint=sim.data,
        vhd_storage_account={"name": "bulwarkvhds", "blob_endpoint": f"{sim.data}/bulwarkvhds"},
        admin_endpoint=f"{sim.arm}/_bulwark",
        pids={"simulator": sim.pid},
        state_dir=sim.state_dir,
    ).write(path)
    return path


def seed(stack_file: Path, tmp_path: Path, vault: str, name: str, value: str) -> str:
    source = tmp_path / f"{name}.txt"
    source.write_text(value + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["--stack", str(stack_file), "keyvault", "set", vault, name, "--from-file", str(source)]
    )
    assert result.exit_code == 0, result.output
    assert value not in result.output
    return result.output


def raw(sim: SimulatorEndpoints, path: str, *, token: str | None) -> tuple[int, dict[str, str], dict[str, object]]:
    request = urllib.request.Request(sim.arm + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=sim.ca_bundle)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_set_with_the_cli_then_read_with_the_secret_client(
    sim: SimulatorEndpoints, stack_file: Path, tmp_path: Path
) -> None:
    seed(stack_file, tmp_path, "kv-bulwark", "repo-pass", "first value")
    seed(stack_file, tmp_path, "kv-bulwark", "repo-pass", VALUE)  # a new version wins
    seed(stack_file, tmp_path, "kv-other", "repo-pass", "another vault's secret")
    settings = settings_for(sim)
    secrets = KeyVaultSecrets(settings, StaticTokenCredential("bulwark-local"))
    try:
        assert secrets.get("kv-bulwark", "repo-pass") == VALUE
        assert secrets.get("kv-other", "repo-pass") == "another vault's secret"
        resolvers = SecretResolvers.for_azure(settings, StaticTokenCredential("bulwark-local"))
        assert resolvers.resolve(SecretRef("keyvault", vault="kv-bulwark", name="repo-pass")) == VALUE

        with pytest.raises(ConfigError) as missing:
            secrets.get("kv-bulwark", "no-such-secret")
        assert "Key Vault kv-bulwark secret no-such-secret does not exist" in str(missing.value)
        assert "az keyvault secret set" in (missing.value.hint or "")
    finally:
        secrets.close()


def test_the_vault_challenges_unauthenticated_requests_like_key_vault(sim: SimulatorEndpoints) -> None:
    path = "/keyvault/kv-bulwark/secrets/repo-pass/?api-version=7.6"
    status, headers, body = raw(sim, path, token=None)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Bearer authorization="https://login.microsoftonline.com/')
    assert 'resource="https://vault.azure.net"' in headers["WWW-Authenticate"]
    assert "value" not in body
    status, _, body = raw(sim, "/keyvault/kv-bulwark/secrets/repo-pass/", token="any")
    assert status == 400 and body["error"]["code"] == "BadParameter"  # type: ignore[index]
    status, _, body = raw(sim, "/keyvault/kv-bulwark/secrets/bad_name/?api-version=7.6", token="any")
    assert status == 400


def test_without_azure_settings_a_keyvault_reference_says_what_is_missing() -> None:
    with pytest.raises(ConfigError) as error:
        SecretResolvers().resolve(SecretRef("keyvault", vault="kv", name="pass"))
    assert "Key Vault kv secret pass" in str(error.value)


def test_a_refused_token_is_an_auth_error_naming_the_role(sim: SimulatorEndpoints) -> None:
    class NoToken:
        def get_token(self, *scopes: str, **kwargs: object) -> object:
            raise ClientAuthenticationError("no identity here")

    secrets = KeyVaultSecrets(settings_for(sim), NoToken())  # type: ignore[arg-type]
    with pytest.raises(AzureAuthError) as error:
        secrets.get("kv-bulwark", "repo-pass")
    assert "no Azure token" in str(error.value)
    assert vault_url(settings_for(sim), "kv-bulwark").endswith("/keyvault/kv-bulwark")


def test_a_policys_repository_and_sql_login_secrets_resolve_from_the_vault(
    sim: SimulatorEndpoints, stack_file: Path, tmp_path: Path
) -> None:
    """What a policy names by key_vault_secret becomes a keyvault reference the resolvers read."""
    seed(stack_file, tmp_path, "kv-app", "repo-pass", VALUE)
    seed(stack_file, tmp_path, "kv-app", "sql-admin", "Sql-Passw0rd-from-the-vault!")
    group = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/data"
    store = InMemoryPolicyStore()
    store.create(
        policy_from_dict(
            {
                "id": "kv-sql",
                "scope": {"kinds": ["sql_database"], "resource_groups": [group]},
                "schedule": {"time_zone": "UTC", "daily": {"times": ["03:00"]}},
                "repository": {"location": str(tmp_path / "repo"), "region": "westeurope"},
                "encryption": {"passphrase": {"key_vault_secret": "repo-pass"}},
                "sql": {"retention": {"days": 7}, "login": {"key_vault_secret": "sql-admin"}},
            }
        )
    )
    policies = SqlPolicies(store, subscription_id=SUBSCRIPTION_ID, key_vault="kv-app")
    policy = policies.policy("kv-sql")
    resolvers = SecretResolvers.for_azure(settings_for(sim), StaticTokenCredential("bulwark-local"))
    assert resolvers.resolve(policies.login_reference(policy)) == "Sql-Passw0rd-from-the-vault!"
    assert resolvers.resolve(policies.repository(policy).passphrase) == VALUE
