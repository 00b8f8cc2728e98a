"""Cost estimates: measured change rates, the policy's rhythm, each line's arithmetic, the price table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.core.errors import ConfigError
from shared.policy.model import WorkerPlacement
from shared.report.cost import DAYS_PER_MONTH, GIB, PolicyPlan, Usage, estimate_cost, measure_usage, plan_of
from shared.report.prices import DEFAULT_PRICES, load_prices
from tests.report.history import DB, MIB, NOW, WEB1, WEB2, build_history

PRICES = load_prices()


def test_the_price_table_names_its_date_region_currency_and_source() -> None:
    doc = json.loads(DEFAULT_PRICES.read_text())
    assert doc["as_of"] and doc["region"] == "eastus" and doc["currency"] == "USD"
    assert "azure.microsoft.com/pricing" in doc["source"]
    assert set(PRICES.tiers) >= {"hot", "cool", "cold"}
    assert PRICES.tiers["cool"].gb_month < PRICES.tiers["hot"].gb_month


def test_a_malformed_price_table_is_refused_with_the_fix(tmp_path: Path) -> None:
    broken = json.loads(DEFAULT_PRICES.read_text())
    broken["tiers"]["hot"]["gb_month"] = "cheap"
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ConfigError, match="gb_month") as caught:
        load_prices(path)
    assert "prices.json" in (caught.value.hint or "")
    with pytest.raises(ConfigError, match="does not exist"):
        load_prices(tmp_path / "missing.json")


def test_change_rates_are_measured_from_the_later_backups() -> None:
    usages = {u.resource_id: u for u in measure_usage(build_history().sessions)}
    web1 = usages[WEB1]
    assert web1.source_bytes == 40 * GIB and web1.full_stored_bytes == 18 * GIB
    assert web1.changed_bytes_per_session == 2 * GIB and web1.stored_bytes_per_session == 700 * MIB
    assert web1.sessions_measured == 1 and web1.jobs_per_session == 2
    database = usages[DB]
    assert database.kind == "sql_database" and database.sessions_measured == 10
    assert database.stored_bytes_per_session == 120 * MIB and database.changed_bytes_per_session == 3 * GIB
    assert usages[WEB2].sessions_measured == 1


def test_the_policy_rhythm_comes_from_its_schedules() -> None:
    plan = plan_of(build_history().policy, NOW)
    assert 30.3 < plan.sessions_per_month < 30.6  # daily
    assert 4.3 < plan.image_sessions_per_month < 4.4  # weekly
    assert plan.snapshots_kept == 7 and plan.image_level
    assert plan.image_retained_days == 30 + 7 * 6 and plan.sql_retained_days == 14


def _plan(**changes: object) -> PolicyPlan:
    values: dict[str, object] = {
        "sessions_per_month": DAYS_PER_MONTH,  # daily
        "image_sessions_per_month": DAYS_PER_MONTH,
        "snapshots_kept": 3,
        "image_level": False,
        "image_retained_days": 10.0,
        "sql_retained_days": 0.0,
        "repository_region": "eastus",
        "placement": WorkerPlacement.REPOSITORY_REGION,
    }
    values.update(changes)
    return PolicyPlan(**values)  # type: ignore[arg-type]


def test_each_line_follows_its_formula() -> None:
    vm = Usage("vm-a", "vm", 100 * GIB, 50 * GIB, 1 * GIB, 512 * MIB, jobs_per_session=1, sessions_measured=5)
    estimate = estimate_cost("p", _plan(image_level=True), [vm], PRICES, source_region="eastus")
    lines = {line.item: line for line in estimate.lines}
    # 3 kept + the image-level base: the first snapshot holds the used data, each later one a day's change
    assert lines["snapshots"].quantity == pytest.approx(100 + 3 * 1)
    assert lines["snapshots"].monthly == pytest.approx(103 * PRICES.snapshot_gb_month)
    # the full backup as stored, plus half a GiB a day for the 10 days every point is kept
    assert lines["repository storage"].quantity == pytest.approx(50 + 0.5 * 10)
    assert lines["repository storage"].monthly == pytest.approx(55 * PRICES.tiers["hot"].gb_month)
    stored_month = DAYS_PER_MONTH * 512 * MIB
    writes = DAYS_PER_MONTH * 8 + stored_month / (8 * MIB) + stored_month / (32 * MIB)
    assert lines["write transactions"].quantity == pytest.approx(writes / 10_000)
    assert lines["read transactions"].quantity == pytest.approx(DAYS_PER_MONTH * 16 / 10_000)
    assert lines["cross-region transfer"].monthly == 0  # same region
    assert estimate.total == pytest.approx(round(sum(line.monthly for line in estimate.lines), 2))
    assert estimate.tier_comparison["cool"] == pytest.approx(55 * PRICES.tiers["cool"].gb_month)


def test_cross_region_transfer_follows_worker_placement() -> None:
    vm = Usage("vm-a", "vm", 100 * GIB, 50 * GIB, 1 * GIB, 256 * MIB, sessions_measured=3)
    plan = _plan(image_level=True)
    remote = estimate_cost("p", plan, [vm], PRICES, source_region="westus")
    line = next(line for line in remote.lines if line.item == "cross-region transfer")
    assert line.quantity == pytest.approx(DAYS_PER_MONTH)  # workers in the repository's region read a GiB a session
    local = estimate_cost("p", _plan(image_level=True, placement=WorkerPlacement.SOURCE_REGION), [vm], PRICES)
    line = next(line for line in local.lines if line.item == "cross-region transfer")
    assert line.quantity == pytest.approx(DAYS_PER_MONTH * 0.25)  # only what they store crosses
    assert any("another region" in text for text in local.assumptions)


def test_unmeasured_resources_get_stated_assumptions() -> None:
    once = Usage("/x/virtualMachines/new-vm", "vm", 10 * GIB, 4 * GIB, 0.0, 0.0)
    never = Usage("/x/virtualMachines/idle", "vm", 0, 0, 0.0, 0.0)
    estimate = estimate_cost("p", _plan(image_level=True), [once, never], PRICES)
    text = " ".join(estimate.assumptions)
    assert "new-vm: one backup measured" in text and "idle: not yet backed up" in text
    [filled, _] = estimate.resources
    assert filled.changed_bytes_per_session == pytest.approx(0.2 * GIB)
    assert filled.stored_bytes_per_session == pytest.approx(0.2 * GIB * 0.4)


def test_the_estimate_of_the_history_is_plausible_and_serializable() -> None:
    history = build_history()
    estimate = estimate_cost(
        history.policy.id, plan_of(history.policy, NOW), measure_usage(history.sessions), PRICES, tier="cool"
    )
    doc = estimate.to_dict()
    assert doc["currency"] == "USD" and doc["tier"] == "cool" and doc["prices"]["as_of"] == PRICES.as_of  # type: ignore[index]
    assert 1 < doc["monthly_total"] < 1000  # type: ignore[operator]
    assert [line["item"] for line in doc["lines"]] == [  # type: ignore[attr-defined]
        "snapshots",
        "repository storage",
        "write transactions",
        "read transactions",
        "cross-region transfer",
    ]
    json.dumps(doc)
    with pytest.raises(ConfigError, match="archive"):
        estimate_cost("p", _plan(), [], PRICES, tier="archive")
