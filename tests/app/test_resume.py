"""The runtime killed with SIGKILL mid-session and started again on its state: the session completes,
and no activity that had completed runs again (counted in both runtimes' logs).

The workers run in the simulator's Container Instances, so they outlive the runtime; their image
is mapped to a command that waits 5 s before it runs the real worker, which leaves time to kill the
runtime while the session waits for them on its durable timer.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from bulwark_local.simulator.client import AdminClient
from bulwark_local.stack import Stack

from functions import names
from shared.azure.clients import AzureClients
from shared.services.worker_jobs import job_id_for
from shared.worker.table_status import DEFAULT_TABLE, TableJobStatusStore
from tests.app.harness import KEY, WORKER_GROUP, call, policy_document, store_policy
from tests.app.test_failures import workers_running
from tests.worker.estate import make_estate, make_repository, put_resource_group

REPO_ROOT = Path(__file__).resolve().parents[2]
DELAYED_WORKER = [
    "{python}",
    "-c",
    "import os, sys, time; time.sleep(5); os.execv(sys.executable, [sys.executable, '-m', 'shared.worker'])",
]


def start_runtime(state: Path, log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "bulwark_local.runtime", "--app", "function_app", "--port", "0"]
    command += ["--state", str(state), "--key-env", "BULWARK_FUNCTION_KEY", "--no-timers"]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=output, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while True:
        found = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return process, found.group(1)
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "the runtime did not start"
        time.sleep(0.1)


def completed_activities(*logs: Path) -> Counter[str]:
    pattern = re.compile(r"activity (\w+) #\d+ completed")
    return Counter(m.group(1) for log in logs for m in pattern.finditer(log.read_text(errors="replace")))


def test_a_killed_runtime_resumes_the_session_without_repeating_activities(
    stack: Stack, clients: AzureClients, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("resume")
    estate = make_estate(stack, clients, admin, tags={"app": "web"})
    repository, secret = make_repository(work)
    store_policy(stack, policy_document(stack, estate.vm.resource_group, repository, secret, "resume"))
    put_resource_group(stack, WORKER_GROUP)
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "infra" / "local")]),
            "BULWARK_LOCAL_STACK": str(Path(stack.state_dir) / "stack.json"),
            "BULWARK_WORKER_RESOURCE_GROUP": WORKER_GROUP,
            "BULWARK_JOB_POLL_SECONDS": "1",
            "BULWARK_STATE_DIR": str(work / "state"),
            "BULWARK_FUNCTION_KEY": KEY,
        }
    )
    state, first_log, second_log = work / "runtime", work / "runtime-1.log", work / "runtime-2.log"
    admin.aci_images({"bulwark/worker:*": DELAYED_WORKER, "*/bulwark/worker:*": DELAYED_WORKER})
    first, base = start_runtime(state, first_log, env)
    try:
        status, raw = call(f"{base}/api/policies/resume/run", "POST")
        assert status == 202, raw
        instance_id = json.loads(raw)["id"]
        workers_running(admin, 2)
        deadline = time.monotonic() + 30  # both starts committed: the session waits on its timer
        while completed_activities(first_log)[names.START_BACKUP_JOB] < 2:
            assert time.monotonic() < deadline, first_log.read_text()[-3000:]
            time.sleep(0.05)
    finally:
        admin.aci_reset_images()
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL

    second, base = start_runtime(state, second_log, env)
    try:
        deadline = time.monotonic() + 120
        while True:
            status, raw = call(f"{base}/api/sessions/{instance_id}")
            assert status == 200, raw
            document = json.loads(raw)
            if document["runtime_status"] not in ("Pending", "Running"):
                break
            assert time.monotonic() < deadline, document
            time.sleep(0.5)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)

    output = document["output"]
    assert document["runtime_status"] == "Completed" and output["status"] == "Success", output
    disks = output["resources"][0]["disks"]
    assert all(d["point_id"] for d in disks)
    done = completed_activities(first_log, second_log)
    assert completed_activities(first_log)[names.SNAPSHOT_DISK] == 2
    assert completed_activities(second_log)[names.POLL_BACKUP_JOBS] >= 1  # the second runtime finished it
    for name, count in {
        names.DISCOVER_VMS: 1,
        names.SNAPSHOT_DISK: 2,
        names.START_BACKUP_JOB: 2,
        names.RECORD_RESTORE_POINTS: 1,
        names.APPLY_SNAPSHOT_RETENTION: 1,
        names.RECORD_SESSION: 1,
    }.items():
        assert done[name] == count, (name, done)
    jobs = TableJobStatusStore.from_connection_string(stack.storage_connection_string, DEFAULT_TABLE)
    for disk in disks:
        record = jobs.get(job_id_for(instance_id, disk["disk_id"]))
        assert record is not None and record.attempt == 1 and record.state == "succeeded"
