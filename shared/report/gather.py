"""What a report shows, read through the Catalog and PolicyStore ports (the only I/O in reports)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from shared.catalog.model import RestorePoint, Session
from shared.catalog.port import Catalog
from shared.core.clock import Clock
from shared.core.errors import PolicyNotFoundError
from shared.policy.model import Policy
from shared.policy.store import PolicyStore

from .cost import CostEstimate, estimate_cost, measure_usage, plan_of
from .prices import PriceTable
from .rpo import RpoCheck, check_rpo

__all__ = ["PolicyReport", "Reports", "SessionReport"]

CHARTED_SESSIONS = 20
"""Sessions in a report's charts."""
MEASURED_SESSIONS = 200
"""Sessions the change rates of a cost estimate are measured from."""
POINTS_PER_RESOURCE = 50


@dataclass(frozen=True)
class PolicyReport:
    policy_id: str
    policy: Policy | None
    """None when the policy was deleted since (its sessions stay in the catalog)."""
    history: tuple[Session, ...]
    """The policy's last sessions, newest first."""
    rpo: tuple[RpoCheck, ...]
    cost: CostEstimate | None
    generated: dt.datetime


@dataclass(frozen=True)
class SessionReport:
    session: Session
    policy: PolicyReport


class Reports:
    """Builds reports from the catalog, the stored policies and a price table."""

    def __init__(self, catalog: Catalog, policies: PolicyStore, prices: PriceTable, clock: Clock) -> None:
        self._catalog = catalog
        self._policies = policies
        self._prices = prices
        self._clock = clock

    @property
    def prices(self) -> PriceTable:
        return self._prices

    def session_report(self, session_id: str) -> SessionReport:
        session = self._catalog.get_session(session_id)
        return SessionReport(session, self.policy_report(session.policy_id, must_exist=False))

    def policy_report(self, policy_id: str, *, must_exist: bool = True) -> PolicyReport:
        policy = self._policy(policy_id, must_exist=must_exist)
        now = self._clock.now()
        sessions = self._catalog.list_sessions(policy_id, limit=MEASURED_SESSIONS)
        rpo: tuple[RpoCheck, ...] = ()
        cost = None
        if policy is not None:
            resources = _resources(sessions[:CHARTED_SESSIONS])
            points: dict[str, Sequence[RestorePoint]] = {
                resource_id: self._catalog.list_points(resource_id, limit=POINTS_PER_RESOURCE)
                for resource_id in resources
            }
            rpo = tuple(check_rpo(policy, resources, points, now))
            cost = estimate_cost(policy_id, plan_of(policy, now), measure_usage(sessions), self._prices)
        return PolicyReport(policy_id, policy, tuple(sessions[:CHARTED_SESSIONS]), rpo, cost, now)

    def cost(self, policy_id: str, *, tier: str = "hot", source_region: str | None = None) -> CostEstimate:
        policy = self._policies.get(policy_id).policy
        sessions = self._catalog.list_sessions(policy_id, limit=MEASURED_SESSIONS)
        plan = plan_of(policy, self._clock.now())
        return estimate_cost(
            policy_id, plan, measure_usage(sessions), self._prices, tier=tier, source_region=source_region
        )

    def _policy(self, policy_id: str, *, must_exist: bool) -> Policy | None:
        try:
            return self._policies.get(policy_id).policy
        except PolicyNotFoundError:
            if must_exist:
                raise
            return None


def _resources(sessions: Sequence[Session]) -> dict[str, str]:
    """The resources the policy's recent sessions covered: id -> kind."""
    found: dict[str, str] = {}
    for session in sessions:
        for result in session.resources:
            found.setdefault(result.resource_id, str(result.kind))
    return found
