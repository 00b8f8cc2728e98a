"""One image-level session through the local runtime with the repository passphrase in Key Vault
(the simulator's vault, seeded with `bulwark-sim keyvault set`) and concurrency.workers_in_flight = 1:

- the workers resolve the passphrase from the vault themselves; the session succeeds and its points
  restore byte-identical; the passphrase appears nowhere in orchestration state, HTTP answers or logs;
- no two worker jobs of the session overlap (each job's status record: started .. finished);
- GET /api/sessions/{id} gives each resource's start and end (catalog and orchestration output).
"""

from __future__ import annotations

import json
from pathlib import Path

from azure.data.tables import TableClient
from bulwark_local.sim_cli import app as sim_app
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack
from typer.testing import CliRunner

from shared.azure.clients import AzureClients
from shared.core.clock import parse_time
from shared.services.image_backup import JOB_TAG
from shared.worker.table_status import DEFAULT_TABLE as JOBS_TABLE
from tests.app.harness import (
    assert_no_secrets,
    call,
    determinism_check,
    policy_document,
    running_app,
    store_policy,
    wait_session,
)
from tests.worker.estate import (
    PASSPHRASE,
    guest_image,
    make_estate,
    make_repository,
    open_repository,
    restores_identical,
)

POLICY = "kv-workers"
VAULT = "kv-bulwark"
SECRET = "repo-pass"


def test_keyvault_passphrase_and_one_worker_at_a_time(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path: Path
) -> None:
    estate = make_estate(stack, clients, admin, tags={"app": "kvweb"})
    repository, secret_file = make_repository(tmp_path)
    stack_file = Path(stack.state_dir) / "stack.json"
    seeded = CliRunner().invoke(
        sim_app, ["--stack", str(stack_file), "keyvault", "set", VAULT, SECRET, "--from-file", str(secret_file)]
    )
    assert seeded.exit_code == 0, seeded.output
    secret_file.unlink()  # only the vault holds it now
    document = policy_document(
        stack,
        estate.vm.resource_group,
        repository,
        secret_file,
        POLICY,
        encryption={"passphrase": {"key_vault_secret": SECRET}},
        concurrency={"resources_in_flight": 2, "workers_in_flight": 1},
    )
    document["scope"]["tags"] = ["app=kvweb"]
    store_policy(stack, document)

    bodies: list[bytes] = []
    with running_app(stack, tmp_path, env={"BULWARK_KEY_VAULT": VAULT}) as (host, book):
        status, raw = call(f"{host.base_url}/api/policies/{POLICY}/run", "POST")
        bodies.append(raw)
        assert status == 202, raw
        session_id = json.loads(raw)["id"]
        detail = wait_session(host, session_id, timeout=180)
        bodies.append(json.dumps(detail).encode())
        logs = list(book.lines)

    output = detail["output"]
    assert output["status"] == "Success", output
    [resource] = output["resources"]
    disks = resource["disks"]
    assert len(disks) == 2 and all(d["point_id"] for d in disks), disks

    # Per-resource start and end: in the orchestration's output and in the catalog's record.
    began, ended = parse_time(resource["started"]), parse_time(resource["finished"])
    assert parse_time(output["started"]) <= began < ended <= parse_time(output["finished"])
    [recorded] = detail["catalog"]["resources"]
    assert parse_time(recorded["started"]) == began and parse_time(recorded["ended"]) == ended

    # The points restore, so the workers read the right passphrase from the vault.
    repo = open_repository(repository)
    points = {p.point_id: p for p in repo.list_points()}
    for disk in disks:
        expected = guest_image(admin, disk["snapshot_id"], tmp_path / f"{disk['point_id']}.img")
        assert restores_identical(repo, points[disk["point_id"]], expected, tmp_path)

    # workers_in_flight = 1: each job ran alone (started .. its last status update).
    job_ids = {points[d["point_id"]].tags[JOB_TAG] for d in disks}
    with TableClient.from_connection_string(stack.storage_connection_string, JOBS_TABLE) as table:
        records = [table.get_entity("job", job_id) for job_id in sorted(job_ids)]
    intervals = sorted((parse_time(r["started"]), parse_time(r["updated"])) for r in records)
    assert all(r["state"] == "succeeded" for r in records)
    assert len(intervals) == 2
    assert intervals[0][1] <= intervals[1][0], f"two workers ran at once: {intervals}"

    assert_no_secrets(
        runtime_state=tmp_path / "runtime",
        http_bodies=bodies,
        logs=logs,
        stack_state=Path(stack.state_dir),
        secrets=[PASSPHRASE],
    )
    determinism_check(tmp_path / "runtime")
