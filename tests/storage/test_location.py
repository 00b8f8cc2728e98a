from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
from bulwark_local.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite

from shared.core.errors import ConfigError, StorageAuthError, UsageError
from shared.storage.azure_blob import AzureBlobStore
from shared.storage.directory import DirectoryStore
from shared.storage.location import AzureLocation, DirectoryLocation, open_store, parse_location
from shared.storage.retrying import RetryingBlobStore


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/srv/backups/repo", DirectoryLocation(Path("/srv/backups/repo"))),
        ("./repo ", DirectoryLocation(Path("repo"))),
        (
            "https://acct01.blob.core.windows.net/backups",
            AzureLocation("backups", "", "https://acct01.blob.core.windows.net", "acct01"),
        ),
        (
            "https://acct01.blob.core.windows.net/backups/prod/vm-1/",
            AzureLocation("backups", "prod/vm-1", "https://acct01.blob.core.windows.net", "acct01"),
        ),
        (
            "https://Acct01.blob.core.chinacloudapi.cn/backups",
            AzureLocation("backups", "", "https://acct01.blob.core.chinacloudapi.cn", "acct01"),
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/bk1/p",
            AzureLocation("bk1", "p", "http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1", True),
        ),
        (
            "https://localhost:8443/acct01/bk-2",
            AzureLocation("bk-2", "", "https://localhost:8443/acct01", "acct01", True),
        ),
        ("azure://backups", AzureLocation("backups")),
        ("azure://backups/prod/sql", AzureLocation("backups", "prod/sql")),
    ],
)
def test_parse_accepted_forms(text: str, expected: object) -> None:
    assert parse_location(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("s3://bucket/x", "unknown scheme"),
        ("https://example.com/backups", "neither a blob endpoint"),
        ("http://acct01.blob.core.windows.net/backups", "needs https"),
        ("https://acct01.blob.core.windows.net", "container is missing"),
        ("https://acct01.blob.core.windows.net/", "container is missing"),
        ("https://acct01.blob.core.windows.net/Backups", "not a container name"),
        ("https://acct01.blob.core.windows.net/ab", "not a container name"),
        ("https://acct01.blob.core.windows.net/a--b", "not a container name"),
        ("https://acct01.blob.core.windows.net/bk1/../x", "prefix is invalid"),
        ("http://127.0.0.1:10000/devstoreaccount1", "ACCOUNT/CONTAINER"),
        ("http://127.0.0.1:10000/Dev_Account/bk", "not a storage account name"),
        ("http://127.0.0.1:port/devstoreaccount1/bk", "port is not a number"),
        ("azure://", "container is missing"),
        ("https://acct01.blob.core.windows.net/bk?sv=2024&sig=SECRETSIG", "AZURE_STORAGE_SAS_TOKEN"),
    ],
)
def test_parse_refuses_bad_locations(text: str, reason: str) -> None:
    with pytest.raises(UsageError, match=reason) as caught:
        parse_location(text)
    assert "SECRETSIG" not in str(caught.value)
    assert "azure://CONTAINER" in str(caught.value)  # the message shows the accepted forms


def test_open_directory_store(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "repo"), {})
    assert isinstance(store, RetryingBlobStore)
    assert isinstance(store.inner, DirectoryStore)
    assert store.describe() == str(tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
    open_store(str(tmp_path / "repo"), {}, create=True)
    assert (tmp_path / "repo").is_dir()
    store.put("config", b"1")
    assert store.get("config") == b"1"


def test_directory_store_does_not_import_the_azure_sdk(tmp_path: Path) -> None:
    code = (
        "import sys; from shared.storage.location import open_store; "
        f"open_store({str(tmp_path)!r}, {{}}).put('k', b'v'); "
        "sys.exit(any(m.startswith('azure') for m in sys.modules))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_connection_string_form_needs_the_variable() -> None:
    with pytest.raises(ConfigError, match="AZURE_STORAGE_CONNECTION_STRING"):
        open_store("azure://backups", {})


def test_bad_connection_string_is_a_config_error_without_secrets() -> None:
    with pytest.raises(ConfigError) as caught:
        open_store("azure://backups", {"AZURE_STORAGE_CONNECTION_STRING": "AccountKey=SECRETKEY;nonsense"})
    assert "SECRETKEY" not in str(caught.value)


def test_key_and_sas_together_are_refused() -> None:
    env = {"AZURE_STORAGE_KEY": ACCOUNT_KEY, "AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=x"}
    with pytest.raises(ConfigError, match="Both"):
        open_store("https://acct01.blob.core.windows.net/bk1", env)


def test_key_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ConfigError, match="AZURE_STORAGE_KEY"):
        open_store("https://acct01.blob.core.windows.net/bk1", {"AZURE_STORAGE_KEY": "not a key!"})


def test_without_key_or_sas_the_azure_identity_is_used() -> None:
    store = open_store("https://acct01.blob.core.windows.net/bk1/prod", {})
    assert isinstance(store, RetryingBlobStore)
    assert isinstance(store.inner, AzureBlobStore)
    assert store.describe() == "https://acct01.blob.core.windows.net/bk1/prod/"
    assert type(store.inner._container.credential).__name__ == "DefaultAzureCredential"


@pytest.mark.azurite
class TestAgainstAzurite:
    def container_name(self) -> str:
        return f"loc-{time.time_ns()}"

    def test_connection_string(self, azurite: Azurite) -> None:
        name = self.container_name()
        env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        store = open_store(f"azure://{name}/prod", env, create=True)
        store.put("config", b"1")
        assert [info.key for info in open_store(f"azure://{name}", env).list()] == ["prod/config"]

    def test_emulator_url_with_account_key(self, azurite: Azurite) -> None:
        location = f"{azurite.blob_endpoint}/{self.container_name()}/p"
        store = open_store(location, {"AZURE_STORAGE_KEY": ACCOUNT_KEY}, create=True)
        store.put("k", b"v")
        assert store.get("k") == b"v"
        assert open_store(location, {}).get("k") == b"v"  # the development key is the default
        with pytest.raises(StorageAuthError):
            open_store(location, {"AZURE_STORAGE_KEY": "d3Jvbmcga2V5"}).get("k")

    def test_emulator_url_with_sas(self, azurite: Azurite) -> None:
        name = self.container_name()
        BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
        sas = generate_container_sas(
            ACCOUNT_NAME,
            name,
            account_key=ACCOUNT_KEY,
            permission=ContainerSasPermissions(read=True, write=True, list=True, delete=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        store = open_store(f"{azurite.blob_endpoint}/{name}", {"AZURE_STORAGE_SAS_TOKEN": f"?{sas}"})
        store.put("k", b"v")
        assert [info.key for info in store.list()] == ["k"]
        assert "sig=" not in store.describe()
