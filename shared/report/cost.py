"""Monthly cost estimates per policy, from measured change rates and a price table. Pure.

``measure_usage`` reads what the catalog's sessions recorded per resource: the first backup into the
repository (the data a full read, what it stored) and every later one (what changed, what it added).
``estimate_cost`` combines those measurements with the policy's schedules and retention:

* snapshots: Azure bills an incremental snapshot for the changed data since the one before, the
  first for the disk's used data: per VM ``used + (kept - 1) x min(used, change per interval)``,
  with one more snapshot kept as the image-level base when image-level backup is on;
* repository storage, by access tier: each resource's first full backup as stored, plus what each
  session adds for the days every point is kept, plus about a week of changes per extra point kept
  by the weekly, monthly and yearly rules (a GFS point keeps only the blocks later points changed);
* transactions: blob writes (8 MiB staged blocks, a commit per 32 MiB pack, index and point objects)
  and reads (configuration, keys, index, parent point) per backup job, per 10,000;
* cross-region transfer: what crosses regions when sources are elsewhere: the snapshot data workers
  read (workers in the repository's region) or what they store (workers in the source's region).

Sizes are GiB (2^30 bytes), a month is 30.44 days. Nothing measured yet (no backup in the
repository, or a single full one) is said in the assumptions, with the rate assumed instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from shared.catalog.model import Session
from shared.policy.model import Policy, WorkerPlacement
from shared.policy.schedule import Schedule, due_slots

from .prices import PriceTable

__all__ = [
    "CostEstimate",
    "CostLine",
    "PolicyPlan",
    "Usage",
    "estimate_cost",
    "measure_usage",
    "plan_of",
]

GIB = float(1 << 30)
MIB = 1 << 20
DAYS_PER_MONTH = 365.25 / 12
STAGED_BLOCK = 8 * MIB
PACK_SIZE = 32 * MIB
WRITES_PER_JOB = 8
"""Index objects, the point manifest, the session marker (written and removed), lock/lease calls."""
READS_PER_JOB = 16
"""Configuration, key slots, index listing and objects, the parent point and its span maps."""
ASSUMED_CHANGE_SHARE = 0.02
"""When nothing was measured: 2 % of a resource's data changes between two sessions."""
ASSUMED_STORED_SHARE = 0.5
"""When nothing was measured: a full backup stores half of what it reads (zstd, dedup)."""


@dataclass(frozen=True)
class Usage:
    """What the catalog measured for one resource."""

    resource_id: str
    kind: str
    source_bytes: int
    """Data one full backup read (a VM's used blocks, a database's BACPAC)."""
    full_stored_bytes: int
    """What its first backup added to the repository."""
    changed_bytes_per_session: float
    """Mean bytes read by the later backups (changed blocks of a VM; a database's whole BACPAC)."""
    stored_bytes_per_session: float
    """Mean bytes those later backups added to the repository."""
    jobs_per_session: int = 1
    """Worker jobs per backup (a VM's disks)."""
    sessions_measured: int = 0
    """Later backups the rates come from (0: assumed, see the estimate's assumptions)."""


@dataclass(frozen=True)
class PolicyPlan:
    """What the policy will do per month (from its schedules) and keep."""

    sessions_per_month: float
    image_sessions_per_month: float
    snapshots_kept: int
    image_level: bool
    image_retained_days: float
    sql_retained_days: float
    repository_region: str | None
    placement: WorkerPlacement


@dataclass(frozen=True)
class CostLine:
    item: str
    detail: str
    quantity: float
    unit: str
    unit_price: float
    monthly: float


@dataclass(frozen=True)
class CostEstimate:
    policy_id: str
    currency: str
    region: str
    prices_as_of: str
    prices_source: str
    tier: str
    lines: tuple[CostLine, ...]
    tier_comparison: Mapping[str, float]
    """The monthly repository storage cost in every tier of the price table."""
    assumptions: tuple[str, ...] = ()
    resources: tuple[Usage, ...] = field(default=())

    @property
    def total(self) -> float:
        return round(sum(line.monthly for line in self.lines), 2)

    def to_dict(self) -> dict[str, object]:
        return {
            "policy_id": self.policy_id,
            "currency": self.currency,
            "region": self.region,
            "prices": {"as_of": self.prices_as_of, "source": self.prices_source},
            "tier": self.tier,
            "monthly_total": self.total,
            "lines": [
                {
                    "item": line.item,
                    "detail": line.detail,
                    "quantity": round(line.quantity, 3),
                    "unit": line.unit,
                    "unit_price": line.unit_price,
                    "monthly": round(line.monthly, 2),
                }
                for line in self.lines
            ],
            "repository_storage_by_tier": {name: round(value, 2) for name, value in self.tier_comparison.items()},
            "assumptions": list(self.assumptions),
            "resources": [
                {
                    "resource_id": usage.resource_id,
                    "kind": usage.kind,
                    "source_bytes": usage.source_bytes,
                    "full_stored_bytes": usage.full_stored_bytes,
                    "changed_bytes_per_session": round(usage.changed_bytes_per_session),
                    "stored_bytes_per_session": round(usage.stored_bytes_per_session),
                    "sessions_measured": usage.sessions_measured,
                }
                for usage in self.resources
            ],
        }


def measure_usage(sessions: Iterable[Session]) -> list[Usage]:
    """Per resource, from the sessions that backed it up into the repository (oldest first)."""
    backups: dict[str, list[tuple[dt.datetime, int, int, int, str]]] = {}
    kinds: dict[str, str] = {}
    for session in sorted(sessions, key=lambda s: (s.started, s.session_id)):
        for result in session.resources:
            kinds.setdefault(result.resource_id, str(result.kind))
            if result.bytes_read > 0:
                jobs = max(1, len(result.snapshot_ids))
                backups.setdefault(result.resource_id, []).append(
                    (session.started, result.bytes_read, result.bytes_stored, jobs, session.session_id)
                )
    usages: list[Usage] = []
    for resource_id in sorted(kinds):
        done = backups.get(resource_id, [])
        if not done:
            usages.append(Usage(resource_id, kinds[resource_id], 0, 0, 0.0, 0.0))
            continue
        first, later = done[0], done[1:]
        usages.append(
            Usage(
                resource_id=resource_id,
                kind=kinds[resource_id],
                source_bytes=max(item[1] for item in done) if kinds[resource_id] != "vm" else first[1],
                full_stored_bytes=first[2],
                changed_bytes_per_session=sum(item[1] for item in later) / len(later) if later else 0.0,
                stored_bytes_per_session=sum(item[2] for item in later) / len(later) if later else 0.0,
                jobs_per_session=first[3],
                sessions_measured=len(later),
            )
        )
    return usages


def plan_of(policy: Policy, now: dt.datetime) -> PolicyPlan:
    """The policy's monthly rhythm: its slots over the coming year, per month."""
    image = policy.image_backup
    image_sessions = _per_month(image.schedule, now) if image.enabled and image.schedule else 0.0
    return PolicyPlan(
        sessions_per_month=_per_month(policy.schedule, now),
        image_sessions_per_month=image_sessions,
        snapshots_kept=policy.snapshots.keep if policy.snapshots else 0,
        image_level=bool(image.enabled),
        image_retained_days=_retained_days(image.retention) if image.retention else 0.0,
        sql_retained_days=_retained_days(policy.sql.retention) if policy.sql else 0.0,
        repository_region=policy.repository.region,
        placement=policy.workers.placement,
    )


def estimate_cost(
    policy_id: str,
    plan: PolicyPlan,
    usages: Sequence[Usage],
    prices: PriceTable,
    *,
    tier: str = "hot",
    source_region: str | None = None,
) -> CostEstimate:
    """The monthly cost of running ``plan`` over resources like ``usages``, at ``prices``."""
    tier_prices = prices.tier(tier)
    assumptions: list[str] = [
        f"{prices.currency} list prices for {prices.region} as of {prices.as_of}; sizes in GiB, a month is 30.44 days"
    ]
    usages = [_filled(usage, assumptions) for usage in usages]
    vms = [u for u in usages if u.kind == "vm"]
    databases = [u for u in usages if u.kind != "vm"]
    if not usages:
        assumptions.append("the catalog has no session of this policy yet: nothing to measure")

    # Snapshots: every session snapshots every VM disk; the image-level base stays one more.
    kept = plan.snapshots_kept + (1 if plan.image_level else 0)
    snapshot_gib = 0.0
    for usage in vms:
        per_interval = _per_snapshot_interval(usage, plan)
        snapshot_gib += (usage.source_bytes + max(0, kept - 1) * min(usage.source_bytes, per_interval)) / GIB

    # Repository: VMs at image-level sessions, databases at every session.
    stored_gib = 0.0
    jobs = written_bytes = read_bytes_vm = stored_bytes_month = 0.0
    for usage, sessions, retained in (
        *((u, plan.image_sessions_per_month if plan.image_level else 0.0, plan.image_retained_days) for u in vms),
        *((u, plan.sessions_per_month, plan.sql_retained_days) for u in databases),
    ):
        if sessions <= 0:
            continue
        per_day = usage.stored_bytes_per_session * sessions / DAYS_PER_MONTH
        stored_gib += (usage.full_stored_bytes + per_day * retained) / GIB
        jobs += usage.jobs_per_session * sessions
        written_bytes += usage.stored_bytes_per_session * sessions
        stored_bytes_month += usage.stored_bytes_per_session * sessions
        read_bytes_vm += (usage.changed_bytes_per_session if usage.kind == "vm" else 0.0) * sessions
    writes = jobs * WRITES_PER_JOB + written_bytes / STAGED_BLOCK + written_bytes / PACK_SIZE
    reads = jobs * READS_PER_JOB

    lines = [
        CostLine(
            "snapshots",
            f"incremental snapshots of {len(vms)} VM(s), {kept} kept per disk",
            snapshot_gib,
            "GiB-month",
            prices.snapshot_gb_month,
            snapshot_gib * prices.snapshot_gb_month,
        ),
        CostLine(
            "repository storage",
            f"{tier} tier, restore points within retention",
            stored_gib,
            "GiB-month",
            tier_prices.gb_month,
            stored_gib * tier_prices.gb_month,
        ),
        CostLine(
            "write transactions",
            f"{jobs:.0f} backup job(s) a month",
            writes / 10_000,
            "10k operations",
            tier_prices.write_per_10k,
            writes / 10_000 * tier_prices.write_per_10k,
        ),
        CostLine(
            "read transactions",
            "index, keys and parent points per job",
            reads / 10_000,
            "10k operations",
            tier_prices.read_per_10k,
            reads / 10_000 * tier_prices.read_per_10k,
        ),
    ]
    lines.append(_transfer(plan, prices, read_bytes_vm, stored_bytes_month, source_region, assumptions))
    comparison = {name: stored_gib * each.gb_month for name, each in sorted(prices.tiers.items())}
    return CostEstimate(
        policy_id=policy_id,
        currency=prices.currency,
        region=prices.region,
        prices_as_of=prices.as_of,
        prices_source=prices.source,
        tier=tier,
        lines=tuple(lines),
        tier_comparison=comparison,
        assumptions=tuple(assumptions),
        resources=tuple(usages),
    )


def _transfer(
    plan: PolicyPlan,
    prices: PriceTable,
    read_bytes: float,
    stored_bytes: float,
    source_region: str | None,
    assumptions: list[str],
) -> CostLine:
    if plan.placement is WorkerPlacement.SOURCE_REGION:
        crossing, what = stored_bytes, "stored data (workers run in the sources' region)"
    else:
        crossing, what = read_bytes, "snapshot data read (workers run in the repository's region)"
    same = source_region is not None and plan.repository_region is not None
    if same and str(source_region).lower() == str(plan.repository_region).lower():
        return CostLine("cross-region transfer", "sources and repository share a region", 0.0, "GiB", 0.0, 0.0)
    if source_region is None:
        assumptions.append(
            "cross-region transfer assumes the sources are in another region of the same continent "
            "(give the sources' region to refine it)"
        )
    gib = crossing / GIB
    price = prices.transfer_same_continent_gb
    return CostLine("cross-region transfer", what, gib, "GiB", price, gib * price)


def _filled(usage: Usage, assumptions: list[str]) -> Usage:
    """A resource without measured change rates gets the assumed ones (and says so)."""
    if usage.sessions_measured > 0:
        return usage
    name = usage.resource_id.rsplit("/", 1)[-1]
    if usage.source_bytes == 0:
        assumptions.append(f"{name}: not yet backed up into the repository; its data size is unknown (0 counted)")
        return usage
    assumptions.append(
        f"{name}: one backup measured; later sessions assumed to change {ASSUMED_CHANGE_SHARE:.0%} of its data"
    )
    changed = usage.source_bytes * ASSUMED_CHANGE_SHARE
    if usage.kind != "vm":  # a database's BACPAC is read whole every time; only changed tables are new
        return Usage(
            usage.resource_id,
            usage.kind,
            usage.source_bytes,
            usage.full_stored_bytes,
            float(usage.source_bytes),
            (usage.full_stored_bytes or usage.source_bytes * ASSUMED_STORED_SHARE) * ASSUMED_CHANGE_SHARE,
            usage.jobs_per_session,
        )
    ratio = usage.full_stored_bytes / usage.source_bytes if usage.full_stored_bytes else ASSUMED_STORED_SHARE
    return Usage(
        usage.resource_id,
        usage.kind,
        usage.source_bytes,
        usage.full_stored_bytes,
        changed,
        changed * ratio,
        usage.jobs_per_session,
    )


def _per_snapshot_interval(usage: Usage, plan: PolicyPlan) -> float:
    """Changed bytes between two snapshots: changes are measured between image-level sessions."""
    measured_per_month = usage.changed_bytes_per_session * max(plan.image_sessions_per_month, 1.0)
    return measured_per_month / max(plan.sessions_per_month, 1.0)


def _per_month(schedule: Schedule, now: dt.datetime) -> float:
    start = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
    return len(due_slots(schedule, start, start + dt.timedelta(days=365))) / 12


def _retained_days(retention: object) -> float:
    days = float(getattr(retention, "days", 0))
    extra = sum(int(getattr(retention, name, 0)) for name in ("weekly", "monthly", "yearly"))
    return days + 7.0 * extra
