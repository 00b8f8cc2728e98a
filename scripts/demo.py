"""`make demo`: the serverless app on one machine, against the local Azure stack.

1. start the local stack (Azurite + the Azure simulator) and the local Functions runtime as a real
   process (``python -m bulwark_local.runtime --app function_app``) with a generated function key,
   all in a temporary work directory that is removed at the end (also on failure or Ctrl-C);
2. ``bulwark-sim seed demo``: VMs with ext4 disks in two resource groups (one on an unmanaged VHD)
   and SQL databases;
3. ``bulwark repo init`` (the passphrase and the SQL login's password live in 0600 files; the policy
   names the files), a policy over both resource groups through ``POST /api/policies``, a full
   session started over HTTP, its custom status polled until it ends;
4. guest writes and a trim with ``bulwark-sim guest``, rows changed with ``bulwark-sim sql change``,
   then an incremental session;
5. ``bulwark restore-image`` of one disk's points, compared byte for byte with ``bulwark-sim guest
   read`` of the snapshot each point was made from, ``e2fsck -n`` of the restores;
   ``bulwark restore-bacpac`` of the changed database, compared member by member with a fresh
   export; ``bulwark verify --read-data``;
6. a report per session, resource and disk from the catalog (``GET /api/sessions/{id}``) and the
   workers' results, and a table of checks.

It exits 0 only when every check passes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bulwark_local.simulator.seed import DEMO_SQL_LOGIN, DEMO_SQL_PASSWORD
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from scripts.demo_sql import bacpac_differences, export_reference, is_sql, member_count

REPO_ROOT = Path(__file__).resolve().parents[1]
POLICY_ID = "demo-estate"
DEMO_GROUPS = ("bulwark-demo-app", "bulwark-demo-data")
WORKER_GROUP = "bulwark-demo-workers"
CHANGED_VM = "app-01"
CHANGED_DATABASE = "sales"
CHANGED_ROWS = 25
UNMANAGED_VM = "legacy-01"
MIB = 1 << 20
E2FSCK = Path("/usr/sbin/e2fsck")
SESSION_TIMEOUT = 180.0

console = Console(width=None if sys.stdout.isatty() else 150, highlight=False)


class DemoError(Exception):
    """A step the demo depends on failed; the message says which and why."""


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str = ""


@dataclass
class SessionRun:
    label: str
    instance_id: str
    status: dict[str, Any]
    seconds: float
    progress_seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def output(self) -> dict[str, Any]:
        output: dict[str, Any] = self.status.get("output") or {}
        return output


# --- pure helpers (tested in tests/scripts/test_demo.py) ------------------------------------


def size_text(count: float) -> str:
    if count < 1024:
        return f"{count:.0f} B"
    if count < MIB:
        return f"{count / 1024:.1f} KiB"
    return f"{count / MIB:.2f} MiB"


def throughput_text(count: int, seconds: float | None) -> str:
    if not count or not seconds or seconds <= 0:
        return "-"
    return f"{count / seconds / MIB:.2f} MiB/s"


def listening_url(line: str) -> str | None:
    """The base URL in the runtime's ``listening on http://...`` line."""
    found = re.search(r"listening on (http://\S+)", line)
    return found.group(1).rstrip("/") if found else None


def same_content(first: Path, second: Path, chunk: int = 4 * MIB) -> bool:
    """Byte-identical, read in chunks (the disks are sparse GiBs)."""
    if first.stat().st_size != second.stat().st_size:
        return False
    with first.open("rb") as a, second.open("rb") as b:
        while True:
            left, right = a.read(chunk), b.read(chunk)
            if left != right:
                return False
            if not left:
                return True


def short_id(resource_id: str | None) -> str:
    """The last segment of a resource id or blob URL (with its snapshot time, if any)."""
    if not resource_id:
        return "-"
    if "?snapshot=" in resource_id:
        path, _, stamp = resource_id.partition("?snapshot=")
        return f"{path.rsplit('/', 1)[-1]}@{stamp}"
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def snapshot_label(snapshot_id: str | None, disk_id: str) -> str:
    """A snapshot's name without what the row already says (``bulwark-<disk>-``), or a blob
    snapshot's time to the second."""
    if not snapshot_id:
        return "-"
    if "?snapshot=" in snapshot_id:
        stamp = snapshot_id.partition("?snapshot=")[2]
        return "blob @" + stamp.split(".")[0].rstrip("Z") + "Z"
    name = short_id(snapshot_id)
    prefix = f"bulwark-{short_id(disk_id)}-"
    return "…" + name[len(prefix) :] if name.startswith(prefix) else name


def policy_document(
    subscription_id: str, location: str, repository: Path, secret: Path, sql_secret: Path | None = None
) -> dict[str, Any]:
    """Every VM (and, with ``sql_secret``, every SQL database) of the demo resource groups; image-level
    backup on; the passphrase and the SQL login's password by file reference."""
    groups = [f"/subscriptions/{subscription_id}/resourceGroups/{g}" for g in DEMO_GROUPS]
    document: dict[str, Any] = {
        "id": POLICY_ID,
        "scope": {"resource_groups": groups},
        "schedule": {"time_zone": "UTC", "daily": {"times": ["03:00"]}},
        "snapshots": {"keep": 2},
        "image_backup": {
            "enabled": True,
            "schedule": {"time_zone": "UTC", "daily": {"times": ["03:00"]}},
            "retention": {"days": 7},
        },
        "repository": {"location": str(repository), "region": location},
        "encryption": {"passphrase": {"file": str(secret)}},
        "concurrency": {"resources_in_flight": 2, "workers_in_flight": 2},
    }
    if sql_secret is not None:
        document["scope"]["kinds"] = ["vm", "sql_database"]
        document["sql"] = {"retention": {"days": 7}, "mode": "direct", "login": {"file": str(sql_secret)}}
    return document


# --- processes ----------------------------------------------------------------------------------


def run(argv: Sequence[str | Path], env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], env=env, capture_output=True, check=False, cwd=REPO_ROOT)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).decode(errors="replace")[-2000:]
        raise DemoError(f"`{' '.join(str(a) for a in argv)}` exited with {done.returncode}:\n{output}")
    return done.stdout.decode()


def tool(name: str) -> Path:
    # The venv's console scripts sit next to the interpreter; do not resolve the symlink.
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise DemoError(f"{path} is missing; run `make setup` first")
    return path


@contextmanager
def running_runtime(work: Path, stack_file: Path, key: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m bulwark_local.runtime`` as its own process group; stopped (SIGTERM, then SIGKILL)
    however the block ends. The key reaches it through the environment, not the command line."""
    log = work / "runtime.log"
    env = dict(
        os.environ,
        BULWARK_LOCAL_STACK=str(stack_file),
        BULWARK_WORKER_RESOURCE_GROUP=WORKER_GROUP,
        BULWARK_JOB_POLL_SECONDS="1",
        BULWARK_STATE_DIR=str(work / "app-state"),
        BULWARK_FUNCTION_KEY=key,
    )
    argv = [sys.executable, "-m", "bulwark_local.runtime", "--app", "function_app", "--port", "0"]
    argv += ["--state", str(work / "runtime"), "--key-env", "BULWARK_FUNCTION_KEY", "--no-timers"]
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=sink, stderr=sink, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            for line in log.read_text(errors="replace").splitlines():
                url = url or listening_url(line)
            if url is None:
                if process.poll() is not None:
                    raise DemoError(f"the runtime exited with {process.returncode}:\n{tail(log)}")
                if time.monotonic() > deadline:
                    raise DemoError(f"the runtime did not start listening within 60 s:\n{tail(log)}")
                time.sleep(0.2)
        yield url, process
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- HTTP ----------------------------------------------------------------------------------------


class Api:
    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.key = key

    def call(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base_url}/api/{path}", method=method, data=data)
        request.add_header("Content-Type", "application/json")
        request.add_header("x-functions-key", self.key)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")


# --- the demo ------------------------------------------------------------------------------------


def step(message: str) -> None:
    console.print(f"[cyan]>[/] {message}")


def note(message: str) -> None:
    console.print(f"  {message}")


def put_resource_group(stack: Any, name: str) -> None:
    """The resource group the simulated Container Instances workers run in."""
    import http.client
    import ssl
    from urllib.parse import urlsplit

    parts = urlsplit(stack.arm_endpoint)
    context = ssl.create_default_context(cafile=stack.ca_bundle)
    connection = http.client.HTTPSConnection(parts.hostname or "127.0.0.1", parts.port or 443, context=context)
    try:
        connection.request(
            "PUT",
            f"/subscriptions/{stack.subscription_id}/resourcegroups/{name}?api-version=2021-04-01",
            body=json.dumps({"location": stack.location}),
            headers={"Authorization": "Bearer demo", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    if response.status not in (200, 201):
        raise DemoError(f"creating resource group {name} answered {response.status}")


def create_policy(api: Api, document: dict[str, Any]) -> list[Check]:
    """POST /api/policies; first a copy with the passphrase inline, which the API must refuse."""
    checks = []
    inline = dict(document, id=f"{POLICY_ID}-inline", encryption={"passphrase": "an-inline-passphrase"})
    status, answer = api.call("policies", "POST", inline)
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    problems = [p for p in error.get("problems", []) if isinstance(p, dict)]
    fields = [str(p.get("path", "")) for p in problems]
    stored, _ = api.call(f"policies/{inline['id']}")
    checks.append(
        Check(
            "a policy with an inline passphrase is refused, nothing stored",
            status == 400 and stored == 404 and "an-inline-passphrase" not in json.dumps(answer),
            f"POST answered {status}, problem(s) in {', '.join(fields) or '-'}; GET answered {stored}",
        )
    )
    for problem in problems or [{"path": "-", "message": error.get("message", answer), "fix": ""}]:
        note(f"with the passphrase inline: {status}, {problem.get('path')}: {problem.get('message')}")
    status, answer = api.call("policies", "POST", document)
    if status != 201:
        raise DemoError(f"POST /api/policies answered {status}: {answer}")
    note("201 Created (POST /api/policies)")
    status, answer = api.call(f"policies/{POLICY_ID}")
    checks.append(
        Check(
            "the policy reads back through the API",
            status == 200 and isinstance(answer, dict) and json.dumps(answer).count(POLICY_ID) > 0,
            f"GET /api/policies/{POLICY_ID} answered {status}",
        )
    )
    return checks


def run_session(api: Api, label: str, body: Any = None) -> SessionRun:
    started = time.monotonic()
    status, answer = api.call(f"policies/{POLICY_ID}/run", "POST", body)
    if status != 202 or not isinstance(answer, dict):
        raise DemoError(f"POST /api/policies/{POLICY_ID}/run answered {status}: {answer}")
    instance_id = str(answer["id"])
    note(f"202 Accepted: session {instance_id}; polling GET /api/sessions/{{id}}")
    seen: list[dict[str, Any]] = []
    columns = (
        TextColumn("  {task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=None, detail="starting")
        while True:
            code, document = api.call(f"sessions/{instance_id}")
            if code != 200 or not isinstance(document, dict):
                raise DemoError(f"GET /api/sessions/{instance_id} answered {code}: {document}")
            custom = document.get("custom_status") or {}
            if isinstance(custom, dict) and custom:
                if not seen or seen[-1] != custom:
                    seen.append(custom)
                progress.update(
                    task,
                    total=custom.get("resources_total") or None,
                    completed=custom.get("resources_done", 0),
                    detail=(
                        f"{custom.get('phase', '')}; read {size_text(custom.get('bytes_read', 0))}, "
                        f"stored {size_text(custom.get('bytes_stored', 0))}"
                        + (f", [red]{custom['failed']} failed[/]" if custom.get("failed") else "")
                    ),
                )
            if document.get("runtime_status") in ("Completed", "Failed", "Terminated"):
                break
            if time.monotonic() - started > SESSION_TIMEOUT:
                raise DemoError(f"session {instance_id} did not finish within {SESSION_TIMEOUT:.0f} s: {document}")
            time.sleep(0.5)
    return SessionRun(label, instance_id, document, time.monotonic() - started, seen)


def disks_of(run: SessionRun) -> dict[str, dict[str, Any]]:
    return {disk["disk_id"]: disk for r in run.output.get("resources", []) for disk in r.get("disks", [])}


def resource_named(run: SessionRun, name: str) -> dict[str, Any]:
    for resource in run.output.get("resources", []):
        if resource.get("name") == name or str(resource.get("resource_id", "")).endswith(f"/{name}"):
            found: dict[str, Any] = resource
            return found
    raise DemoError(f"the session output has no VM {name}")


def secret_file(path: Path, value: str) -> Path:
    """``value`` in a new file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return path


def guest_read(sim: list[str | Path], disk_or_snapshot: str, out: Path) -> Path:
    run([*sim, "guest", "read", disk_or_snapshot, "--out", out])
    return out


def fsck_clean(image: Path) -> bool:
    return subprocess.run([E2FSCK, "-fn", str(image)], capture_output=True, check=False).returncode == 0


def session_checks(run: SessionRun, incremental: bool) -> list[Check]:
    output, status = run.output, run.status
    resources = output.get("resources", [])
    disks = [d for r in resources for d in r.get("disks", [])]
    vm_disks = [d for r in resources if not is_sql(str(r.get("resource_id", ""))) for d in r.get("disks", [])]
    databases = sum(1 for r in resources if is_sql(str(r.get("resource_id", ""))))
    bad = [f"{r.get('name')}: {r.get('status')} {'; '.join(r.get('reasons', []))}" for r in resources]
    bad = [b for b, r in zip(bad, resources, strict=True) if r.get("status") != "Success"]
    checks = [
        Check(
            f"{run.label}: session Success",
            status.get("runtime_status") == "Completed" and output.get("status") == "Success" and not bad,
            f"{len(resources) - databases} VMs ({len(vm_disks)} disks), {databases} databases in {run.seconds:.1f} s"
            + (f"; {', '.join(bad)}" if bad else ""),
        ),
        Check(
            f"{run.label}: every disk and database has a snapshot or export and a repository point",
            bool(disks) and all(d.get("snapshot_id") and d.get("point_id") for d in disks),
            f"{sum(1 for d in disks if d.get('point_id'))} points",
        ),
        Check(
            f"{run.label}: {'incremental' if incremental else 'full'} image-level backups",
            bool(vm_disks) and all(bool(d.get("incremental")) == incremental for d in vm_disks),
        ),
    ]
    last = run.progress_seen[-1] if run.progress_seen else {}
    checks.append(
        Check(
            f"{run.label}: progress in the custom status",
            last.get("resources_done") == last.get("resources_total") == len(resources)
            and last.get("bytes_read") == sum(d.get("bytes_read", 0) for d in disks),
            f"{len(run.progress_seen)} distinct statuses seen; last: {last.get('phase', '-')}",
        )
    )
    return checks


def demo(work: Path, stopper: ExitStack) -> tuple[list[SessionRun], list[dict[str, Any]], list[Check]]:
    from bulwark_local.stack import running_stack

    checks: list[Check] = []
    step("starting the local stack: Azurite + the Azure simulator")
    began = time.monotonic()
    stack = stopper.enter_context(running_stack(work / "stack"))
    stack_file = work / "stack" / "stack.json"
    note(f"ARM {stack.arm_endpoint}, storage in Azurite ({time.monotonic() - began:.1f} s)")
    sim: list[str | Path] = [tool("bulwark-sim"), "--stack", stack_file]
    bulwark_exe = tool("bulwark")

    step("bulwark-sim seed demo")
    began = time.monotonic()
    for line in run([*sim, "seed", "demo"]).splitlines():
        note(line)
    note(f"({time.monotonic() - began:.1f} s)")
    put_resource_group(stack, WORKER_GROUP)

    step("bulwark repo init (passphrase in a 0600 file, never on a command line or in the policy)")
    secrets_dir = work / "secrets"
    secrets_dir.mkdir(mode=0o700)
    secret = secrets_dir / "repo.passphrase"
    secret_file(secret, secrets.token_urlsafe(24))
    repository = work / "repository"
    bulwark: list[str | Path] = [bulwark_exe]
    repo_args: list[str | Path] = ["--repo", repository, "--password-file", secret]
    run([*bulwark, "repo", "init", *repo_args])
    note(f"{repository} (directory repository); passphrase file mode {oct(secret.stat().st_mode & 0o777)}")

    key = secrets.token_urlsafe(24)
    step("starting the function app: python -m bulwark_local.runtime --app function_app (key from the env)")
    url, _process = stopper.enter_context(running_runtime(work, stack_file, key))
    api = Api(url, key)
    note(f"listening on {url}; workers run as simulated Container Instances in {WORKER_GROUP}")
    status, _ = Api(url, "wrong-key").call("sessions/none")
    checks.append(Check("HTTP API refuses a wrong function key", status == 401, f"answered {status}"))

    step(f"policy '{POLICY_ID}' over every VM and SQL database in {', '.join(DEMO_GROUPS)}")
    sql_secret = secret_file(secrets_dir / "sql.password", DEMO_SQL_PASSWORD)
    note(f"SQL: BACPAC export (direct); the login's password in a 0600 file too ({sql_secret.name})")
    document = policy_document(stack.subscription_id, stack.location, repository, secret, sql_secret)
    checks += create_policy(api, document)

    step("full session, on demand: POST /api/policies/demo-estate/run")
    full = run_session(api, "full session")
    checks += session_checks(full, incremental=False)
    changed = resource_named(full, CHANGED_VM)
    if not changed.get("disks"):
        raise DemoError(f"{CHANGED_VM} has no disks in the session output")
    target = changed["disks"][-1]  # the data disk
    images = work / "images"
    images.mkdir()
    at_full = guest_read(sim, str(target["snapshot_id"]), images / "at-full.img")

    disk_id = str(target["disk_id"])
    step(f"guest activity on {CHANGED_VM}'s disk {short_id(disk_id)}: bulwark-sim guest write and trim")
    writes = ((64 * MIB, 3 * MIB), (300 * MIB, 512 * 1024))
    for offset, length in writes:
        run([*sim, "guest", "write", disk_id, "--offset", str(offset), "--length", str(length), "--random"])
        note(f"wrote {size_text(length)} of random bytes at {offset // MIB} MiB")
    trim = (65 * MIB, MIB)
    run([*sim, "guest", "trim", disk_id, "--offset", str(trim[0]), "--length", str(trim[1])])
    note(f"trimmed {size_text(trim[1])} at {trim[0] // MIB} MiB (reads back as zeros)")
    vhd = next((d for d in disks_of(full) if "?" not in d and d.lower().endswith(".vhd")), None)
    vhd_write = (200 * MIB, 256 * 1024)
    if vhd:
        step(f"guest activity on {UNMANAGED_VM}'s unmanaged disk {short_id(vhd)} (a page blob)")
        run([*sim, "guest", "write", vhd, "--offset", str(vhd_write[0]), "--length", str(vhd_write[1]), "--random"])
        note(f"wrote {size_text(vhd_write[1])} of random bytes at {vhd_write[0] // MIB} MiB")

    database = next((r for r in full.output.get("resources", []) if r.get("name") == CHANGED_DATABASE), None)
    if database is None:
        raise DemoError(f"the full session did not back up the SQL database {CHANGED_DATABASE}")
    database_id = str(database["resource_id"])
    step(f"database changes: bulwark-sim sql change {CHANGED_DATABASE} --rows {CHANGED_ROWS}")
    changed_text = run([*sim, "sql", "change", database_id, "--rows", str(CHANGED_ROWS)]).strip()
    note(changed_text.splitlines()[-1] if changed_text else f"{CHANGED_ROWS} rows rewritten in one table")

    step("incremental session: POST /api/policies/demo-estate/run")
    incremental = run_session(api, "incremental session")
    checks += session_checks(incremental, incremental=True)
    after = disks_of(incremental).get(disk_id)
    if after is None:
        raise DemoError(f"the incremental session did not back up {disk_id}")
    at_incremental = guest_read(sim, str(after["snapshot_id"]), images / "at-incremental.img")
    changed_bytes = sum(length for _, length in writes) + trim[1]
    checks.append(
        Check(
            f"incremental: {short_id(disk_id)} read only the changed ranges",
            0 < after["bytes_read"] <= changed_bytes + 2 * MIB,
            f"{size_text(after['bytes_read'])} read for {size_text(changed_bytes)} written or trimmed "
            "(1 MiB blocks; trimmed pages are cleared, not read)",
        )
    )
    if vhd:
        vhd_after = disks_of(incremental).get(vhd, {})
        checks.append(
            Check(
                f"incremental: {short_id(vhd)} (unmanaged) read only the changed ranges",
                0 < vhd_after.get("bytes_read", 0) <= MIB,
                f"{size_text(vhd_after.get('bytes_read', 0))} read for {size_text(vhd_write[1])} written",
            )
        )
    untouched = [d for i, d in disks_of(incremental).items() if i not in (disk_id, vhd) and not is_sql(i)]
    checks.append(
        Check(
            "incremental: untouched VM disks read nothing",
            all(d["bytes_read"] == 0 for d in untouched),
            f"{len(untouched)} disks, {size_text(sum(d['bytes_read'] for d in untouched))} read",
        )
    )

    step("restoring the disk's two points: bulwark restore-image, against bulwark-sim guest read of its snapshots")
    for label, outcome, expected in (("full", target, at_full), ("incremental", after, at_incremental)):
        restored = images / f"restored-{label}.img"
        run([*bulwark, "restore-image", str(outcome["point_id"]), restored, *repo_args])
        checks.append(
            Check(
                f"{label} point of {short_id(disk_id)}: byte-identical to its snapshot",
                same_content(restored, expected),
                f"point {outcome['point_id']}, {size_text(restored.stat().st_size)} disk",
            )
        )
        checks.append(Check(f"{label} point of {short_id(disk_id)}: ext4 consistent (e2fsck -n)", fsck_clean(restored)))
        restored.unlink()
    checks.append(
        Check(
            "the two snapshots differ (the guest's changes are real)",
            not same_content(at_full, at_incremental),
        )
    )

    checks += vm_restore_checks(api, sim, bulwark, changed, disk_id, at_incremental, images)

    step(
        f"restoring {CHANGED_DATABASE}'s latest BACPAC point: bulwark restore-bacpac, against an export made now "
        "(the session's own export is deleted after the worker stored it)"
    )
    checks += bacpac_checks(stack, work, bulwark, repo_args, full, incremental, database_id)

    step("bulwark verify --read-data")
    try:
        run([*bulwark, "verify", "--read-data", *repo_args])
        checks.append(Check("bulwark verify --read-data", True))
    except DemoError as exc:
        checks.append(Check("bulwark verify --read-data", False, str(exc).splitlines()[-1]))
    points = json.loads(run([*bulwark, "points", "--json", *repo_args]))
    expected_points = len(disks_of(full)) + len(disks_of(incremental))
    checks.append(
        Check("repository lists every point", len(points) == expected_points, f"{len(points)} of {expected_points}")
    )
    step("the catalog: GET /api/sessions/{id} (the catalog's record) and GET /api/points")
    catalog = read_catalog(api, stack, [full, incremental])
    checks += catalog_checks(api, [full, incremental], catalog)
    return [full, incremental], catalog, checks


def vm_restore_checks(
    api: Api,
    sim: list[str | Path],
    bulwark: list[str | Path],
    vm: Mapping[str, Any],
    disk_id: str,
    expected: Path,
    images: Path,
) -> list[Check]:
    """Restore the changed VM from its newest image-level point into a new VM, through the app."""
    vm_id = str(vm["resource_id"])
    status, answer = api.call(f"points?resource={urllib.parse.quote(vm_id)}&kind=image")
    if status != 200 or not answer.get("points"):
        raise DemoError(f"GET /api/points for {vm_id} answered {status}: {answer}")
    point = answer["points"][0]
    step(
        f"restoring {CHANGED_VM} into a new VM from its image-level point {point['point_id']}: "
        "bulwark restore vm --source repository (upload disks written by a worker with Put Page)"
    )
    env = dict(os.environ, BULWARK_APP_URL=api.base_url, BULWARK_FUNCTION_KEY=api.key)
    began = time.monotonic()
    name = f"{CHANGED_VM}-restored"
    argv = [*bulwark, "restore", "vm", point["point_id"], "--vm", vm_id, "--name", name, "--source", "repository"]
    out = run([*argv, "--json"], env=env)
    result = json.loads(out)
    elapsed = time.monotonic() - began
    disks = {d.get("lun"): d["disk_id"] for d in result.get("disks", [])}
    note(f"VM {short_id(result.get('vm_id'))} with {len(disks)} disks in {elapsed:.1f} s")
    data_lun = next((d.get("lun") for d in point["disks"] if d["disk_id"].lower() == disk_id.lower()), None)
    restored = disks.get(data_lun)
    same = restored is not None and same_content(guest_read(sim, restored, images / "restored-vm-disk.img"), expected)
    original_luns = sorted(-1 if d.get("lun") is None else d["lun"] for d in point["disks"])
    return [
        Check(
            f"restore vm: {CHANGED_VM}-restored has the original's LUNs",
            sorted(-1 if lun is None else lun for lun in disks) == original_luns,
            f"LUNs {', '.join('os' if lun is None else str(lun) for lun in disks)}",
        ),
        Check(
            f"restore vm: its disk at LUN {data_lun} is byte-identical to the incremental snapshot",
            same,
            f"{size_text(result.get('bytes_written', 0))} written through Put Page",
        ),
    ]


def bacpac_checks(
    stack: Any,
    work: Path,
    bulwark: list[str | Path],
    repo_args: list[str | Path],
    full: SessionRun,
    incremental: SessionRun,
    database_id: str,
) -> list[Check]:
    """The database's latest BACPAC point restores with every member identical to an export made now
    (nothing changed it since that session); the change stored less than the first BACPAC."""
    checks = []
    before, after = disks_of(full).get(database_id, {}), disks_of(incremental).get(database_id, {})
    reference = export_reference(
        stack, database_id, DEMO_SQL_LOGIN, DEMO_SQL_PASSWORD, work / "images" / "reference.bacpac"
    )
    restored = work / "images" / "restored.bacpac"
    run([*bulwark, "restore-bacpac", str(after.get("point_id")), restored, *repo_args])
    differ = bacpac_differences(restored, reference)
    checks.append(
        Check(
            f"{CHANGED_DATABASE}: restored BACPAC has every member of a fresh export",
            not differ,
            f"point {after.get('point_id')}, {member_count(reference)} members"
            + (f"; differ: {', '.join(differ[:5])}" if differ else " (Origin.xml up to its identity and times)"),
        )
    )
    checks.append(
        Check(
            f"{CHANGED_DATABASE}: the second BACPAC stored only what changed",
            0 < after.get("bytes_stored", 0) < before.get("bytes_stored", 0) / 2,
            f"{size_text(after.get('bytes_stored', 0))} stored of {size_text(after.get('bytes_read', 0))} read "
            f"(first: {size_text(before.get('bytes_stored', 0))})",
        )
    )
    return checks


def read_catalog(api: Api, stack: Any, runs: list[SessionRun]) -> list[dict[str, Any]]:
    """The catalog's record of each session from GET /api/sessions/{id} (per resource: status, bytes,
    snapshot and point ids), with each disk's worker result from the job-status table (``jobs``:
    disk id -> result: point, bytes, the worker's transfer time)."""
    from shared.services.worker_jobs import job_id_for
    from shared.worker.table_status import DEFAULT_TABLE as JOBS_TABLE
    from shared.worker.table_status import TableJobStatusStore

    recorded = []
    jobs = TableJobStatusStore.from_connection_string(stack.storage_connection_string, JOBS_TABLE)
    try:
        for run in runs:
            status, answer = api.call(f"sessions/{run.instance_id}")
            document = answer.get("catalog") if status == 200 and isinstance(answer, dict) else None
            if not isinstance(document, dict):
                raise DemoError(f"GET /api/sessions/{run.instance_id} has no catalog record: {status} {answer}")
            document["jobs"] = {}
            for disk_id in disks_of(run):
                job = jobs.get(job_id_for(str(document.get("session_id", run.instance_id)), disk_id))
                document["jobs"][disk_id] = dict(job.result) if job and job.result else {}
            recorded.append(document)
    finally:
        jobs.close()
    return recorded


def catalog_checks(api: Api, runs: list[SessionRun], recorded: list[dict[str, Any]]) -> list[Check]:
    checks = []
    for run, document in zip(runs, recorded, strict=True):
        resources = document.get("resources", [])
        checks.append(
            Check(
                f"{run.label}: recorded in the catalog",
                document.get("status") == "Success" and len(resources) == len(run.output.get("resources", [])),
                f"{document.get('status')}, {len(resources)} resources",
            )
        )
    listed: dict[str, set[str]] = {}
    for kind, label in (("image", "image-level points per VM"), ("bacpac", "BACPAC points per database")):
        ids = [
            str(r["resource_id"])
            for r in runs[-1].output.get("resources", [])
            if is_sql(str(r["resource_id"])) == (kind == "bacpac")
        ]
        counts = []
        for resource_id in ids:
            query = urllib.parse.urlencode({"resource": resource_id, "kind": kind})
            status, answer = api.call(f"points?{query}")
            points = answer.get("points", []) if status == 200 and isinstance(answer, dict) else []
            listed[resource_id] = {str(p.get("point_id")) for p in points if isinstance(p, dict)}
            counts.append(len(points) if status == 200 else -status)
        checks.append(
            Check(
                f"GET /api/points: {len(runs)} {label}",
                bool(ids) and all(c == len(runs) for c in counts),
                ", ".join(f"{short_id(v)} {c}" for v, c in zip(ids, counts, strict=True)),
            )
        )
    # The sessions' records name the points as GET /api/points lists them (VMs and databases).
    named = [
        (str(r.get("resource_id")), str(p))
        for document in recorded
        for r in document.get("resources", [])
        for p in r.get("point_ids", [])
    ]
    missing = [f"{short_id(r)} {p}" for r, p in named if p not in listed.get(r, set())]
    checks.append(
        Check(
            "the sessions' catalog records name the points GET /api/points lists",
            bool(named) and not missing,
            f"{len(named) - len(missing)} of {len(named)}"
            + (f"; not listed: {', '.join(missing[:3])}" if missing else ""),
        )
    )
    return checks


def job_kind(job: Mapping[str, Any]) -> str:
    if not job:
        return "-"
    if job.get("kind") == "bacpac":
        return "bacpac"
    return "incremental" if job.get("incremental") else "full"


def seconds_between(start: str | None, end: str | None) -> float | None:
    import datetime as dt

    if not start or not end:
        return None
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def print_report(runs: list[SessionRun], catalog: list[dict[str, Any]], checks: list[Check]) -> None:
    for run, recorded in zip(runs, catalog, strict=True):
        total = seconds_between(recorded.get("started"), recorded.get("ended"))
        table = Table(
            box=box.SIMPLE_HEAD,
            title=f"{run.label}: {recorded.get('status')}, {total or run.seconds:.1f} s "
            f"(catalog: session {recorded.get('session_id')})",
            title_justify="left",
        )
        for column in ("resource / disk", "result", "snapshot", "point", "read", "stored", "time", "throughput"):
            if column in ("snapshot", "point"):
                table.add_column(column, overflow="fold", min_width=33 if column == "point" else 26)
            else:
                right = column in ("read", "stored", "time", "throughput")
                table.add_column(column, justify="right" if right else "left", no_wrap=True)
        outcomes = disks_of(run)
        for resource in recorded.get("resources", []):
            status = str(resource.get("status"))
            colour = "green" if status == "Success" else "yellow" if status == "Warning" else "red"
            table.add_row(
                f"[bold]{short_id(resource.get('resource_id'))}[/]",
                f"[{colour}]{status}[/]" + (f" {resource['reason']}" if resource.get("reason") else ""),
                (
                    "BACPAC export"
                    if is_sql(str(resource.get("resource_id", "")))
                    else f"{len(resource.get('snapshot_ids', []))} disk snapshot(s)"
                ),
                "\n".join(str(p) for p in resource.get("point_ids", [])) or "-",
                size_text(resource.get("bytes_read", 0)),
                size_text(resource.get("bytes_stored", 0)),
                "",
                "",
            )
            for snapshot_id in resource.get("snapshot_ids", []):
                disk_id = next((d for d, o in outcomes.items() if o.get("snapshot_id") == snapshot_id), "")
                job = recorded.get("jobs", {}).get(disk_id, {})
                took = job.get("duration_s")
                table.add_row(
                    f"  {short_id(disk_id)}",
                    job_kind(job),
                    "the database itself" if snapshot_id == disk_id else snapshot_label(snapshot_id, disk_id),
                    str(job.get("point_id", "-")),
                    size_text(job.get("bytes_read", 0)),
                    size_text(job.get("bytes_stored", 0)),
                    f"{took:.2f} s" if took is not None else "-",
                    throughput_text(int(job.get("bytes_read", 0)), took),
                )
        console.print(table)
    console.print(
        "[dim]read: bytes read from the snapshot (only changed ranges when incremental) or the BACPAC; "
        "stored: new bytes in the repository (compressed, encrypted); time: the worker's transfer time; "
        "point: the catalog's point per resource, the repository's point per disk or BACPAC.[/]"
    )
    table = Table(title="Checks", title_justify="left")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(check.what, "[green]ok[/]" if check.ok else "[red bold]FAILED[/]", check.detail)
    console.print(table)


def announce() -> None:
    console.print("[bold]Bulwark demo: the serverless app on one machine[/]")
    console.print(
        "The unmodified function app runs under the local Functions runtime against the local Azure stack "
        "(Azurite + the simulator): a policy over a demo estate of VMs and SQL databases, a full and an "
        "incremental session over HTTP, disk restores checked byte for byte against the simulated guest and "
        "a BACPAC restore member by member against a fresh export.\n"
    )


def processes_under(work: Path) -> list[tuple[int, str]]:
    """Processes whose command line, working directory or environment mentions ``work`` (workers
    started by the simulator carry its CA bundle and scratch HOME in their environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(entry / "cwd")
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if str(work) in command or cwd.startswith(str(work)) or str(work).encode() in environment:
            found.append((int(entry.name), command[:120]))
    return found


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    announce()
    if not E2FSCK.exists():
        console.print(f"[red]missing {E2FSCK}: apt-get install e2fsprogs[/]")
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bulwark-demo-") as scratch:
            work = Path(scratch)
            with ExitStack() as stopper:
                try:
                    runs, catalog, checks = demo(work, stopper)
                except DemoError as exc:
                    console.print(f"[red bold]demo failed:[/] {exc}")
                    console.print(f"[dim]last lines of the runtime's log:\n{tail(work / 'runtime.log', 25)}[/]")
                    return 1
                step("stopping the runtime and the stack")
            left = processes_under(work)
            checks.append(
                Check(
                    "nothing left running (runtime, Azurite, simulator, workers)",
                    not left,
                    ", ".join(f"pid {pid}: {what}" for pid, what in left[:5]),
                )
            )
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]: everything started was stopped and the work directory removed")
        return 130
    print_report(runs, catalog, checks)
    passed = all(check.ok for check in checks)
    verdict = "[green bold]all checks passed[/]" if passed else "[red bold]some checks FAILED[/]"
    console.print(f"{verdict} in {time.perf_counter() - started:.1f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
