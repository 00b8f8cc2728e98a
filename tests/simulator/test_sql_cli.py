"""bulwark-sim sql / aci / faults, and the demo SQL estate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.mgmt.sql import SqlManagementClient
from bulwark_local.sim_cli import app
from bulwark_local.simulator import SimulatorEndpoints
from bulwark_local.simulator.client import AdminClient
from bulwark_local.simulator.seed import SQL_GROUP, SQL_SERVER, SQL_STAGING_SERVER, SeedTarget, seed_sql
from typer.testing import CliRunner

from .conftest import LOCATION, SUBSCRIPTION, StaticToken
from .test_sim_cli import run, stack_file

__all__ = ["stack_file"]  # the fixture, shared with test_sim_cli


@pytest.fixture(scope="module")
def sql(sim: SimulatorEndpoints) -> SqlManagementClient:
    return SqlManagementClient(
        StaticToken(), SUBSCRIPTION, base_url=sim.arm, polling_interval=0, connection_verify=sim.ca_bundle
    )


@pytest.fixture(scope="module")
def demo(sim: SimulatorEndpoints) -> list[str]:
    """The demo SQL estate (test_sim_cli's `seed demo` may have made it already: seeding is idempotent)."""
    return seed_sql(SeedTarget(sim.arm, sim.data, sim.ca_bundle, SUBSCRIPTION, LOCATION), log=lambda line: None)


def test_seed_builds_the_demo_sql_estate(
    demo: list[str], sim: SimulatorEndpoints, sql: SqlManagementClient, admin: AdminClient
) -> None:
    assert {d.name for d in sql.databases.list_by_server(SQL_GROUP, SQL_SERVER)} == {"master", "sales", "inventory"}
    assert sql.servers.get(SQL_GROUP, SQL_SERVER).location == LOCATION
    assert sql.servers.get(SQL_GROUP, SQL_STAGING_SERVER).location == "northeurope"
    sales = {t["name"]: t for t in admin.sql_catalog(demo[0])["tables"]}
    assert set(sales) == {"Customers", "Orders", "Products"}
    assert sales["Orders"]["bytes"] > 3 * 1024 * 1024 and sales["Orders"]["rows"] == 24000
    lines: list[str] = []
    again = seed_sql(SeedTarget(sim.arm, sim.data, sim.ca_bundle, SUBSCRIPTION, LOCATION), log=lines.append)
    assert again == demo and all("already there" in line for line in lines)  # idempotent, same bytes
    assert {t["name"]: t["sha256"] for t in admin.sql_catalog(demo[0])["tables"]} == {
        name: table["sha256"] for name, table in sales.items()
    }


def test_sql_change_fail_and_show(stack_file: Path, demo: list[str], admin: AdminClient) -> None:
    inventory = demo[1]
    before = {t["name"]: t["sha256"] for t in admin.sql_catalog(inventory)["tables"]}
    output = run(stack_file, "sql", "change", inventory, "--table", "dbo.StockMovements", "--rows", "7")
    assert "changed 7 rows of dbo.StockMovements" in output
    after = {t["name"]: t["sha256"] for t in admin.sql_catalog(inventory)["tables"]}
    assert after["StockMovements"] != before["StockMovements"] and after["Warehouses"] == before["Warehouses"]
    assert "external references: 1" in run(stack_file, "sql", "fail", inventory, "--mode", "external-references")
    shown = json.loads(run(stack_file, "sql", "show", inventory))
    assert shown["externalReferences"][0]["referencedDatabase"] == "ArchiveDb" and shown["system"] is False
    assert "mode: none" in run(stack_file, "sql", "fail", inventory, "--mode", "none")
    bad = CliRunner().invoke(app, ["--stack", str(stack_file), "sql", "fail", inventory, "--mode", "meteor"])
    assert bad.exit_code == 1 and "use one of" in bad.output


def test_faults_and_aci_commands(stack_file: Path, admin: AdminClient) -> None:
    config = json.loads(run(stack_file, "faults", "set", "--write-budget", "50", "--per-seconds", "10", "--seed", "3"))
    assert config["write_budget"] == 50 and config["write_budget_seconds"] == 10.0 and config["seed"] == 3
    assert json.loads(run(stack_file, "faults", "show"))["config"]["write_budget"] == 50
    every = json.loads(
        run(stack_file, "faults", "set", "--arm-429", "0.05", "--retry-after", "7", "--arm-5xx", "0.05",
            "--status", "503", "--delay", "0.1", "--delay-seconds", "0.2", "--sas-resets", "0.01",
            "--sas-lifetime", "30")
    )  # fmt: skip
    assert {key: every[key] for key in every if key not in ("seed", "write_budget", "write_budget_seconds")} == {
        "arm_429": 0.05, "arm_429_retry_after": 7, "arm_5xx": 0.05, "arm_5xx_status": 503, "arm_delay": 0.1,
        "arm_delay_seconds": 0.2, "sas_resets": 0.01, "sas_lifetime_seconds": 30.0,
    }  # fmt: skip
    assert every["write_budget"] == 50  # set merges: earlier settings stay
    assert "faults cleared" in run(stack_file, "faults", "clear")
    assert admin.faults()["config"]["write_budget"] == 0
    nothing = CliRunner().invoke(app, ["--stack", str(stack_file), "faults", "set"])
    assert nothing.exit_code == 1 and "at least one" in nothing.output

    images = json.loads(run(stack_file, "aci", "images", "--set", 'demo/*=["{python}", "-c", "print(1)"]'))
    assert images == {"demo/*": ["{python}", "-c", "print(1)"]}
    assert "bulwark/worker:*" in json.loads(run(stack_file, "aci", "images", "--reset"))
    assert json.loads(run(stack_file, "aci", "ps")) == []
    missing = CliRunner().invoke(app, ["--stack", str(stack_file), "aci", "kill", "/subscriptions/x/none"])
    assert missing.exit_code == 1 and "no container group" in missing.output
