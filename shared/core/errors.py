"""The one error tree of Bulwark.

Everything ``shared/`` raises on purpose is a :class:`BulwarkError`. Each class carries a stable
``code`` (for logs and HTTP bodies), an ``exit_code`` (for the CLI, listed in ``bulwark --help``)
and a ``hint``: what the user should do next. Adapters translate SDK exceptions into these once,
at the boundary, with ``raise ... from exc``; nothing above an adapter sees an SDK exception.

    BulwarkError
    ├── UsageError                    bad input from a person or a caller (exit 2; HTTP 4xx)
    │   ├── InvalidDocumentError      a JSON document breaks its schema; carries FieldProblems (HTTP 400)
    │   │   └── PolicyValidationError a backup policy is malformed or inconsistent
    │   ├── PolicyNotFoundError       no policy has this id (HTTP 404)
    │   ├── PolicyExistsError         create() of an id that is taken (HTTP 409)
    │   ├── PolicyConflictError       the policy changed since it was read: stale ETag (HTTP 412)
    │   └── SessionNotFoundError      no backup session has this id (HTTP 404)
    ├── ConfigError                   missing or invalid settings (exit 3)
    ├── StorageError                  the blob store failed (exit 4)
    │   ├── BlobNotFoundError
    │   ├── BlobExistsError
    │   ├── StorageAuthError
    │   ├── LeaseHeldError
    │   └── TransientStorageError     the only storage error that is retried
    ├── RepositoryError               the repository is missing, locked or inconsistent (exit 5)
    │   ├── RepositoryNotFoundError
    │   ├── RepositoryExistsError
    │   ├── RepositoryLockedError
    │   ├── PointNotFoundError
    │   └── IntegrityError            stored data fails authentication or structure checks (exit 6)
    ├── WrongKeyError                 no key slot opens with the given secret (exit 7)
    ├── SourceError                   the data being backed up cannot be read (exit 8)
    │   ├── SnapshotAccessError       a SAS was refused: expired, revoked or never granted
    │   ├── UnsupportedDiskError      the disk's format cannot be read (VHDX, not a fixed VHD)
    │   ├── SqlExportRefusedError     BACPAC cannot export this database (pre-flight check)
    │   └── SqlExportFailedError      the export service ran and failed (firewall, 20-hour limit, storage)
    └── AzureApiError                 an Azure management call failed (exit 9)
        ├── AzureResourceNotFoundError   an id names nothing
        │   └── ResourceGroupNotFoundError
        ├── AzureAuthError            the identity is unknown or lacks a role
        ├── WrongRegionError          a resource is in another region than the operation needs
        ├── AzureConflictError        the resource's state forbids the operation (409)
        ├── AzureOperationFailedError a long-running operation ended Failed or Canceled
        └── TransientAzureError       5xx, timeouts, connection resets: may succeed when retried
            └── ThrottledError        429 after the client's own retries; carries retry_after

Messages never contain secrets: SAS signatures, account keys and passwords are redacted by
:func:`redact` before they reach an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "AzureApiError",
    "AzureAuthError",
    "AzureConflictError",
    "AzureOperationFailedError",
    "AzureResourceNotFoundError",
    "BlobExistsError",
    "BlobNotFoundError",
    "BulwarkError",
    "ConfigError",
    "FieldProblem",
    "IntegrityError",
    "InvalidDocumentError",
    "LeaseHeldError",
    "PointNotFoundError",
    "PolicyConflictError",
    "PolicyExistsError",
    "PolicyNotFoundError",
    "PolicyValidationError",
    "RepositoryError",
    "RepositoryExistsError",
    "RepositoryLockedError",
    "RepositoryNotFoundError",
    "ResourceGroupNotFoundError",
    "SessionNotFoundError",
    "SnapshotAccessError",
    "SourceError",
    "SqlExportFailedError",
    "SqlExportRefusedError",
    "StorageAuthError",
    "StorageError",
    "ThrottledError",
    "TransientAzureError",
    "TransientStorageError",
    "UnsupportedDiskError",
    "UsageError",
    "WrongKeyError",
    "WrongRegionError",
    "redact",
]


class BulwarkError(Exception):
    """Base of every error Bulwark raises deliberately."""

    code = "bulwark_error"
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(BulwarkError):
    code = "usage"
    exit_code = 2


class ConfigError(BulwarkError):
    code = "config"
    exit_code = 3


class StorageError(BulwarkError):
    code = "storage"
    exit_code = 4


class BlobNotFoundError(StorageError):
    code = "blob_not_found"


class BlobExistsError(StorageError):
    code = "blob_exists"


class StorageAuthError(StorageError):
    code = "storage_auth"


class LeaseHeldError(StorageError):
    code = "lease_held"


class TransientStorageError(StorageError):
    """A failure that may succeed when retried: timeouts, throttling, 5xx, resets."""

    code = "storage_transient"


class RepositoryError(BulwarkError):
    code = "repository"
    exit_code = 5


class RepositoryNotFoundError(RepositoryError):
    code = "repository_not_found"


class RepositoryExistsError(RepositoryError):
    code = "repository_exists"


class RepositoryLockedError(RepositoryError):
    code = "repository_locked"


class PointNotFoundError(RepositoryError):
    code = "point_not_found"


class IntegrityError(RepositoryError):
    code = "integrity"
    exit_code = 6


class WrongKeyError(BulwarkError):
    code = "wrong_key"
    exit_code = 7


class SourceError(BulwarkError):
    code = "source"
    exit_code = 8


class SnapshotAccessError(SourceError):
    code = "snapshot_access"


class UnsupportedDiskError(SourceError):
    code = "unsupported_disk"


class SqlExportRefusedError(SourceError):
    code = "sql_export_refused"


class SqlExportFailedError(SourceError):
    code = "sql_export_failed"


class AzureApiError(BulwarkError):
    code = "azure"
    exit_code = 9


class AzureResourceNotFoundError(AzureApiError):
    code = "azure_resource_not_found"


class ResourceGroupNotFoundError(AzureResourceNotFoundError):
    code = "resource_group_not_found"


class AzureAuthError(AzureApiError):
    code = "azure_auth"


class WrongRegionError(AzureApiError):
    code = "wrong_region"


class AzureConflictError(AzureApiError):
    code = "azure_conflict"


class AzureOperationFailedError(AzureApiError):
    code = "azure_operation_failed"


class TransientAzureError(AzureApiError):
    """A failure that may succeed when retried: 5xx, timeouts, connection resets."""

    code = "azure_transient"


class ThrottledError(TransientAzureError):
    """Azure answered 429 more often than the client retries; ``retry_after`` is its last advice."""

    code = "azure_throttled"

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field of a document: where, what, and how to fix it.

    ``path`` uses the document's own field names, e.g. ``schedule.daily.times[1]``; an empty path
    means the document as a whole.
    """

    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = self.path or "(document)"
        return f"{where}: {self.message}; {self.fix}" if self.fix else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "fix": self.fix}


class InvalidDocumentError(UsageError):
    """A document (JSON from a person or a caller) is invalid; ``problems`` says where and why."""

    code = "invalid_document"

    def __init__(self, subject: str, problems: list[FieldProblem] | tuple[FieldProblem, ...]) -> None:
        self.subject = subject
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = f"{subject} is invalid: {self.problems[0]}"
        else:
            lines = "\n".join(f"  {problem}" for problem in self.problems)
            message = f"{subject} is invalid ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)

    def to_dict(self) -> dict[str, object]:
        """The body of an HTTP 400 answer: code, message and one entry per problem."""
        return {
            "code": self.code,
            "message": f"{self.subject} is invalid",
            "problems": [problem.to_dict() for problem in self.problems],
        }


class PolicyValidationError(InvalidDocumentError):
    code = "policy_invalid"


class PolicyNotFoundError(UsageError):
    code = "policy_not_found"

    def __init__(self, policy_id: str) -> None:
        super().__init__(f"No policy has the id '{policy_id}'.", hint="list the policies to see their ids")
        self.policy_id = policy_id


class PolicyExistsError(UsageError):
    code = "policy_exists"

    def __init__(self, policy_id: str) -> None:
        super().__init__(
            f"A policy with the id '{policy_id}' exists already.",
            hint="choose another id, or update the existing policy with its ETag",
        )
        self.policy_id = policy_id


class PolicyConflictError(UsageError):
    code = "policy_conflict"

    def __init__(self, policy_id: str) -> None:
        super().__init__(
            f"Policy '{policy_id}' was changed by someone else since you read it.",
            hint="re-read the policy, apply your change to the current version and save it with its new ETag",
        )
        self.policy_id = policy_id


class SessionNotFoundError(UsageError):
    code = "session_not_found"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"No backup session has the id '{session_id}'.", hint="list the sessions of the policy")
        self.session_id = session_id


_SECRET_PATTERNS = (
    # SAS signature and other signed query values
    (re.compile(r"(?i)\b(sig|se|skoid|sktid|skt|ske|sks|skv)=[^&\s'\"]+"), r"\1=REDACTED"),
    # account keys in connection strings
    (re.compile(r"(?i)(AccountKey|SharedAccessSignature)=[^;\s'\"]+"), r"\1=REDACTED"),
    # passwords in connection strings
    (re.compile(r"(?i)(Password|Pwd)=[^;\s'\"]+"), r"\1=REDACTED"),
)


def redact(text: str) -> str:
    """Remove secrets (SAS signatures, account keys, passwords) from text meant for people."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text
