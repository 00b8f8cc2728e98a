"""The Durable extension's HTTP management API, and the client binding JSON that points at it.

The real ``DurableOrchestrationClient`` of azure-functions-durable talks to the host over HTTP: it
is constructed from the binding JSON the extension passes to client functions and POSTs/GETs to
``rpcBaseUrl``. Serving the same routes with the same status codes and bodies as the extension's
``HttpApiHandler`` lets the unmodified client run here:

    POST   orchestrators/{functionName}[/{instanceId}]      start (202 + management URLs)
    GET    instances/[?runtimeStatus=&createdTimeFrom=&createdTimeTo=&instanceIdPrefix=&top=]
    GET    instances/{id}[?showHistory=&showHistoryOutput=&showInput=]   202 / 200 / 404
    DELETE instances/{id}                                    purge (200 / 404 / 412)
    POST   instances/{id}/terminate?reason=                  202 / 404 / 410
    POST   instances/{id}/raiseEvent/{eventName}             202 / 400 / 404 / 410

The same routes serve the public webhook URLs (``/runtime/webhooks/durabletask/...``) that
``create_check_status_response`` hands out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from .engine import DurableEngine
from .errors import InstanceExistsError, InstanceGoneError, InstanceNotFoundError, UnknownFunctionError
from .history import EventType, HistoryEvent, format_status_time, parse_timestamp
from .invoker import HttpReply
from .store import TERMINAL_STATUSES, InstanceQuery, InstanceRecord, RuntimeStatus

__all__ = ["INSTANCE_ID_PLACEHOLDER", "ManagementApi", "ManagementUrls"]

INSTANCE_ID_PLACEHOLDER = "INSTANCEID"
_ACTIVE = frozenset({RuntimeStatus.PENDING, RuntimeStatus.RUNNING, RuntimeStatus.CONTINUED_AS_NEW})


@dataclass(frozen=True)
class ManagementUrls:
    """Where the management API is reachable, and the query string every public URL carries."""

    public_base: str
    """e.g. ``http://127.0.0.1:7071/runtime/webhooks/durabletask``"""
    rpc_base: str
    """e.g. ``http://127.0.0.1:41234/durabletask/`` (loopback, no key: the worker's side door)"""
    hub_name: str
    key: str | None = None

    @property
    def query(self) -> str:
        suffix = f"taskHub={quote(self.hub_name)}&connection=Storage"
        return suffix + (f"&code={quote(self.key)}" if self.key else "")

    def instance_links(self, instance_id: str) -> dict[str, str]:
        prefix = f"{self.public_base}/instances/{quote(instance_id, safe='')}"
        query = self.query
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{prefix}?{query}",
            "sendEventPostUri": f"{prefix}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{prefix}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{prefix}/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{prefix}?{query}",
            "restartPostUri": f"{prefix}/restart?{query}",
            "suspendPostUri": f"{prefix}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{prefix}/resume?reason={{text}}&{query}",
        }

    def client_binding(self) -> str:
        """The JSON the extension binds to a ``durableClient`` parameter."""
        creation = f"{self.public_base}/orchestrators/{{functionName}}[/{{instanceId}}]"
        return json.dumps(
            {
                "taskHubName": self.hub_name,
                "creationUrls": {
                    "createNewInstancePostUri": f"{creation}?{self.query}",
                    "createAndWaitOnNewInstancePostUri": (
                        f"{creation}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{self.query}"
                    ),
                },
                "managementUrls": self.instance_links(INSTANCE_ID_PLACEHOLDER),
                "baseUrl": self.public_base,
                "requiredQueryStringParameters": self.query,
                "rpcBaseUrl": self.rpc_base,
                "httpBaseUrl": "",
                "maxGrpcMessageSizeInBytes": 0,
                "grpcHttpClientTimeout": "00:01:40",
            }
        )


class ManagementApi:
    """Answers management requests; ``path`` is relative to the API base (no leading slash)."""

    def __init__(self, engine: DurableEngine, urls: ManagementUrls) -> None:
        self._engine = engine
        self._urls = urls

    def handle(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> HttpReply:
        parts = [unquote(part) for part in path.strip("/").split("/")] if path.strip("/") else []
        try:
            if parts[:1] == ["orchestrators"] and 2 <= len(parts) <= 3:
                if method != "POST":
                    return _json(404, None)
                return self._start(parts[1], parts[2] if len(parts) == 3 else None, body)
            if parts[:1] == ["instances"]:
                return self._instances(method, parts[1:], query, headers, body)
        except ValueError as exc:
            return _error(400, f"Invalid request: {exc}")
        return _json(404, None)

    def _start(self, function_name: str, instance_id: str | None, body: bytes) -> HttpReply:
        text = body.decode("utf-8") if body else None
        if text is not None and text.strip():
            try:
                json.loads(text)
            except ValueError:
                return _error(400, "Invalid JSON content")
        else:
            text = None
        try:
            instance_id = self._engine.start_new(function_name, input_json=text, instance_id=instance_id)
        except UnknownFunctionError as exc:
            return _error(400, exc.message)
        except InstanceExistsError as exc:
            return _error(409, exc.message)
        return self._check_status(instance_id)

    def _check_status(self, instance_id: str) -> HttpReply:
        links = self._urls.instance_links(instance_id)
        payload = {key: value for key, value in links.items() if key != "rewindPostUri"}
        reply = _json(202, payload)
        reply.headers.extend([("Location", links["statusQueryGetUri"]), ("Retry-After", "10")])
        return reply

    def _instances(
        self,
        method: str,
        parts: list[str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> HttpReply:
        if not parts or parts == [""]:
            if method == "GET":
                return self._list(query)
            return _json(404, None)
        instance_id = parts[0]
        if len(parts) == 1:
            if method == "GET":
                return self._status(instance_id, query)
            if method == "DELETE":
                return self._purge(instance_id)
            return _json(404, None)
        if method != "POST":
            return _json(404, None)
        operation = parts[1].lower()
        if operation == "terminate" and len(parts) == 2:
            try:
                self._engine.terminate(instance_id, query.get("reason"))
            except InstanceNotFoundError:
                return _json(404, None)
            except InstanceGoneError:
                return _json(410, None)
            return _json(202, None)
        if operation == "raiseevent" and len(parts) == 3:
            return self._raise_event(instance_id, parts[2], headers, body)
        if operation in {"rewind", "restart", "suspend", "resume"}:
            return _error(501, f"The local runtime does not implement '{operation}'.")
        return _json(404, None)

    def _raise_event(self, instance_id: str, event_name: str, headers: Mapping[str, str], body: bytes) -> HttpReply:
        record = self._engine.get_instance(instance_id)
        if record is None:
            return _json(404, None)
        if record.status in TERMINAL_STATUSES:
            return _json(410, None)
        content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            return _error(400, "Only application/json request content is supported")
        text = body.decode("utf-8")
        try:
            # The extension parses the body into a JToken and serialises it again.
            data = json.dumps(json.loads(text)) if text.strip() else None
        except ValueError:
            return _error(400, "Invalid JSON content")
        try:
            self._engine.raise_event(instance_id, event_name, data)
        except InstanceGoneError:
            return _json(410, None)
        return _json(202, None)

    def _status(self, instance_id: str, query: Mapping[str, str]) -> HttpReply:
        record = self._engine.get_instance(instance_id)
        if record is None:
            return _json(404, None)
        history = self._engine.history(instance_id) if _flag(query, "showHistory") else None
        payload = status_payload(
            record,
            show_input=_flag(query, "showInput", default=True),
            history=history,
            show_history_output=_flag(query, "showHistoryOutput"),
        )
        if record.status in _ACTIVE:
            reply = _json(202, payload)
            reply.headers.extend([("Location", self._urls.instance_links(instance_id)["statusQueryGetUri"])])
            reply.headers.append(("Retry-After", "5"))
            return reply
        failed = record.status == RuntimeStatus.FAILED
        return _json(500 if failed and _flag(query, "returnInternalServerErrorOnFailure") else 200, payload)

    def _list(self, query: Mapping[str, str]) -> HttpReply:
        statuses = frozenset(
            RuntimeStatus(value)
            for value in query.get("runtimeStatus", "").split(",")
            if value in RuntimeStatus._value2member_map_
        )
        instance_query = InstanceQuery(
            created_from=_datetime(query.get("createdTimeFrom")),
            created_to=_datetime(query.get("createdTimeTo")),
            statuses=statuses,
            instance_id_prefix=query.get("instanceIdPrefix") or None,
            top=int(query["top"]) if query.get("top", "").isdigit() else None,
        )
        show_input = _flag(query, "showInput", default=True)
        records = self._engine.list_instances(instance_query)
        return _json(200, [status_payload(r, show_input=show_input) for r in records])

    def _purge(self, instance_id: str) -> HttpReply:
        record = self._engine.get_instance(instance_id)
        if record is None:
            return _json(404, None)
        if record.status not in TERMINAL_STATUSES:
            return _error(
                412,
                "Only orchestrations in a terminal state can be purged, but the orchestration with "
                f"instance ID {instance_id} has status {record.status.value}",
            )
        self._engine.purge(instance_id)
        return _json(200, {"instancesDeleted": 1})


def status_payload(
    record: InstanceRecord,
    *,
    show_input: bool = True,
    history: list[HistoryEvent] | None = None,
    show_history_output: bool = False,
) -> dict[str, Any]:
    """The extension's ``StatusResponsePayload`` for one instance."""
    payload: dict[str, Any] = {
        "name": record.name,
        "instanceId": record.instance_id,
        "runtimeStatus": record.status.value,
        "input": _load(record.input) if show_input else None,
        "customStatus": _load(record.custom_status),
        "output": _load(record.output),
        "createdTime": format_status_time(record.created_time),
        "lastUpdatedTime": format_status_time(record.last_updated_time),
    }
    if history is not None:
        payload["historyEvents"] = public_history(history, show_output=show_history_output)
    return payload


def public_history(history: list[HistoryEvent], *, show_output: bool) -> list[dict[str, Any]]:
    """The status API's history view: one row per step, names joined onto completions."""
    scheduled: dict[int, HistoryEvent] = {}
    rows: list[dict[str, Any]] = []
    for event in history:
        kind = EventType(event["EventType"])
        if kind in (EventType.ORCHESTRATOR_STARTED, EventType.ORCHESTRATOR_COMPLETED):
            continue
        if kind in (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_INSTANCE_CREATED):
            scheduled[int(event["EventId"])] = event
            continue
        row: dict[str, Any] = {"EventType": _pascal(kind), "Timestamp": event["Timestamp"]}
        if kind == EventType.EXECUTION_STARTED:
            row["FunctionName"] = event.get("Name")
            if show_output:
                row["Input"] = _load(event.get("Input"))
        elif kind in (
            EventType.TASK_COMPLETED,
            EventType.TASK_FAILED,
            EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
            EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
        ):
            origin = scheduled.get(int(event.get("TaskScheduledId", -1)), {})
            row["FunctionName"] = origin.get("Name")
            row["ScheduledTime"] = origin.get("Timestamp")
            if origin.get("InstanceId"):
                row["InstanceId"] = origin["InstanceId"]
            if kind in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_INSTANCE_FAILED):
                row["Reason"] = event.get("Reason")
            elif show_output:
                row["Result"] = _load(event.get("Result"))
        elif kind in (EventType.TIMER_CREATED, EventType.TIMER_FIRED):
            row["FireAt"] = event.get("FireAt")
        elif kind == EventType.EVENT_RAISED:
            row["Name"] = event.get("Name")
            if show_output:
                row["Input"] = _load(event.get("Input"))
        elif kind == EventType.EXECUTION_COMPLETED:
            row["OrchestrationStatus"] = _status_name(int(event.get("OrchestrationStatus", 0)))
            if show_output:
                row["Result"] = _load(event.get("Result"))
        elif kind == EventType.EXECUTION_TERMINATED:
            row["Input"] = event.get("Input")
        rows.append(row)
    return rows


def _pascal(kind: EventType) -> str:
    names = {
        EventType.SUB_ORCHESTRATION_INSTANCE_CREATED: "SubOrchestrationInstanceCreated",
        EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED: "SubOrchestrationInstanceCompleted",
        EventType.SUB_ORCHESTRATION_INSTANCE_FAILED: "SubOrchestrationInstanceFailed",
    }
    return names.get(kind) or "".join(word.capitalize() for word in kind.name.split("_"))


def _status_name(value: int) -> str:
    names = ["Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Pending"]
    return names[value] if 0 <= value < len(names) else str(value)


def _load(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _flag(query: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    value = query.get(name)
    return default if value is None else value.strip().lower() == "true"


def _datetime(text: str | None) -> datetime | None:
    if not text:
        return None
    return parse_timestamp(text)


def _json(status: int, body: Any) -> HttpReply:
    data = b"" if body is None else json.dumps(body).encode("utf-8")
    headers = [("Content-Type", "application/json; charset=utf-8")] if body is not None else []
    return HttpReply(status=status, headers=headers, body=data)


def _error(status: int, message: str) -> HttpReply:
    # The Python client reads "ExceptionMessage" from a 400 answer to a start request.
    return _json(status, {"Message": message, "ExceptionMessage": message})
