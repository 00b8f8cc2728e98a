"""Microsoft.ContainerInstance: container groups whose containers run as local processes.

Shapes follow the recording (test_mgmt_containerinstance.test_container_instance) and facts §2.4:
PUT answers 201 (200 on update) with ``provisioningState: Pending``, ``instanceView.state: Pending``
and only ``Azure-AsyncOperation`` (``{S}/providers/Microsoft.ContainerInstance/locations/{loc}/
operations/{id}``), whose poll answers ``{"id", "status", "startTime", "properties": {"events"}}``;
GET carries each container's ``instanceView`` (``currentState``: Running, or Terminated with
``exitCode``, ``finishTime`` and ``detailStatus`` Completed/Error; ``restartCount``; events) and the
group's (Running, Succeeded, Failed, Stopped); lists leave ``instanceView`` out. DELETE answers 200
with the group. ``.../containers/{c}/logs`` gives ``{"content"}``; restart answers 204 with
``Azure-AsyncOperation``; stop 204; start 202; exec is a stub.

**Images become local commands.** A container runs the command its image maps to (the ``images``
setting: fnmatch pattern -> argv; ``{python}`` is the simulator's interpreter, ``{repo}`` the
repository root), e.g. ``bulwark/worker:*`` -> ``{python} -m shared.worker``. When the container
has a ``command``, that runs instead (its entry point override), with a leading ``python``/
``python3`` replaced by ``{python}``; the image must still match a pattern, else the PUT fails with
``InaccessibleImage``. The process gets the group's environment variables (``secureValue`` too:
kept in memory only, never written to state, logs or responses) plus ``PYTHONPATH`` (the
repository), ``PYTHONUNBUFFERED``, and ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` = the simulator's CA
(the container trusts the local "Azure"), unless the group sets them. stdout and stderr are the
logs. Exit by signal N reports exit code 128+N (SIGKILL: 137), as Docker does.

**No orphans.** Each process leads its own process group and is started from one long-lived
spawner thread through a tiny launcher that sets ``PR_SET_PDEATHSIG``, so it dies with the
simulator even on SIGKILL; ``shutdown()`` (simulator stop) terminates every group. A restarted
simulator reports containers it no longer runs as Terminated (137).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import fnmatch
import hashlib
import logging
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from .admin import AdminError, admin_body
from .arm import ArmError, Context, Route, json_response, lro_headers, route
from .state import JsonDict, StateStore

NAMESPACE = "Microsoft.ContainerInstance"
GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"
REPO_ROOT = Path(__file__).resolve().parents[4]
LOCAL_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGES: dict[str, list[str]] = {
    "bulwark/worker:*": ["{python}", "-m", "shared.worker"],
    "*/bulwark/worker:*": ["{python}", "-m", "shared.worker"],
    "alpine*": ["/bin/sh"],
    "busybox*": ["/bin/sh"],
}
STOP_GRACE_SECONDS = 3.0
LOG_LIMIT = 4 * 1024 * 1024

_RG = "/subscriptions/{subscription}/resourceGroups/{resource_group}"
_SUB = "/subscriptions/{subscription}"
_GROUP = _RG + "/providers/Microsoft.ContainerInstance/containerGroups/{name}"

# Runs first in every container process: die with the simulator (the spawner thread), then exec.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"  # PR_SET_PDEATHSIG
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(137)\n"
    "os.execvpe(sys.argv[2], sys.argv[2:], os.environ)\n"
)

_log = logging.getLogger("bulwark_local.simulator.aci")


def location_key(location: str) -> str:
    return location.replace(" ", "").lower()


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


# -- processes -----------------------------------------------------------------------------------


@dataclass
class _Process:
    key: str
    container: str
    popen: subprocess.Popen[bytes]
    stopping: bool = False


@dataclass
class _Spawn:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    result: concurrent.futures.Future[subprocess.Popen[bytes]] = field(default_factory=concurrent.futures.Future)


class ContainerRuntime:
    """Local processes for containers, keyed by (group key, container name)."""

    def __init__(self, on_exit: Callable[[str, str, int, int, bool], None]) -> None:
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._processes: dict[tuple[str, str], _Process] = {}
        self._queue: queue.Queue[_Spawn | None] = queue.Queue()
        self._spawner = threading.Thread(target=self._spawn_loop, name="aci-spawner", daemon=True)
        self._spawner.start()
        self._closed = False

    def launch(self, key: str, container: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> int:
        if self._closed:
            raise RuntimeError("the container runtime is shut down")
        request = _Spawn(argv, env, cwd, log)
        self._queue.put(request)
        popen = request.result.result(timeout=30)
        process = _Process(key, container, popen)
        with self._lock:
            self._processes[(key, container)] = process
        threading.Thread(target=self._wait, args=(process,), name=f"aci-wait-{popen.pid}", daemon=True).start()
        return popen.pid

    def _spawn_loop(self) -> None:
        # The launcher's PR_SET_PDEATHSIG follows the thread that forked it: always this one.
        while True:
            request = self._queue.get()
            if request is None:
                return
            try:
                request.cwd.mkdir(parents=True, exist_ok=True)
                with open(request.log, "wb") as log:
                    popen = subprocess.Popen(
                        [sys.executable, "-I", "-c", _LAUNCHER, str(os.getpid()), *request.argv],
                        env=request.env,
                        cwd=request.cwd,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                request.result.set_result(popen)
            except BaseException as error:  # handed to the requester
                request.result.set_exception(error)

    def _wait(self, process: _Process) -> None:
        returncode = process.popen.wait()
        with self._lock:
            if self._processes.get((process.key, process.container)) is process:
                del self._processes[(process.key, process.container)]
        self._on_exit(process.key, process.container, process.popen.pid, exit_code(returncode), process.stopping)

    def running(self, key: str) -> dict[str, int]:
        with self._lock:
            return {c: p.popen.pid for (k, c), p in self._processes.items() if k == key}

    def all_running(self) -> list[JsonDict]:
        with self._lock:
            return [{"group": k, "container": c, "pid": p.popen.pid} for (k, c), p in self._processes.items()]

    def kill(self, key: str, container: str | None, sig: signal.Signals) -> list[int]:
        """Signal the container's process group (crash tests); the exit is reported as usual."""
        with self._lock:
            targets = [p for (k, c), p in self._processes.items() if k == key and container in (None, c)]
        for process in targets:
            _signal_group(process.popen, sig)
        return [p.popen.pid for p in targets]

    def stop(self, key: str, *, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every container of a group (SIGTERM, then SIGKILL after ``grace``); waits for the exits."""
        with self._lock:
            targets = [p for (k, _), p in self._processes.items() if k == key]
        _stop_all(targets, grace)

    def shutdown(self, *, grace: float = STOP_GRACE_SECONDS) -> None:
        self._closed = True
        with self._lock:
            targets = list(self._processes.values())
        _stop_all(targets, grace)
        self._queue.put(None)
        self._spawner.join(timeout=5)


def _stop_all(targets: list[_Process], grace: float) -> None:
    for process in targets:
        process.stopping = True
        _signal_group(process.popen, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in targets:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            process.popen.wait(remaining)
        except subprocess.TimeoutExpired:
            _signal_group(process.popen, signal.SIGKILL)
            process.popen.wait()


def _signal_group(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, sig)  # the process leads its own group (start_new_session)


# -- the provider --------------------------------------------------------------------------------


class AciProvider:
    def __init__(self, state: StateStore, folder: Path, ca_bundle: str) -> None:
        self._state = state
        self._folder = folder
        self._ca_bundle = ca_bundle
        self._secure: dict[str, dict[str, dict[str, str]]] = {}  # key -> container -> env (memory only)
        self.runtime = ContainerRuntime(self._on_exit)
        self._recover()

    def routes(self) -> list[Route]:
        groups = "/providers/Microsoft.ContainerInstance/containerGroups"
        return [
            route("GET", _SUB + groups, lambda c: self._list(c, False)),
            route("GET", _RG + groups, lambda c: self._list(c, True)),
            route("GET", _GROUP, lambda c: json_response(self._view(self._record(c)))),
            route("PUT", _GROUP, self._put),
            route("DELETE", _GROUP, self._delete),
            route("POST", _GROUP + "/restart", self._restart),
            route("POST", _GROUP + "/stop", self._stop),
            route("POST", _GROUP + "/start", self._start_group),
            route("GET", _GROUP + "/containers/{container}/logs", self._logs),
            route("POST", _GROUP + "/containers/{container}/exec", self._exec),
        ]

    def shutdown(self) -> None:
        self.runtime.shutdown()

    # -- settings: the image map ---------------------------------------------------------------

    def images(self) -> dict[str, list[str]]:
        stored = self._state.get("settings", "aci") or {}
        images: dict[str, list[str]] = stored.get("images") or DEFAULT_IMAGES
        return images

    def resolve(self, image: str, command: list[str] | None) -> list[str]:
        """The argv a container of ``image`` runs (its ``command`` when given)."""
        template = next((argv for pattern, argv in self.images().items() if fnmatch.fnmatch(image, pattern)), None)
        if template is None:
            raise ArmError(
                400,
                "InaccessibleImage",
                f"The image '{image}' in the container group is not accessible. Please check the image and registry "
                "credential. (Simulator: map the image to a local command with PUT /_bulwark/aci/images.)",
            )
        if command:
            argv = list(command)
            if argv[0] in ("python", "python3"):
                argv[0] = "{python}"
        else:
            argv = list(template)
        return [part.replace("{python}", sys.executable).replace("{repo}", str(REPO_ROOT)) for part in argv]

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _id(ctx: Context) -> str:
        return f"{ctx.resource_group_id()}/providers/{NAMESPACE}/containerGroups/{ctx.params['name']}"

    def _record(self, ctx: Context) -> JsonDict:
        ctx.require_resource_group()
        record = self._state.get("resources", self._id(ctx))
        if record is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{GROUP_TYPE}/{ctx.params['name']}' under resource group "
                f"'{ctx.params['resource_group']}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        return record

    def _folder_of(self, key: str) -> Path:
        return self._folder / hashlib.sha1(key.lower().encode()).hexdigest()[:16]

    def _list(self, ctx: Context, in_group: bool) -> Response:
        if in_group:
            ctx.require_resource_group()
        prefix = (ctx.resource_group_id() if in_group else f"/subscriptions/{ctx.subscription()}").lower() + "/"
        marker = "/providers/microsoft.containerinstance/containergroups/"
        items = []
        for key, record in self._state.items("resources"):
            if key.startswith(prefix) and marker in key and key.count("/") == 8:
                doc = record["doc"]
                doc["properties"].pop("instanceView", None)
                items.append(doc)
        return ctx.list_response(items)

    def _view(self, record: JsonDict) -> JsonDict:
        """The GET body: the stored doc plus instance views from the private container states."""
        doc: JsonDict = record["doc"]
        private = record["private"]
        states = private.get("containers", {})
        for container in doc["properties"]["containers"]:
            info = states.get(container["name"])
            if info is not None:
                container["properties"]["instanceView"] = _container_view(info)
        doc["properties"]["instanceView"] = {"events": [], "state": _group_state(private)}
        return doc

    # -- create --------------------------------------------------------------------------------

    def _put(self, ctx: Context) -> Response:
        ctx.require_resource_group()
        body = ctx.json()
        group_id = self._id(ctx)
        key = group_id.lower()
        props = body.get("properties") or {}
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        containers = props.get("containers")
        if not isinstance(containers, list) or not containers:
            raise ArmError(400, "InvalidContainerGroup", "The container group must have at least one container.")
        if props.get("osType") not in ("Linux", "Windows"):
            raise ArmError(400, "InvalidOsType", "The 'osType' property is required: Linux or Windows.")
        policy = props.get("restartPolicy", "Always")
        if policy not in ("Always", "OnFailure", "Never"):
            raise ArmError(400, "InvalidRestartPolicy", f"restartPolicy '{policy}' is not Always, OnFailure or Never.")
        plans = [self._plan(container, ctx.params["name"]) for container in containers]
        existing = self._state.get("resources", group_id)
        if existing is not None:
            self.runtime.stop(key)
        now = ctx.state.now()
        doc = _group_doc(group_id, ctx.params["name"], location, body, [p.public for p in plans], ctx)
        events = _start_events(now, [p.image for p in plans])
        private: JsonDict = {"containers": {}, "restartPolicy": policy, "stopped": False}
        self._state.put("resources", group_id, {"doc": doc, "private": private})
        self._secure[key] = {p.name: p.env for p in plans}
        for plan in plans:
            self._launch(key, plan.name, plan.argv, restart_count=0)
        response_doc = _group_doc(group_id, ctx.params["name"], location, body, [p.public for p in plans], ctx)
        response_doc["properties"]["provisioningState"] = "Pending"
        response_doc["properties"]["instanceView"] = {"events": [], "state": "Pending"}
        urls = ctx.operations.start(
            ctx,
            namespace=NAMESPACE,
            collection="operations",
            location=location_key(location),
            with_p=False,
            status_body={"id": group_id, "startTime": now.isoformat(), "properties": {"events": events}},
        )
        return json_response(response_doc, 200 if existing else 201, lro_headers(ctx, urls, location=False))

    @dataclass
    class _Plan:
        name: str
        image: str
        argv: list[str]
        env: dict[str, str]
        public: JsonDict

    def _plan(self, container: Any, group: str) -> AciProvider._Plan:
        if not isinstance(container, dict) or not container.get("name"):
            raise ArmError(400, "InvalidContainerName", "Every container needs a name.")
        name = str(container["name"])
        props = container.get("properties") or {}
        image = props.get("image")
        if not isinstance(image, str) or not image:
            raise ArmError(400, "InvalidImage", f"Container '{name}' needs an image.")
        requests = (props.get("resources") or {}).get("requests") or {}
        if not requests.get("cpu") or not requests.get("memoryInGB"):
            raise ArmError(
                400,
                "InvalidContainerResources",
                f"Container '{name}' needs resources.requests.cpu and resources.requests.memoryInGB.",
            )
        command = props.get("command")
        if command is not None and (not isinstance(command, list) or not all(isinstance(c, str) for c in command)):
            raise ArmError(400, "InvalidCommand", f"The command of container '{name}' must be a list of strings.")
        argv = self.resolve(image, command)
        if shutil.which(argv[0]) is None and not os.access(argv[0], os.X_OK):
            raise ArmError(400, "InvalidCommand", f"Container '{name}': the simulator cannot run '{argv[0]}' here.")
        env: dict[str, str] = {}
        public_env = []
        for variable in props.get("environmentVariables") or []:
            variable_name = str(variable.get("name", ""))
            if not variable_name:
                raise ArmError(400, "InvalidEnvironmentVariable", f"Container '{name}': an env var has no name.")
            if "secureValue" in variable and variable["secureValue"] is not None:
                env[variable_name] = str(variable["secureValue"])
                public_env.append({"name": variable_name})  # Azure never returns secure values
            else:
                env[variable_name] = str(variable.get("value") or "")
                public_env.append({"name": variable_name, "value": env[variable_name]})
        public_props = {k: v for k, v in props.items() if k not in ("environmentVariables", "instanceView")}
        public_props.setdefault("ports", [])
        public_props["environmentVariables"] = public_env
        return AciProvider._Plan(name, image, argv, env, {"name": name, "properties": public_props})

    def _launch(self, key: str, container: str, argv: list[str], *, restart_count: int) -> None:
        folder = self._folder_of(key)
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(folder / "home"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(LOCAL_ROOT)]),
            "REQUESTS_CA_BUNDLE": self._ca_bundle,
            "SSL_CERT_FILE": self._ca_bundle,
            **self._secure.get(key, {}).get(container, {}),
        }
        now = _stamp(self._state.now())
        try:
            pid = self.runtime.launch(key, container, argv, env, folder / "home", folder / f"{container}.log")
        except (OSError, RuntimeError) as error:
            reason = f"CrashLoopBackOff: {type(error).__name__}"
            self._update(key, container, lambda info: info.update(detailStatus=reason, currentState=None))
            return
        _log.info("container %s of %s runs as pid %d", container, key, pid)

        def started(info: JsonDict) -> None:
            previous = info.get("currentState")
            info.update(
                currentState={"state": "Running", "startTime": now, "detailStatus": ""},
                restartCount=restart_count,
                pid=pid,
                argv=argv,
            )
            events = _start_events(self._state.now(), [info.get("image", "")])
            if previous:
                info["previousState"] = previous
                events = events[2:]  # a restart does not pull the image again
            info.setdefault("events", []).extend(events)

        self._update(key, container, started)

    def _update(self, key: str, container: str, change: Callable[[JsonDict], None]) -> JsonDict | None:
        with self._state.lock:
            record = self._state.get("resources", key)
            if record is None:
                return None
            info = record["private"]["containers"].setdefault(container, {})
            if "image" not in info:
                for item in record["doc"]["properties"]["containers"]:
                    if item["name"] == container:
                        info["image"] = item["properties"].get("image", "")
            change(info)
            self._state.put("resources", key, record)
            return record

    def _on_exit(self, key: str, container: str, pid: int, code: int, stopping: bool) -> None:
        now = _stamp(self._state.now())
        current_pid: list[int | None] = []

        def finished(info: JsonDict) -> None:
            current_pid.append(info.get("pid", pid))
            if info.get("pid", pid) != pid:
                return  # a newer process of this container already runs (restart, update)
            current = info.get("currentState") or {}
            info["currentState"] = {
                "state": "Terminated",
                "startTime": current.get("startTime", now),
                "exitCode": code,
                "finishTime": now,
                "detailStatus": "Completed" if code == 0 else "Error",
            }
            info.pop("pid", None)
            if code != 0 and not stopping:
                info.setdefault("events", []).append(
                    _event(
                        "Killing" if code >= 128 else "BackOff", f"Container exited with code {code}", now, "Warning"
                    )
                )

        record = self._update(key, container, finished)
        _log.info("container %s of %s (pid %d) exited with %d", container, key, pid, code)
        if record is None or stopping or current_pid != [pid]:
            return
        policy = record["private"].get("restartPolicy", "Always")
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            info = record["private"]["containers"].get(container, {})
            count = int(info.get("restartCount", 0)) + 1
            delay = min(30.0, 2.0 ** min(count - 1, 5))
            timer = threading.Timer(delay, self._relaunch, args=(key, container, count))
            timer.daemon = True
            timer.start()

    def _relaunch(self, key: str, container: str, count: int) -> None:
        record = self._state.get("resources", key)
        if record is None or record["private"].get("stopped") or key not in self._secure:
            return
        info = record["private"]["containers"].get(container, {})
        if info.get("currentState", {}).get("state") != "Terminated" or not info.get("argv"):
            return
        self._launch(key, container, info["argv"], restart_count=count)

    def _recover(self) -> None:
        """After a restart: containers recorded Running have no process any more."""
        for key, record in self._state.items("resources"):
            if "/providers/microsoft.containerinstance/containergroups/" not in key:
                continue
            for name, info in record["private"].get("containers", {}).items():
                if (info.get("currentState") or {}).get("state") == "Running":
                    self._on_exit(key, name, int(info.get("pid") or 0), 137, True)

    # -- actions -------------------------------------------------------------------------------

    def _delete(self, ctx: Context) -> Response:
        ctx.require_resource_group()
        record = self._state.get("resources", self._id(ctx))
        if record is None:
            return Response(status=204)
        key = self._id(ctx).lower()
        self.runtime.stop(key)
        final = self._view(self._state.get("resources", key) or record)
        self._state.delete("resources", key)
        self._secure.pop(key, None)
        shutil.rmtree(self._folder_of(key), ignore_errors=True)
        return json_response(final, 200)

    def _relaunch_all(self, ctx: Context, record: JsonDict) -> None:
        key = record["doc"]["id"].lower()
        if key not in self._secure:
            raise ArmError(
                409,
                "ContainerGroupStateConflict",
                "The simulator was restarted since this group was created and no longer holds its environment "
                "(secure values are kept in memory only); delete and recreate the group.",
            )
        self.runtime.stop(key)
        with self._state.lock:
            fresh = self._state.get("resources", key) or record
            fresh["private"]["stopped"] = False
            self._state.put("resources", key, fresh)
        for name, info in fresh["private"]["containers"].items():
            if info.get("argv"):
                self._launch(key, name, info["argv"], restart_count=int(info.get("restartCount", 0)))

    def _op_headers(self, ctx: Context, record: JsonDict) -> dict[str, str]:
        doc = record["doc"]
        # The operation reports the group's container events so far, the relaunch's included (as recorded).
        current = self._state.get("resources", doc["id"].lower()) or record
        events = [event for info in current["private"]["containers"].values() for event in info.get("events", [])]
        urls = ctx.operations.start(
            ctx,
            namespace=NAMESPACE,
            collection="operations",
            location=location_key(doc["location"]),
            with_p=False,
            status_body={"id": doc["id"], "startTime": ctx.state.now().isoformat(), "properties": {"events": events}},
        )
        return lro_headers(ctx, urls, location=False)

    def _restart(self, ctx: Context) -> Response:
        record = self._record(ctx)
        self._relaunch_all(ctx, record)
        return json_response(None, 204, self._op_headers(ctx, record))

    def _start_group(self, ctx: Context) -> Response:
        record = self._record(ctx)
        self._relaunch_all(ctx, record)
        return json_response(None, 202, self._op_headers(ctx, record))

    def _stop(self, ctx: Context) -> Response:
        record = self._record(ctx)
        key = record["doc"]["id"].lower()
        with self._state.lock:
            record["private"]["stopped"] = True
            self._state.put("resources", key, record)
        self.runtime.stop(key)
        return Response(status=204)

    def _logs(self, ctx: Context) -> Response:
        record = self._record(ctx)
        name = ctx.params["container"]
        if not any(c["name"] == name for c in record["doc"]["properties"]["containers"]):
            raise ArmError(404, "ContainerNotFound", f"The container '{name}' was not found in the container group.")
        path = self._folder_of(record["doc"]["id"]) / f"{name}.log"
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(0, size - LOG_LIMIT))
                text = handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        tail = ctx.request.args.get("tail")
        if tail and tail.isdigit():
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) else ""
        return json_response({"content": text})

    def _exec(self, ctx: Context) -> Response:
        self._record(ctx)
        return json_response(
            {"webSocketUri": "wss://127.0.0.1/exec/not-simulated", "password": secrets.token_urlsafe(24)}
        )

    # -- admin API: /_bulwark/aci/... ----------------------------------------------------------

    def admin_routes(self) -> dict[tuple[str, str], Callable[[Request], Response]]:
        return {
            ("GET", "/aci/images"): lambda r: json_response({"images": self.images()}),
            ("PUT", "/aci/images"): self._put_images,
            ("DELETE", "/aci/images"): self._reset_images,
            ("POST", "/aci/kill"): self._kill,
            ("GET", "/aci/processes"): lambda r: json_response({"processes": self.runtime.all_running()}),
        }

    def _put_images(self, request: Request) -> Response:
        images = admin_body(request).get("images")
        if not isinstance(images, dict) or not all(
            isinstance(v, list) and v and all(isinstance(p, str) for p in v) for v in images.values()
        ):
            raise AdminError(400, 'give {"images": {"<fnmatch pattern>": ["argv", ...]}}')
        self._state.put("settings", "aci", {"images": images})
        return json_response({"images": images})

    def _reset_images(self, request: Request) -> Response:
        self._state.put("settings", "aci", {})
        return json_response({"images": self.images()})

    def _kill(self, request: Request) -> Response:
        group = request.args.get("group", "")
        if self._state.get("resources", group) is None:
            raise AdminError(404, f"no container group {group!r} (give its resource id)")
        name = request.args.get("signal", "KILL").upper().removeprefix("SIG")
        try:
            sig = signal.Signals[f"SIG{name}"]
        except KeyError as error:
            raise AdminError(400, f"unknown signal {name!r}") from error
        pids = self.runtime.kill(group.lower(), request.args.get("container"), sig)
        if not pids:
            raise AdminError(409, f"no running container in {group}")
        return json_response({"signalled": pids, "signal": sig.name})


# -- documents -----------------------------------------------------------------------------------


def _group_doc(
    group_id: str, name: str, location: str, body: JsonDict, containers: list[JsonDict], ctx: Context
) -> JsonDict:
    props = body.get("properties") or {}
    properties: JsonDict = {
        "sku": props.get("sku", "Standard"),
        "provisioningState": "Succeeded",
        "containers": containers,
        "initContainers": props.get("initContainers", []),
        "restartPolicy": props.get("restartPolicy", "Always"),
        "osType": props["osType"],
    }
    for optional in ("volumes", "ipAddress", "subnetIds", "imageRegistryCredentials", "priority"):
        if props.get(optional) is not None:
            properties[optional] = props[optional]
    diagnostics = props.get("diagnostics")
    if isinstance(diagnostics, dict):
        analytics = {k: v for k, v in (diagnostics.get("logAnalytics") or {}).items() if k != "workspaceKey"}
        properties["diagnostics"] = {**diagnostics, "logAnalytics": analytics} if analytics else diagnostics
    doc: JsonDict = {"properties": properties}
    identity = body.get("identity")
    if isinstance(identity, dict) and identity.get("type"):
        doc["identity"] = {
            "principalId": str(uuid.UUID(hashlib.sha1(group_id.lower().encode()).hexdigest()[:32])),
            "tenantId": "00000000-0000-0000-0000-000000000000",
            **identity,
        }
    doc.update({"id": group_id, "name": name, "type": GROUP_TYPE, "location": location})
    if body.get("tags"):
        doc["tags"] = body["tags"]
    return doc


def _event(name: str, message: str, when: str, kind: str = "Normal") -> JsonDict:
    return {"count": 1, "firstTimestamp": when, "lastTimestamp": when, "name": name, "message": message, "type": kind}


def _start_events(now: dt.datetime, images: list[str]) -> list[JsonDict]:
    when = _stamp(now)
    events = []
    for image in images:
        events.append(_event("Pulling", f'pulling image "{image}"', when))
        events.append(_event("Pulled", f'Successfully pulled image "{image}"', when))
        events.append(_event("Created", "Created container", when))
        events.append(_event("Started", "Started container", when))
    return events


def _container_view(info: JsonDict) -> JsonDict:
    view: JsonDict = {
        "restartCount": int(info.get("restartCount", 0)),
        "currentState": info.get("currentState") or {"state": "Waiting", "detailStatus": info.get("detailStatus", "")},
        "events": info.get("events", []),
    }
    if info.get("previousState"):
        view["previousState"] = info["previousState"]
    return view


def _group_state(private: JsonDict) -> str:
    if private.get("stopped"):
        return "Stopped"
    states = [(info.get("currentState") or {}) for info in private.get("containers", {}).values()]
    if not states or any(s.get("state") in (None, "Waiting") for s in states):
        return "Pending"
    if any(s["state"] == "Running" for s in states):
        return "Running"
    return "Succeeded" if all(s.get("exitCode") == 0 for s in states) else "Failed"
