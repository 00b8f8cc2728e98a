"""SDK exceptions of the ARM clients -> shared.core.errors, in one place for every Azure adapter.

Adapters call :func:`translate_arm_error` in their one ``except`` clause per operation and
``raise ... from exc``. Messages name the operation and the resource and say what to do next;
they pass through :func:`shared.core.errors.redact`, so a SAS signature or key that an SDK message
happened to carry never gets out.
"""

from __future__ import annotations

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.polling.base_polling import BadResponse, OperationFailed

from shared.core.errors import (
    AzureApiError,
    AzureAuthError,
    AzureConflictError,
    AzureOperationFailedError,
    AzureResourceNotFoundError,
    ResourceGroupNotFoundError,
    ThrottledError,
    TransientAzureError,
    WrongRegionError,
    redact,
)

from .resource_id import ResourceId

__all__ = ["translate_arm_error"]

_TRANSIENT_STATUS = frozenset({408, 500, 502, 503, 504})
_REGION_CODES = frozenset(
    {"LocationNotAvailableForResourceType", "NoRegisteredProviderFound", "InvalidLocation", "LocationRequired"}
)


def translate_arm_error(exc: BaseException, *, action: str, resource: str | None = None) -> AzureApiError:
    """Map an SDK exception raised while ``action`` (e.g. "create snapshot") ran on ``resource``."""
    subject = f"{action} {_describe(resource)}" if resource else action
    if isinstance(exc, OperationFailed | BadResponse):
        return AzureOperationFailedError(
            f"Azure reported that '{subject}' failed: {_first_line(str(exc))}",
            hint="see the operation in the Azure portal (Activity log) and run the step again",
        )
    if not isinstance(exc, AzureError):
        return AzureApiError(f"'{subject}' failed: {_first_line(str(exc))}")
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    code = _error_code(exc)
    reason = _reason(exc, status, code)
    target = _error_target(exc)
    if code == "ResourceGroupNotFound":
        group = _resource_group_of(resource)
        where = f"Resource group '{group}'" if group else "The resource group"
        sub = _subscription_of(resource)
        return ResourceGroupNotFoundError(
            f"{where} does not exist{f' in subscription {sub}' if sub else ''} ({subject}).",
            hint="check the resource group name in the policy (names are per subscription), "
            "or create it with `az group create --name <group> --location <region>`",
        )
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return AzureResourceNotFoundError(
            f"{_describe(resource).capitalize() if resource else 'The resource'} does not exist ({subject}: {reason}).",
            hint="check the id (copy it from `az resource show --ids <id>` or the portal's JSON view); "
            "a resource deleted since the policy was written must be removed from the policy",
        )
    if isinstance(exc, ClientAuthenticationError) and status is None:
        return AzureAuthError(
            f"Bulwark could not get an Azure token for '{subject}' ({reason}).",
            hint="in Azure, turn on the function app's managed identity (set AZURE_CLIENT_ID for a user-assigned "
            "one) and give it the roles Bulwark needs; elsewhere, run `az login`",
        )
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403) or code in ("AuthorizationFailed",):
        return AzureAuthError(
            f"Azure refused '{subject}' for this identity ({reason}).",
            hint="check that the function app's managed identity (or your `az login`) has the "
            "'Virtual Machine Contributor' and 'Disk Snapshot Contributor' roles on the resource group, "
            "or a custom role with the Microsoft.Compute actions Bulwark uses (see docs)",
        )
    if code in _REGION_CODES or target.lower().endswith("location") or "region" in reason.lower():
        return WrongRegionError(
            f"'{subject}' was refused because of the region ({reason}).",
            hint="snapshots and disks must be created in the region of their source; "
            "check the location in the policy or the repository's region",
        )
    if status == 429:
        retry_after = _retry_after(exc)
        return ThrottledError(
            f"Azure throttled '{subject}' (429) after the client's retries ({reason}).",
            hint="lower BULWARK_ARM_WRITES_PER_HOUR or spread the policy's schedule; "
            "another tool may be using the same identity's write budget",
            retry_after=retry_after,
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError) or status in _TRANSIENT_STATUS:
        return TransientAzureError(
            f"A temporary Azure failure stopped '{subject}' ({reason}).",
            hint="run it again; if it persists, check https://status.azure.com",
        )
    if status == 409:
        return AzureConflictError(
            f"Azure refused '{subject}' in the resource's current state ({reason}).",
            hint="wait for the resource's running operation to finish (or end its disk access) and try again",
        )
    return AzureApiError(f"'{subject}' failed ({reason}).")


def _describe(resource: str | None) -> str:
    if not resource:
        return ""
    try:
        parsed = ResourceId.parse(resource)
    except Exception:  # not an id: a name or a URL
        return redact(resource.split("?", 1)[0])
    kind = parsed.types[-1].rstrip("s")
    kind = {"virtualMachine": "VM", "disk": "disk", "snapshot": "snapshot"}.get(kind, kind)
    return f"{kind} '{parsed.name}' in resource group '{parsed.resource_group}'"


def _resource_group_of(resource: str | None) -> str | None:
    if not resource:
        return None
    parts = resource.strip("/").split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1]
    return None


def _subscription_of(resource: str | None) -> str | None:
    if not resource:
        return None
    parts = resource.strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[0].lower() == "subscriptions" else None


def _error_code(exc: AzureError) -> str:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _error_target(exc: AzureError) -> str:
    error = getattr(exc, "error", None)
    return str(getattr(error, "target", None) or "")


def _reason(exc: AzureError, status: int | None, code: str) -> str:
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None) or exc.message or str(exc)
    text = _first_line(str(message))
    prefix = f"HTTP {status}" if status else type(exc).__name__
    if code:
        prefix += f" {code}"
    return redact(f"{prefix}: {text}")


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return redact(lines[0] if lines else "")


def _retry_after(exc: AzureError) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None
