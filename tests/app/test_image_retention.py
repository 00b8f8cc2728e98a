"""Image-level repository retention through the local runtime: three image-level sessions of one VM
(two disks), three simulated days apart, under image_backup.retention = {"days": 4}.

After the third session (day 6) the first session's points are older than four days and not the
newest, so a repository-maintenance worker forgets them and prunes; the second's (day 3) and the
third's stay. The repository then holds exactly those four disk points, the catalog exactly those
two VM points, the session record names what was forgotten, and every remaining point restores
byte-identical to its snapshot. The simulator's clock is put back afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from azure.data.tables import TableClient
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from shared.azure.clients import AzureClients
from shared.catalog.model import PointKind
from shared.catalog.table import AzureTableCatalog
from shared.wiring import POINTS_TABLE, SESSIONS_TABLE
from tests.app.harness import call, determinism_check, policy_document, running_app, store_policy, wait_session
from tests.worker.estate import MIB, guest_image, make_estate, make_repository, open_repository, restores_identical

POLICY = "gfs-web"
DAY = 86_400


def test_three_image_sessions_keep_what_the_retention_rule_says(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path: Path
) -> None:
    estate = make_estate(stack, clients, admin, tags={"app": "gfsweb"})
    repository, secret = make_repository(tmp_path)
    document = policy_document(stack, estate.vm.resource_group, repository, secret, POLICY)
    document["scope"]["tags"] = ["app=gfsweb"]
    document["image_backup"]["retention"] = {"days": 4}
    store_policy(stack, document)

    offset = float(admin.settings()["clock_offset_seconds"])
    outputs: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    expected: dict[str, Path] = {}
    try:
        with running_app(stack, tmp_path) as (host, _):
            for number in range(3):
                if number:
                    admin.settings(clock_offset_seconds=offset + 3 * DAY * number)
                    admin.guest_write(estate.data_disk.id, number * MIB, bytes([number]) * (256 * 1024))
                status, raw = call(f"{host.base_url}/api/policies/{POLICY}/run", "POST")
                assert status == 202, raw
                detail = wait_session(host, json.loads(raw)["id"], timeout=180)
                details.append(detail)
                outputs.append(detail["output"])
                for disk in detail["output"]["resources"][0]["disks"]:
                    expected[disk["point_id"]] = guest_image(
                        admin, disk["snapshot_id"], tmp_path / f"{disk['point_id']}.img"
                    )
    finally:
        admin.settings(clock_offset_seconds=offset)

    assert [o["status"] for o in outputs] == ["Success"] * 3, outputs
    disk_points = [[d["point_id"] for d in o["resources"][0]["disks"]] for o in outputs]
    assert all(len(points) == 2 and all(points) for points in disk_points)

    # The repository: the first session's disk points are gone, the others all there.
    repo = open_repository(repository)
    remaining = {p.point_id: p for p in repo.list_points()}
    assert set(remaining) == set(disk_points[1] + disk_points[2])

    # The catalog: the VM points of sessions 2 and 3; session 3's record names the one forgotten.
    connection = stack.storage_connection_string
    with (
        TableClient.from_connection_string(connection, SESSIONS_TABLE) as sessions_table,
        TableClient.from_connection_string(connection, POINTS_TABLE) as points_table,
    ):
        catalog = AzureTableCatalog(sessions_table, points_table)
        points = catalog.list_points(estate.vm.id, kind=PointKind.IMAGE)
        sessions = [catalog.get_session(o["session_id"]) for o in outputs]
    assert sorted(p.session_id for p in points) == sorted(o["session_id"] for o in outputs[1:])
    assert outputs[0]["points_forgotten"] == [] and outputs[1]["points_forgotten"] == []
    [forgotten] = outputs[2]["points_forgotten"]
    assert forgotten.startswith("img-") and forgotten not in {p.point_id for p in points}
    assert sessions[2].points_forgotten == (forgotten,)
    assert details[2]["catalog"]["points_forgotten"] == [forgotten]

    # What is left restores byte-identical (its parent chain lost the first point).
    for point_id, point in remaining.items():
        assert restores_identical(repo, point, expected[point_id], tmp_path), point_id
    determinism_check(tmp_path / "runtime")
