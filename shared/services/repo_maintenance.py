"""The worker's job kind ``repository-maintenance``: forget the restore points a policy's image
retention dropped, then prune what only they used.

It runs on a worker, not in the function app, because it needs the repository key: the worker
resolves the passphrase itself, like a backup job, and the spec holds references only::

    {"version": 1, "kind": "repository-maintenance", "job_id": "maint-...", "attempt": 1,
     "repository": {"location": "...", "passphrase": {"kind": "keyvault", ...}},
     "arm": {"kind": "stack-file", ...} | {"kind": "managed-identity", ...},   # reaching Key Vault
     "status": {"kind": "table", "endpoint": "...", "table": "bulwarkjobs"},
     "policy_id": "web-tier", "forget": ["<repository point id>", ...],
     "traceparent": "00-<trace id>-<span id>-01",    # the starting activity's span (ids only)
     "tags": {"policy": "web-tier", "session": "..."}}   # labels for the worker's span

Under the repository's maintenance lock it deletes each named point that carries the policy's
tag (a point of another policy is refused, never deleted; one already gone counts as forgotten,
so a re-run after a crash finishes the job), releases the lock, and prunes: ``prune_repository``
takes the lock again and defers deleting data while a backup's session marker is live.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core.clock import Clock
from shared.core.errors import ConfigError, PointNotFoundError
from shared.repo.prune import prune_repository

from .job_report import open_job_repository, run_reported
from .job_spec import ArmRef, RepositoryRef, StatusRef
from .job_status import JobStatusStore
from .ports import RepositoryOpener, SecretResolver

__all__ = ["MAINTENANCE_KIND", "POLICY_TAG", "MaintenanceSpec", "RepositoryMaintenanceJob", "is_maintenance_spec"]

log = logging.getLogger(__name__)

MAINTENANCE_KIND = "repository-maintenance"
POLICY_TAG = "policy"
_VERSION = 1
_POINT_ID = re.compile(r"^[0-9a-f]{8,128}$")


@dataclass(frozen=True)
class MaintenanceSpec:
    job_id: str
    repository: RepositoryRef
    arm: ArmRef
    status: StatusRef
    policy_id: str
    forget: tuple[str, ...] = ()
    attempt: int = 1
    traceparent: str = ""
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.job_id or not self.policy_id:
            raise ConfigError("maintenance spec: job_id and policy_id must be non-empty")
        bad = [point for point in self.forget if not _POINT_ID.match(point)]
        if bad:
            raise ConfigError(f"maintenance spec: {bad[0]!r} is not a repository point id")

    @property
    def kind(self) -> str:
        """The job kind, as a :class:`JobSpec` names it (the worker's span and metrics use it)."""
        return MAINTENANCE_KIND

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _VERSION,
            "kind": MAINTENANCE_KIND,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "repository": self.repository.to_dict(),
            "arm": self.arm.to_dict(),
            "status": self.status.to_dict(),
            "policy_id": self.policy_id,
            "forget": list(self.forget),
            "traceparent": self.traceparent,
            "tags": dict(self.tags),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MaintenanceSpec:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"the maintenance spec is not JSON: {exc}") from None
        if not isinstance(doc, Mapping):
            raise ConfigError("a maintenance spec is a JSON object")
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> MaintenanceSpec:
        if doc.get("version") != _VERSION or doc.get("kind") != MAINTENANCE_KIND:
            raise ConfigError(
                f"not a version {_VERSION} {MAINTENANCE_KIND} spec", hint="run a worker image that matches the app"
            )
        forget = doc.get("forget") or []
        attempt = doc.get("attempt", 1)
        if not isinstance(forget, list) or not all(isinstance(p, str) for p in forget) or not isinstance(attempt, int):
            raise ConfigError("maintenance spec: 'forget' must list point ids and 'attempt' be a whole number")
        tags = doc.get("tags") or {}
        if not isinstance(tags, Mapping) or not all(isinstance(v, str) for v in tags.values()):
            raise ConfigError("maintenance spec: 'tags' must map names to strings")
        for section in ("repository", "arm", "status"):
            if not isinstance(doc.get(section), Mapping):
                raise ConfigError(f"maintenance spec: '{section}' must be an object")
        return cls(
            job_id=str(doc.get("job_id") or ""),
            repository=RepositoryRef.from_dict(doc["repository"]),
            arm=ArmRef.from_dict(doc["arm"]),
            status=StatusRef.from_dict(doc["status"]),
            policy_id=str(doc.get("policy_id") or ""),
            forget=tuple(forget),
            attempt=attempt,
            traceparent=str(doc.get("traceparent") or ""),
            tags={str(k): v for k, v in tags.items()},
        )


def is_maintenance_spec(text: str) -> bool:
    """Whether a job document is a maintenance spec (the worker's entry point dispatches on it)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return isinstance(doc, Mapping) and doc.get("kind") == MAINTENANCE_KIND


class RepositoryMaintenanceJob:
    def __init__(
        self, *, secrets: SecretResolver, repositories: RepositoryOpener, status: JobStatusStore, clock: Clock
    ) -> None:
        self._secrets = secrets
        self._repositories = repositories
        self._status = status
        self._clock = clock

    def run(self, spec: MaintenanceSpec) -> dict[str, Any]:
        """Forget, prune, report: the result lists the points forgotten and the prune's counts."""
        return run_reported(spec, self._status, self._clock, lambda _: self._work(spec), progress_key=None)

    def _work(self, spec: MaintenanceSpec) -> dict[str, Any]:
        repo = open_job_repository(spec, self._secrets, self._repositories)
        forgotten: list[str] = []
        refused: list[str] = []
        with repo.maintenance_lock() as lock:
            for point_id in spec.forget:
                try:
                    point = repo.load_point(point_id)
                except PointNotFoundError:
                    forgotten.append(point_id)  # an earlier attempt got this far
                    continue
                if point.tags.get(POLICY_TAG) != spec.policy_id:
                    log.warning("job %s: point %s is not policy %s's; kept", spec.job_id, point_id, spec.policy_id)
                    refused.append(point_id)
                    continue
                lock.check()
                repo.delete_point(point_id)
                forgotten.append(point_id)
        log.info("job %s: forgot %d point(s) of policy %s", spec.job_id, len(forgotten), spec.policy_id)
        report = prune_repository(repo)
        log.info(
            "job %s: prune deleted %d pack(s), %d bytes%s",
            spec.job_id,
            report.packs_deleted,
            report.bytes_freed,
            f" ({report.deferred})" if report.deferred else "",
        )
        return {
            "job_id": spec.job_id,
            "forgotten": forgotten,
            "refused": refused,
            "packs_deleted": report.packs_deleted,
            "bytes_freed": report.bytes_freed,
            "prune_deferred": report.deferred,
        }
