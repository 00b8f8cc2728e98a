"""A policy as a backup session sees it, and the Policies port that supplies it.

The session services need a handful of a policy's settings (scope, repository, image-level flag,
snapshot retention, concurrency, worker placement) and three of its rules (which VMs it includes,
which sessions are due, which snapshots to delete). :class:`Policies` is that seam:
``shared.services.policy_plans`` implements it over ``shared.policy`` (the PolicyStore), and
:class:`StaticPolicies` over plans built in code (tests, single-policy tools).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared.azure.model import VmSelection
from shared.core.errors import PolicyNotFoundError, UsageError
from shared.policy.model import BackupRetention

from .job_spec import RepositoryRef

__all__ = ["BackupPlan", "DueSession", "Policies", "SnapshotRef", "StaticPolicies", "keep_newest"]


@dataclass(frozen=True)
class BackupPlan:
    policy_id: str
    selection: VmSelection
    """What to list (resource groups, VM ids, or the whole subscription); ``includes`` filters further."""
    repository: RepositoryRef
    repository_region: str | None = None
    worker_placement: str = "repository"
    """``repository``: workers run in the repository's region (the seed's rule); ``source``: the VM's."""
    image_level: bool = True
    snapshots_to_keep: int = 7
    concurrency: int = 4
    workers_in_flight: int = 0
    image_retention: BackupRetention | None = None
    """How long image-level points stay in the repository (None: forever)."""
    """Workers a session runs at once at most (0: no limit beyond ``concurrency``)."""
    includes: Callable[[str, Mapping[str, str]], bool] | None = None

    def __post_init__(self) -> None:
        if self.worker_placement not in ("repository", "source"):
            raise UsageError(f"worker placement {self.worker_placement!r} is neither 'repository' nor 'source'")
        if not 1 <= self.snapshots_to_keep <= 500:
            raise UsageError("snapshots_to_keep must be 1 to 500 (Azure allows 500 incremental snapshots per disk)")
        if self.concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        if self.workers_in_flight < 0:
            raise UsageError("workers_in_flight must not be negative")

    def worker_region(self, vm_location: str) -> str:
        if self.worker_placement == "source" or not self.repository_region:
            return vm_location
        return self.repository_region


@dataclass(frozen=True)
class DueSession:
    """A scheduled session to start, with the instance id that makes it run at most once."""

    instance_id: str
    policy_id: str
    slot: str
    image_level: bool


@dataclass(frozen=True)
class SnapshotRef:
    snapshot_id: str
    disk_id: str
    created: dt.datetime


class Policies:
    """The port (a Protocol in spirit; a base class so the fakes share ``keep_newest``)."""

    def get_plan(self, policy_id: str) -> BackupPlan:
        """The policy's plan; ``PolicyNotFoundError`` for an unknown id."""
        raise NotImplementedError

    def due_sessions(self, after: dt.datetime, until: dt.datetime) -> list[DueSession]:
        """Sessions of every enabled policy with ``after < slot <= until``."""
        raise NotImplementedError

    def snapshots_to_delete(
        self, policy_id: str, snapshots: Sequence[SnapshotRef], now: dt.datetime, protected: Collection[str]
    ) -> list[str]:
        """Ids of ``snapshots`` (this policy's, any disks) to delete now, oldest first; never ``protected``."""
        return keep_newest(snapshots, self.get_plan(policy_id).snapshots_to_keep, protected)


def keep_newest(snapshots: Sequence[SnapshotRef], keep: int, protected: Collection[str]) -> list[str]:
    """The count rule: each disk keeps its ``keep`` newest snapshots, plus every protected one."""
    doomed: list[SnapshotRef] = []
    by_disk: dict[str, list[SnapshotRef]] = {}
    for snapshot in snapshots:
        by_disk.setdefault(snapshot.disk_id.lower(), []).append(snapshot)
    for group in by_disk.values():
        newest_first = sorted(group, key=lambda s: (s.created, s.snapshot_id), reverse=True)
        doomed.extend(s for s in newest_first[keep:] if s.snapshot_id not in protected)
    return [s.snapshot_id for s in sorted(doomed, key=lambda s: (s.created, s.snapshot_id))]


class StaticPolicies(Policies):
    """Plans built in code; no schedules (nothing is ever due)."""

    def __init__(self, plans: Iterable[BackupPlan] = ()) -> None:
        self._plans = {plan.policy_id: plan for plan in plans}

    def add(self, plan: BackupPlan) -> None:
        self._plans[plan.policy_id] = plan

    def get_plan(self, policy_id: str) -> BackupPlan:
        plan = self._plans.get(policy_id)
        if plan is None:
            raise PolicyNotFoundError(policy_id)
        return plan

    def due_sessions(self, after: dt.datetime, until: dt.datetime) -> list[DueSession]:
        return []
