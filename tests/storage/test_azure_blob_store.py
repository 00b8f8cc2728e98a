from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient
from bulwark_local.azurite import Azurite

from shared.core.errors import (
    BlobExistsError,
    BlobNotFoundError,
    LeaseHeldError,
    StorageAuthError,
    StorageError,
    TransientStorageError,
)
from shared.storage.azure_blob import CLIENT_OPTIONS, AzureBlobStore, _translate
from tests.storage.contract import LEASE_TTL, Advance, BlobStoreContract

_names = itertools.count()


def container_client(azurite: Azurite, name: str | None = None) -> ContainerClient:
    service = BlobServiceClient.from_connection_string(azurite.connection_string, **CLIENT_OPTIONS)
    return service.get_container_client(name or f"test-{time.time_ns()}-{next(_names)}")


@pytest.fixture
def container(azurite: Azurite) -> Iterator[ContainerClient]:
    client = container_client(azurite)
    client.create_container()
    yield client
    client.delete_container()


@pytest.mark.azurite
class TestAzureBlobStore(BlobStoreContract):
    @pytest.fixture
    def store(self, container: ContainerClient) -> AzureBlobStore:
        # An unrelated blob outside the prefix proves the prefix is applied and stripped.
        container.upload_blob("elsewhere", b"not ours")
        return AzureBlobStore(container, prefix="repo/one")

    @pytest.fixture
    def advance(self) -> Advance:
        return time.sleep  # the service keeps lease time


@pytest.mark.azurite
class TestAzureSpecifics:
    def test_describe_names_the_container_and_prefix(self, container: ContainerClient) -> None:
        store = AzureBlobStore(container, prefix="/prod/")
        assert store.describe() == f"{container.url}/prod/"

    def test_keys_live_under_the_prefix(self, container: ContainerClient) -> None:
        AzureBlobStore(container, prefix="prod").put("config", b"1")
        assert [blob.name for blob in container.list_blobs()] == ["prod/config"]

    def test_ensure_container_creates_it_once(self, azurite: Azurite) -> None:
        client = container_client(azurite)
        store = AzureBlobStore(client)
        assert list(store.list()) == []  # a missing container reads as empty
        with pytest.raises(BlobNotFoundError, match="container does not exist"):
            store.get("config")
        store.ensure_container()
        store.ensure_container()
        store.put("config", b"1")
        assert store.get("config") == b"1"
        client.delete_container()

    def test_short_lease_ttl_is_raised_to_azure_minimum(self, container: ContainerClient) -> None:
        store = AzureBlobStore(container)
        lease = store.acquire_lease("locks/short", ttl_seconds=1)
        time.sleep(2)
        with pytest.raises(LeaseHeldError):
            store.acquire_lease("locks/short", ttl_seconds=LEASE_TTL)
        lease.release()

    def test_leased_object_refuses_writes_without_the_lease(self, container: ContainerClient) -> None:
        store = AzureBlobStore(container)
        lease = store.acquire_lease("locks/held", ttl_seconds=LEASE_TTL)
        with pytest.raises(LeaseHeldError):
            store.put("locks/held", b"x", overwrite=True)
        with pytest.raises(LeaseHeldError):
            store.delete("locks/held")
        lease.release()
        store.delete("locks/held")

    def test_wrong_key_is_an_auth_error_without_secrets(self, azurite: Azurite, container: ContainerClient) -> None:
        wrong = azurite.connection_string.replace(
            azurite.connection_string.split("AccountKey=")[1].split(";")[0], "d3Jvbmc="
        )
        client = ContainerClient.from_connection_string(wrong, container.container_name)
        with pytest.raises(StorageAuthError) as caught:
            AzureBlobStore(client).get("config")
        assert "d3Jvbmc=" not in str(caught.value)

    def test_unreachable_service_is_transient(self) -> None:
        client = ContainerClient("http://127.0.0.1:9/devstoreaccount1", "nothing", retry_total=0, connection_timeout=1)
        with pytest.raises(TransientStorageError):
            AzureBlobStore(client).get("config")


def http_error(
    status: int, code: str | None = None, cls: type[HttpResponseError] = HttpResponseError
) -> HttpResponseError:
    error = cls(message="failure\nRequestId:1\nurl https://a.blob.core.windows.net/c?sv=1&sig=SECRETSIG")
    error.status_code = status
    error.error_code = code  # type: ignore[attr-defined]  # set by the storage SDK
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (http_error(404, "BlobNotFound", ResourceNotFoundError), BlobNotFoundError),
        (http_error(409, "BlobAlreadyExists", ResourceExistsError), BlobExistsError),
        (http_error(409, "LeaseAlreadyPresent", ResourceExistsError), LeaseHeldError),
        (http_error(409, "LeaseIdMismatchWithLeaseOperation"), LeaseHeldError),
        (http_error(412, "LeaseIdMissing"), LeaseHeldError),
        (http_error(403, "AuthenticationFailed", ClientAuthenticationError), StorageAuthError),
        (http_error(403, "AuthorizationPermissionMismatch"), StorageAuthError),
        (ClientAuthenticationError("DefaultAzureCredential failed"), StorageAuthError),
        (http_error(503, "ServerBusy"), TransientStorageError),
        (http_error(500, "InternalError"), TransientStorageError),
        (http_error(429), TransientStorageError),
        (http_error(408), TransientStorageError),
        (ServiceRequestError("connection refused"), TransientStorageError),
        (ServiceResponseError("connection reset"), TransientStorageError),
        (IncompleteReadError("short read"), TransientStorageError),
        (http_error(400, "InvalidHeaderValue"), StorageError),
    ],
)
def test_translate(error: HttpResponseError, expected: type[StorageError]) -> None:
    translated = _translate(error, "packs/p1", "https://a.blob.core.windows.net/c/")
    assert type(translated) is expected
    assert "packs/p1" in translated.message
    assert "SECRETSIG" not in str(translated)


def test_translate_keeps_secrets_out_of_messages() -> None:
    error = ServiceRequestError("cannot reach https://a.blob.core.windows.net/c?sig=SECRETSIG&se=2030")
    assert "SECRETSIG" not in str(_translate(error, "k", "https://a.blob.core.windows.net/c/"))
