"""Image retention's app side on fakes: which catalog points the plan drops (days, then GFS weeks),
measured from the newest point when the app's clock lags, and what the catalog drops afterwards."""

from __future__ import annotations

import datetime as dt

from shared.azure.model import VmSelection
from shared.catalog.memory import InMemoryCatalog
from shared.catalog.model import PointDisk, PointKind, RestorePoint
from shared.core.clock import SystemClock, format_time
from shared.policy.model import BackupRetention
from shared.services.image_retention import ImageRetention
from shared.services.job_spec import ArmRef, RepositoryRef, SecretRef, StatusRef
from shared.services.job_status import InMemoryJobStatusStore
from shared.services.messages import ForgottenPoints, ImageRetentionRequest
from shared.services.plan import BackupPlan, StaticPolicies
from shared.services.worker_jobs import JobSettings

GROUP = "/subscriptions/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/resourceGroups/rg"
VM = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web"
OTHER_VM = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/db"
START = dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC)  # a Monday


class NoLauncher:
    def launch(self, *, name: str, job_json: str, location: str) -> str:
        raise AssertionError("the plan starts no worker")


def point(vm: str, day: int, policy: str = "web") -> RestorePoint:
    return RestorePoint(
        point_id=f"img-{policy}-{vm[-2:]}-{day:03d}",
        resource_id=vm,
        kind=PointKind.IMAGE,
        time=START + dt.timedelta(days=day),
        policy_id=policy,
        session_id=f"s-{day:03d}",
        disks=(PointDisk(f"{vm}-os", None, f"snap-{day}", f"{day:04d}0000aaaa{vm[-2:].encode().hex()}"),),
    )


def retention_over(catalog: InMemoryCatalog, retention: BackupRetention) -> ImageRetention:
    plan = BackupPlan(
        policy_id="web",
        selection=VmSelection(),
        repository=RepositoryRef("/srv/repo", SecretRef("file", path="/run/secret")),
        image_retention=retention,
    )
    return ImageRetention(
        policies=StaticPolicies([plan]),
        catalog=catalog,
        launcher=NoLauncher(),  # type: ignore[arg-type]
        status=InMemoryJobStatusStore(),
        settings=JobSettings(ArmRef("stack-file", path="/s.json"), StatusRef("http://127.0.0.1:1/a", "jobs")),
        clock=SystemClock(),
    )


def test_days_then_weekly_points_and_the_newest_per_vm() -> None:
    catalog = InMemoryCatalog()
    for day in range(0, 42, 3):  # every third day for six weeks
        catalog.add_point(point(VM, day))
    catalog.add_point(point(OTHER_VM, 0))  # another VM's only point: its newest, kept
    catalog.add_point(point(VM, 1, policy="other"))  # another policy's point: not this plan's business
    retention = retention_over(catalog, BackupRetention(days=7, weekly=3))
    app_clock_behind = format_time(START)  # the newest point (day 39) is the retention's "now"

    plan = retention.plan(ImageRetentionRequest("web", "s-039", (VM, OTHER_VM), "westeurope", app_clock_behind))

    # Younger than 7 days before day 39: 33, 36, 39. Weekly=3: the newest point of each of the three
    # newest ISO weeks with points (days 35-41, 28-34, 21-27): 39, 33 and 27.
    kept_days = {27, 33, 36, 39}
    dropped = {f"img-web-{VM[-2:]}-{day:03d}" for day in range(0, 42, 3) if day not in kept_days}
    assert set(plan.point_ids) == dropped
    assert plan.kept == len(kept_days) + 1  # and the other VM's point
    assert len(plan.repository_point_ids) == len(dropped)

    gone = ForgottenPoints("web", "s-039", (VM, OTHER_VM), plan.point_ids, plan.repository_point_ids[1:])
    recorded = retention.record(gone)
    assert set(recorded.point_ids) == dropped - {plan.point_ids[0]}  # a point the worker kept stays listed
    left = {p.point_id for p in catalog.list_points(VM, kind=PointKind.IMAGE)}
    assert left == {plan.point_ids[0], "img-other-eb-001"} | {f"img-web-{VM[-2:]}-{d:03d}" for d in kept_days}


def test_no_retention_or_no_points_plans_nothing() -> None:
    catalog = InMemoryCatalog()
    request = ImageRetentionRequest("web", "s-1", (VM,), "westeurope", format_time(START))
    assert retention_over(catalog, BackupRetention(days=1)).plan(request).point_ids == ()
