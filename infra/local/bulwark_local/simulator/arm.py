"""Azure Resource Manager machinery shared by every simulated provider.

- ``ArmError``: an error in Azure's shape, ``{"error": {"code", "message"}}``.
- ``Route``/``route``: a provider declares a route table of (method, path template, handler);
  templates match case-insensitively, as ARM does.
- ``Context``: what a handler gets (request, base URL, state, clock, operations).
- ``Operations``: long-running operations. A handler starts one and gets the polling URLs
  (``Azure-AsyncOperation`` and ``Location``); the generic poll route answers InProgress for the
  configured number of polls, then the final status (with ``properties.output`` when the operation
  has an output), and the ``monitor=true`` Location answers the final result body.
- ``resource group`` routes (PUT/GET/list/DELETE), the one piece of Microsoft.Resources we need.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from .state import JsonDict, StateStore

API_VERSION_FALLBACK = "2026-03-02"


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str, *, target: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target

    def response(self) -> Response:
        error: JsonDict = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return json_response({"error": error}, self.status)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    payload = b"" if body is None else json.dumps(body).encode()
    response = Response(payload, status=status, headers=headers or {})
    response.content_type = "application/json; charset=utf-8"
    return response


def not_found(kind: str, name: str, resource_group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{kind}/{name}' under resource group '{resource_group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def iso(moment: Any) -> str:
    text: str = moment.isoformat()
    return text


@dataclass
class Context:
    request: Request
    state: StateStore
    operations: Operations
    params: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.request.host_url.rstrip("/")

    @property
    def api_version(self) -> str:
        return self.request.args.get("api-version", API_VERSION_FALLBACK)

    def now(self) -> str:
        return iso(self.state.now())

    def json(self) -> JsonDict:
        raw = self.request.get_data()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ArmError(400, "InvalidRequestContent", f"The request content was invalid: {exc}") from exc
        if not isinstance(body, dict):
            raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
        return body

    def subscription(self) -> str:
        return self.params["subscription"]

    def resource_group_id(self) -> str:
        return f"/subscriptions/{self.params['subscription']}/resourceGroups/{self.params['resource_group']}"

    def require_resource_group(self) -> JsonDict:
        group = self.state.get("resources", self.resource_group_id())
        if group is None:
            name = self.params["resource_group"]
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
        doc: JsonDict = group["doc"]
        return doc

    def list_response(self, items: list[JsonDict]) -> Response:
        """A ``{"value": [...], "nextLink"}`` page; nextLink carries api-version (the SDK reuses it as is)."""
        size = max(1, int(self.state.settings()["list_page_size"]))
        skip = int(self.request.args.get("$skiptoken", "0") or 0)
        body: JsonDict = {"value": items[skip : skip + size]}
        if skip + size < len(items):
            body["nextLink"] = (
                f"{self.base_url}{self.request.path}?api-version={self.api_version}&$skiptoken={skip + size}"
            )
        return json_response(body)

    def retry_after_headers(self) -> dict[str, str]:
        seconds = int(self.state.settings()["lro_retry_after"])
        return {"Retry-After": str(seconds)} if seconds > 0 else {}


Handler = Callable[[Context], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, template: str, handler: Handler) -> Route:
    """``/subscriptions/{subscription}/resourceGroups/{resource_group}/...`` -> a case-insensitive route."""
    regex = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", template)
    return Route(method, re.compile(f"^{regex}/?$", re.IGNORECASE), handler)


def match(routes: Iterable[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for candidate in routes:
        if candidate.method != method:
            continue
        found = candidate.pattern.match(path)
        if found:
            return candidate, found.groupdict()
    return None


@dataclass(frozen=True)
class PollUrls:
    async_operation: str
    location: str


class Operations:
    """Long-running operations, persisted with the state so a restart keeps them pollable."""

    def __init__(self, state: StateStore) -> None:
        self._state = state

    def start(
        self,
        ctx: Context,
        *,
        namespace: str,
        collection: str,
        location: str,
        output: Any = None,
        monitor: Any = None,
        with_p: bool = True,
        scope: str | None = None,
        location_collection: str | None = None,
        status_body: JsonDict | None = None,
        error: JsonDict | None = None,
        complete_at: dt.datetime | None = None,
        op_id: str | None = None,
    ) -> PollUrls:
        """Record a finished operation (the simulator acts at once) that reports InProgress first.

        Optional shapes for providers whose recordings differ from compute's:
        ``scope`` puts the polling URLs under a resource group (Microsoft.Sql does);
        ``location_collection`` gives the Location URL its own collection (``...OperationResults``)
        that answers like ``monitor=true``; ``status_body`` replaces the generic status body (its keys
        plus ``status``); ``error`` makes the final status ``Failed`` with that error; ``complete_at``
        keeps the operation InProgress until the simulated clock reaches it (long exports, timeouts);
        ``op_id`` fixes the operation id (SQL import/export use it as the request id).
        """
        op_id = op_id or str(uuid.uuid4())
        polls = int(self._state.settings()["lro_in_progress_polls"])
        self._state.put(
            "operations",
            op_id,
            {
                "id": op_id,
                "status": "Failed" if error else "Succeeded",
                "startTime": ctx.now(),
                "endTime": ctx.now(),
                "output": output,
                "monitor": monitor,
                "pollsInProgress": polls,
                "statusBody": status_body,
                "error": error,
                "completeAt": complete_at.isoformat() if complete_at else None,
                "monitorCollection": location_collection,
            },
        )
        self._prune()
        base = f"{ctx.base_url}{scope or ''}"
        base += f"/subscriptions/{ctx.subscription()}" if scope is None else ""
        base += f"/providers/{namespace}/locations/{location}"
        query = f"p={uuid.uuid4()}&" if with_p else ""
        url = f"{base}/{collection}/{op_id}"
        if location_collection:
            location_url = f"{base}/{location_collection}/{op_id}?{query}api-version={ctx.api_version}"
        else:
            location_url = f"{url}?{query}monitor=true&api-version={ctx.api_version}"
        return PollUrls(async_operation=f"{url}?{query}api-version={ctx.api_version}", location=location_url)

    def poll(self, ctx: Context, op_id: str, *, status_only: bool = False) -> Response:
        with self._state.lock:
            record = self._state.get("operations", op_id)
            if record is None:
                raise ArmError(404, "NotFound", f"Operation {op_id} was not found.")
            monitor = ctx.request.args.get("monitor", "").lower() == "true"
            monitor_collection = record.get("monitorCollection")
            if monitor_collection and ctx.params.get("collection", "").lower() == monitor_collection.lower():
                monitor = True
            # One counter for both URLs: the operation stays in progress for that many polls of either.
            in_progress = record["pollsInProgress"] > 0
            if in_progress:
                record["pollsInProgress"] -= 1
                self._state.put("operations", op_id, record)
            complete_at = record.get("completeAt")
            if complete_at and self._state.now() < dt.datetime.fromisoformat(complete_at):
                in_progress = True
        if monitor:
            if in_progress:
                return json_response(None, 202, {"Location": ctx.request.url, **ctx.retry_after_headers()})
            if record.get("error"):
                return json_response({"error": record["error"]}, 400)
            return json_response(record["monitor"], 200)
        if status_only:
            return json_response({"status": "InProgress" if in_progress else record["status"]})
        if record.get("statusBody") is not None:
            shaped: JsonDict = dict(record["statusBody"])
            shaped["status"] = "InProgress" if in_progress else record["status"]
            if not in_progress and record.get("error"):
                shaped["error"] = record["error"]
            return json_response(shaped)
        body: JsonDict = {"startTime": record["startTime"]}
        if in_progress:
            body["status"] = "InProgress"
        else:
            body["endTime"] = record["endTime"]
            body["status"] = record["status"]
            if record["output"] is not None:
                body["properties"] = {"output": record["output"]}
            if record.get("error"):
                body["error"] = record["error"]
        body["name"] = op_id
        return json_response(body)

    def _prune(self, keep: int = 2000) -> None:
        items = self._state.items("operations")
        if len(items) > keep:
            for key, _ in sorted(items, key=lambda kv: kv[1]["startTime"])[: len(items) - keep]:
                self._state.delete("operations", key)


def lro_headers(ctx: Context, urls: PollUrls, *, location: bool = True) -> dict[str, str]:
    headers = {"Azure-AsyncOperation": urls.async_operation, **ctx.retry_after_headers()}
    if location:
        headers["Location"] = urls.location
    return headers


# -- Microsoft.Resources: resource groups -------------------------------------------------------


def _group_id(ctx: Context) -> str:
    return ctx.resource_group_id()


def _put_group(ctx: Context) -> Response:
    body = ctx.json()
    if not body.get("location"):
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    existing = ctx.state.get("resources", _group_id(ctx))
    doc: JsonDict = {
        "id": _group_id(ctx),
        "name": ctx.params["resource_group"],
        "type": "Microsoft.Resources/resourceGroups",
        "location": body["location"],
        "tags": body.get("tags", {}),
        "properties": {"provisioningState": "Succeeded"},
    }
    ctx.state.put("resources", _group_id(ctx), {"doc": doc, "private": {}})
    return json_response(doc, 200 if existing else 201)


def _get_group(ctx: Context) -> Response:
    return json_response(ctx.require_resource_group())


def _list_groups(ctx: Context) -> Response:
    prefix = f"/subscriptions/{ctx.subscription()}/resourcegroups/"
    groups = [
        record["doc"]
        for key, record in ctx.state.items("resources")
        if key.startswith(prefix) and "/" not in key[len(prefix) :]
    ]
    return ctx.list_response(groups)


def resource_group_routes() -> list[Route]:
    group = "/subscriptions/{subscription}/resourcegroups/{resource_group}"
    return [
        route("PUT", group, _put_group),
        route("GET", group, _get_group),
        route("GET", "/subscriptions/{subscription}/resourcegroups", _list_groups),
    ]
