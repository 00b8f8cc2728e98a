"""The job spec: what the function app hands a worker, as JSON holding references only.

A worker (``python -m shared.worker``) runs exactly one job spec. The spec never carries a
passphrase, a SAS, an account key or a password: it names where each secret lives and the worker
resolves it itself, so the spec may sit in orchestration history, container definitions and logs.
:meth:`JobSpec.from_dict` refuses a document that looks as if someone put a secret inline.

Version 1 (``kind`` ``image-backup``)::

    {
      "version": 1,
      "job_id": "job-3f0c...",                       # stable across attempts; tags the restore point
      "kind": "image-backup" | "bacpac-backup",
      "attempt": 1,
      "repository": {
        "location": "/srv/repo" | "https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX",
        "passphrase": {"kind": "file", "path": "/run/secrets/repo"}
                    | {"kind": "keyvault", "vault": "kv-name", "name": "secret-name"}
      },
      "arm": {"kind": "stack-file", "path": ".local/stack.json"}          # the local simulator
           | {"kind": "managed-identity", "subscription_id": "...",      # Azure
              "arm_endpoint": "https://management.azure.com", "client_id": null},
      "status": {"kind": "table", "endpoint": "https://ACCOUNT.table.core.windows.net", "table": "bulwarkjobs"},
      "source": {
        "kind": "managed-disk" | "vhd-blob",           # vhd-blob: blob URLs, snapshots "<url>?snapshot=<time>"
        "disk_id": "/subscriptions/.../disks/web-os",
        "snapshot_id": "/subscriptions/.../snapshots/bulwark-web-os-...",
        "previous_snapshot_id": null | "...",      # the last image-level snapshot: base of the diff
        "parent_point_id": null | "9c1e..."         # the restore point made from it
      },
      "tags": {"policy": "...", "session": "...", "vm": "...", "disk": "...", "lun": "os" | "0", "snapshot": "..."},
      "traceparent": "00-<trace id>-<span id>-01"    # optional: the session's trace (ids only)
    }

Kind ``bacpac-backup`` has a source of kind ``bacpac-blob``: ``disk_id`` is the database's resource
id and ``snapshot_id`` the staging BACPAC blob's URL (no SAS: the worker reads it with its own
identity); it has no previous snapshot or parent.

Kind ``bacpac-restore`` (``shared.services.bacpac_restore``) has a source of kind ``bacpac-point``:
``snapshot_id`` is the repository's BACPAC point id to rebuild and ``disk_id`` the staging blob URL
the rebuilt BACPAC is written to (no SAS: the worker writes it with its own identity).

Kind ``image-restore`` writes a repository point into a managed disk: its source has kind
``upload-disk``, ``disk_id`` the disk to write (created with createOption Upload at the point's
size) and ``snapshot_id`` the repository point to restore into it. The worker grants the write SAS,
writes the allocated blocks and the VHD footer, and ends the upload.

``previous_snapshot_id`` and ``parent_point_id`` go together: with both the worker reads only the
ranges changed since the previous snapshot; with neither it reads every allocated range.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core.errors import ConfigError

__all__ = [
    "JOB_KINDS",
    "SOURCE_KINDS",
    "ArmRef",
    "JobSource",
    "JobSpec",
    "RepositoryRef",
    "SecretRef",
    "StatusRef",
    "blob_snapshot_id",
    "split_blob_snapshot",
]

SPEC_VERSION = 1
JOB_KINDS = frozenset({"image-backup", "bacpac-backup", "image-restore", "bacpac-restore"})
SOURCE_KINDS = frozenset({"managed-disk", "vhd-blob", "bacpac-blob", "upload-disk", "bacpac-point"})
_SECRET_MARKERS = ("sig=", "accountkey=", "sharedaccesssignature=", "password=", "pwd=")
_SECRET_KEYS = frozenset({"passphrase_value", "password", "key", "account_key", "sas", "secret", "token"})


def _text(doc: Mapping[str, Any], name: str, where: str, *, optional: bool = False) -> str | None:
    value = doc.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"job spec: {where}.{name} must be a non-empty string",
            hint="the function app writes job specs; re-create the job instead of editing it",
        )
    return value


def _required(doc: Mapping[str, Any], name: str, where: str) -> str:
    value = _text(doc, name, where)
    assert value is not None
    return value


def _section(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name)
    if not isinstance(value, Mapping):
        raise ConfigError(f"job spec: '{name}' must be an object")
    return value


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: a local file (local mode) or a Key Vault secret (Azure)."""

    kind: str
    path: str | None = None
    vault: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "file" and not self.path:
            raise ConfigError("a file secret reference needs 'path'")
        if self.kind == "keyvault" and not (self.vault and self.name):
            raise ConfigError("a Key Vault secret reference needs 'vault' and 'name'")
        if self.kind not in ("file", "keyvault"):
            raise ConfigError(
                f"unknown secret reference kind {self.kind!r}",
                hint='use {"kind": "file", "path": ...} or {"kind": "keyvault", "vault": ..., "name": ...}',
            )

    def describe(self) -> str:
        return f"file {self.path}" if self.kind == "file" else f"Key Vault {self.vault} secret {self.name}"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "file":
            return {"kind": "file", "path": self.path}
        return {"kind": "keyvault", "vault": self.vault, "name": self.name}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SecretRef:
        kind = _required(doc, "kind", "secret reference")
        if kind == "file":
            return cls(kind, path=_required(doc, "path", "secret reference"))
        return cls(
            kind,
            vault=_text(doc, "vault", "secret reference", optional=True),
            name=_text(doc, "name", "secret reference", optional=True),
        )


@dataclass(frozen=True)
class RepositoryRef:
    location: str
    passphrase: SecretRef

    def to_dict(self) -> dict[str, Any]:
        return {"location": self.location, "passphrase": self.passphrase.to_dict()}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RepositoryRef:
        return cls(
            location=_required(doc, "location", "repository"),
            passphrase=SecretRef.from_dict(_section(doc, "passphrase")),
        )


@dataclass(frozen=True)
class ArmRef:
    """How the worker reaches Azure Resource Manager: the local stack's file, or a managed identity."""

    kind: str
    path: str | None = None
    subscription_id: str | None = None
    arm_endpoint: str | None = None
    client_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "stack-file" and not self.path:
            raise ConfigError("an ARM reference of kind 'stack-file' needs 'path'")
        if self.kind == "managed-identity" and not self.subscription_id:
            raise ConfigError("an ARM reference of kind 'managed-identity' needs 'subscription_id'")
        if self.kind not in ("stack-file", "managed-identity"):
            raise ConfigError(
                f"unknown ARM reference kind {self.kind!r}", hint="use 'stack-file' (local) or 'managed-identity'"
            )

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "stack-file":
            return {"kind": "stack-file", "path": self.path}
        return {
            "kind": "managed-identity",
            "subscription_id": self.subscription_id,
            "arm_endpoint": self.arm_endpoint,
            "client_id": self.client_id,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ArmRef:
        kind = _required(doc, "kind", "arm")
        if kind == "stack-file":
            return cls(kind, path=_required(doc, "path", "arm"))
        return cls(
            kind,
            subscription_id=_text(doc, "subscription_id", "arm", optional=True),
            arm_endpoint=_text(doc, "arm_endpoint", "arm", optional=True),
            client_id=_text(doc, "client_id", "arm", optional=True),
        )


@dataclass(frozen=True)
class StatusRef:
    """Where the worker writes its job-status record: a Table storage table (Azurite locally)."""

    endpoint: str
    table: str
    kind: str = "table"

    def __post_init__(self) -> None:
        if self.kind != "table":
            raise ConfigError(f"unknown job-status reference kind {self.kind!r}", hint="use 'table'")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "endpoint": self.endpoint, "table": self.table}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> StatusRef:
        return cls(
            kind=_required(doc, "kind", "status"),
            endpoint=_required(doc, "endpoint", "status"),
            table=_required(doc, "table", "status"),
        )


@dataclass(frozen=True)
class JobSource:
    """The disk to read. ``managed-disk``: ids are ARM ids (the worker grants SAS itself);
    ``vhd-blob``: ``disk_id`` is the VHD's blob URL and snapshot ids are ``<url>?snapshot=<time>``
    (read with the worker's identity); ``bacpac-blob``: ``disk_id`` is the SQL database's id and
    ``snapshot_id`` the staging BACPAC blob's URL (read with the worker's identity)."""

    disk_id: str
    snapshot_id: str
    previous_snapshot_id: str | None = None
    parent_point_id: str | None = None
    kind: str = "managed-disk"

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ConfigError(
                f"job spec: unknown source kind {self.kind!r}", hint=f"use one of {', '.join(sorted(SOURCE_KINDS))}"
            )
        if (self.previous_snapshot_id is None) != (self.parent_point_id is None):
            raise ConfigError(
                "job spec: source.previous_snapshot_id and source.parent_point_id go together",
                hint="give both for an incremental backup, neither for a full one",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "disk_id": self.disk_id,
            "snapshot_id": self.snapshot_id,
            "previous_snapshot_id": self.previous_snapshot_id,
            "parent_point_id": self.parent_point_id,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> JobSource:
        return cls(
            disk_id=_required(doc, "disk_id", "source"),
            snapshot_id=_required(doc, "snapshot_id", "source"),
            previous_snapshot_id=_text(doc, "previous_snapshot_id", "source", optional=True),
            parent_point_id=_text(doc, "parent_point_id", "source", optional=True),
            kind=_text(doc, "kind", "source", optional=True) or "managed-disk",
        )


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    kind: str
    repository: RepositoryRef
    arm: ArmRef
    status: StatusRef
    source: JobSource
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    attempt: int = 1
    traceparent: str = ""
    """The W3C trace context of the activity that started the job (ids only), so the worker's span
    joins the session's trace."""

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS:
            raise ConfigError(
                f"job spec: unknown kind {self.kind!r}", hint=f"this worker runs {', '.join(sorted(JOB_KINDS))}"
            )
        if self.attempt < 1:
            raise ConfigError("job spec: attempt counts from 1")
        _refuse_inline_secrets(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            "job_id": self.job_id,
            "kind": self.kind,
            "attempt": self.attempt,
            "repository": self.repository.to_dict(),
            "arm": self.arm.to_dict(),
            "status": self.status.to_dict(),
            "source": self.source.to_dict(),
            "tags": dict(self.tags),
            **({"traceparent": self.traceparent} if self.traceparent else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> JobSpec:
        if not isinstance(doc, Mapping):
            raise ConfigError("a job spec is a JSON object")
        _refuse_inline_secrets(doc)
        if doc.get("version") != SPEC_VERSION:
            raise ConfigError(
                f"job spec version {doc.get('version')!r} is not supported (this worker reads version {SPEC_VERSION})",
                hint="run a worker image that matches the function app",
            )
        tags = doc.get("tags") or {}
        if not isinstance(tags, Mapping) or not all(isinstance(v, str) for v in tags.values()):
            raise ConfigError("job spec: 'tags' must map names to strings")
        attempt = doc.get("attempt", 1)
        if not isinstance(attempt, int):
            raise ConfigError("job spec: 'attempt' must be a whole number")
        return cls(
            job_id=_required(doc, "job_id", "job"),
            kind=_required(doc, "kind", "job"),
            repository=RepositoryRef.from_dict(_section(doc, "repository")),
            arm=ArmRef.from_dict(_section(doc, "arm")),
            status=StatusRef.from_dict(_section(doc, "status")),
            source=JobSource.from_dict(_section(doc, "source")),
            tags={str(k): str(v) for k, v in tags.items()},
            attempt=attempt,
            traceparent=str(doc.get("traceparent") or ""),
        )

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"the job spec is not JSON: {exc.msg} at line {exc.lineno}") from None
        return cls.from_dict(doc)


def blob_snapshot_id(vhd_uri: str, stamp: str) -> str:
    """How a VHD blob snapshot is named in specs and messages: ``<blob url>?snapshot=<time>``."""
    return f"{vhd_uri}?snapshot={stamp}"


def split_blob_snapshot(snapshot_id: str) -> tuple[str, str]:
    """``(blob url, snapshot time)`` of a :func:`blob_snapshot_id`."""
    uri, marker, stamp = snapshot_id.partition("?snapshot=")
    if not marker or not stamp or "?" in uri:
        raise ConfigError(f"'{snapshot_id}' is not a VHD blob snapshot id (<blob url>?snapshot=<time>)")
    return uri, stamp


def _refuse_inline_secrets(doc: Any, where: str = "") -> None:
    """A spec holds references only: refuse keys or values that look like an inline secret."""
    if isinstance(doc, Mapping):
        for key, value in doc.items():
            if str(key).lower() in _SECRET_KEYS:
                raise ConfigError(
                    f"job spec: '{where}{key}' looks like an inline secret",
                    hint="a job spec holds references only (a secret file path or a Key Vault secret name)",
                )
            _refuse_inline_secrets(value, f"{where}{key}.")
    elif isinstance(doc, list):
        for item in doc:
            _refuse_inline_secrets(item, where)
    elif isinstance(doc, str):
        lowered = doc.lower()
        if any(marker in lowered for marker in _SECRET_MARKERS):
            raise ConfigError(
                f"job spec: '{where.rstrip('.')}' holds what looks like a credential (a SAS or a connection string)",
                hint="a job spec holds references only; the worker grants and resolves credentials itself",
            )
