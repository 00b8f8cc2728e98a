"""The ``repository-maintenance`` worker's span, from a real worker process at a local collector.

The spec carries a ``traceparent``; the worker's span must be its child (same trace, that span as
parent) and carry what the job did: points forgotten, packs deleted, bytes freed. A job that fails
(a wrong passphrase) marks its span failed, and neither run exports the passphrase.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bulwark_local.stack import Stack

from shared.engine.backup import backup_image
from shared.repo.point import Point
from shared.services.job_spec import ArmRef, RepositoryRef, SecretRef, StatusRef
from shared.services.repo_maintenance import MaintenanceSpec
from shared.sources.image_file import ImageFileSource
from tests.telemetry.collector import Collector, ReceivedSpan, running_collector
from tests.worker.conftest import table_endpoint
from tests.worker.estate import MIB, PASSPHRASE, make_repository, open_repository

REPO_ROOT = Path(__file__).resolve().parents[2]
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WRONG = "not-the-repository-passphrase"


def _backed_up(repository: str, image: Path, policy: str) -> Point:
    with open(image, "r+b") as handle:
        handle.write(os.urandom(2 * MIB))
    with ImageFileSource(image) as source:
        return backup_image(open_repository(repository), source, tags={"policy": policy}).point


def _spec(stack: Stack, job_id: str, repository: str, secret: Path, forget: tuple[str, ...]) -> MaintenanceSpec:
    return MaintenanceSpec(
        job_id=job_id,
        repository=RepositoryRef(repository, SecretRef("file", path=str(secret))),
        arm=ArmRef("stack-file", path=str(Path(stack.state_dir) / "stack.json")),
        status=StatusRef(endpoint=table_endpoint(stack), table="telemetrytests"),
        policy_id="web",
        forget=forget,
        traceparent=PARENT,
        tags={"policy": "web", "session": "web@s2"},
    )


def _run(spec: MaintenanceSpec, collector: Collector, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    job = tmp_path / f"{spec.job_id}.json"
    job.write_text(spec.to_json(), encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "infra" / "local")]),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
    }
    args = [sys.executable, "-m", "shared.worker", "--job", str(job)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)


def _span_of(collector: Collector, job_id: str) -> ReceivedSpan:
    collector.wait_for(lambda c: any(s.attributes.get("bulwark.job") == job_id for s in c.spans))
    [span] = [s for s in collector.spans if s.attributes.get("bulwark.job") == job_id]
    return span


def test_the_worker_span_joins_the_spec_trace_and_reports_the_job(stack: Stack, tmp_path: Path) -> None:
    repository, secret = make_repository(tmp_path)
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    os.truncate(image, 8 * MIB)
    old = _backed_up(repository, image, "web")
    _backed_up(repository, image, "web")
    wrong = tmp_path / "wrong.passphrase"
    wrong.write_text(WRONG + "\n", encoding="utf-8")

    with running_collector() as collector:
        done = _run(_spec(stack, "maint-telemetry", repository, secret, (old.point_id,)), collector, tmp_path)
        assert done.returncode == 0, done.stderr
        failed = _run(_spec(stack, "maint-telemetry-bad", repository, wrong, (old.point_id,)), collector, tmp_path)
        assert failed.returncode != 0, failed.stdout

        span = _span_of(collector, "maint-telemetry")
        collector.wait_for(lambda c: "bulwark.repository.bytes_freed" in c.metric_names)
        bad = _span_of(collector, "maint-telemetry-bad")

    assert span.name == "worker repository-maintenance" and span.service == "bulwark-worker" and not span.error
    assert (span.trace_id, span.parent_span_id) == (PARENT.split("-")[1], PARENT.split("-")[2])
    assert span.attributes["bulwark.job.kind"] == "repository-maintenance"
    assert span.attributes["bulwark.policy"] == "web" and span.attributes["bulwark.session"] == "web@s2"
    assert span.attributes["bulwark.points_forgotten"] == 1 and span.attributes["bulwark.points_refused"] == 0
    assert int(str(span.attributes["bulwark.packs_deleted"])) >= 1
    assert int(str(span.attributes["bulwark.bytes_freed"])) > 0  # the old point's random data only it used
    assert "bulwark.repository.points_forgotten" in collector.metric_names

    assert bad.error and bad.trace_id == span.trace_id and "bulwark.points_forgotten" not in bad.attributes
    exported = b"".join(collector.raw)
    assert PASSPHRASE.encode() not in exported and WRONG.encode() not in exported
