"""Browse restore points and start SQL restores over HTTP (function key; JSON unless a file is asked for).

    GET  /api/points/{point_id}/contents                 200 the catalog point and what it holds: a BACPAC's
                                                         tables with row counts, or each disk's partitions
    GET  /api/points/{point_id}/files?path=&disk=        200 a folder's entries (or the file itself) of an
                                                         image point; path [pN:]/path, disk "os" or a LUN
    GET  /api/points/{point_id}/files/download?path=&disk=
                                                         200 the file as application/octet-stream, whole up
                                                         to 64 MiB; larger ones in parts: Range: bytes=a-b
                                                         (206, at most 64 MiB each; Accept-Ranges: bytes)
    POST /api/restores/sql                               202 {id, status, ...Durable management links}:
                                                         the SQL restore orchestration started; 400 with
                                                         field-level problems, 404 an unknown point

The restore request is validated (point, server, name) before anything starts, by the same use case
the orchestration runs first. Errors are ``{"error": {code, message, hint, problems}}``.
"""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import replace

import azure.durable_functions as df
import azure.functions as func

from functions import names
from functions.triggers.answers import respond, serve
from shared.config import Settings
from shared.core.clock import SystemClock
from shared.core.errors import BulwarkError, ConfigError, FieldProblem, InvalidDocumentError
from shared.services.api import Answer, error_answer, read_json
from shared.services.browse import read_range
from shared.services.job_spec import RepositoryRef, SecretRef
from shared.services.request_secrets import RequestSecrets
from shared.services.sql_restore import SqlRestoreRequest
from shared.telemetry.spans import span
from shared.wiring import services, sql_restore_services

bp = df.Blueprint()

MAX_PART = 64 << 20
"""The most one download answer carries: a whole file up to this size, else one Range part."""
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_SUBJECT = "the SQL restore request"
_EXAMPLE = '{"point": "<point id>", "server": "<server resource id>", "name": "sales-restored"}'
_FIELDS = {"point", "server", "name", "swap_with_original", "confirm", "repository", "login", "original"}


@bp.route(route="points/{point_id}/contents", methods=["GET"])
async def point_contents(req: func.HttpRequest) -> func.HttpResponse:
    point_id = req.route_params.get("point_id", "")
    return await serve(lambda: Answer(200, sql_restore_services().browse.contents(point_id)))


@bp.route(route="points/{point_id}/files", methods=["GET"])
async def point_files(req: func.HttpRequest) -> func.HttpResponse:
    point_id = req.route_params.get("point_id", "")

    def listing() -> Answer:
        params = _params(req, ("path", "disk"))
        browse = sql_restore_services().browse
        return Answer(200, browse.list_folder(point_id, params.get("path", ""), params.get("disk")))

    return await serve(listing)


@bp.route(route="points/{point_id}/files/download", methods=["GET"])
async def point_file_download(req: func.HttpRequest) -> func.HttpResponse:
    point_id = req.route_params.get("point_id", "")
    wanted = req.headers.get("Range")

    def download() -> func.HttpResponse:
        params = _params(req, ("path", "disk"))
        with sql_restore_services().browse.open_file(point_id, params.get("path", ""), params.get("disk")) as opened:
            size = opened.entry.size
            headers = {
                "Accept-Ranges": "bytes",
                "Content-Disposition": f'attachment; filename="{_ascii(opened.entry.name)}"',
            }
            if wanted is None:
                if size > MAX_PART:
                    raise InvalidDocumentError(
                        "the download request",
                        [
                            FieldProblem(
                                "Range",
                                f"is needed: the file is {size} bytes, over the {MAX_PART} a single answer holds",
                                f"ask for parts with 'Range: bytes=0-{MAX_PART - 1}' and so on, or run "
                                "`bulwark restore files POINT PATH --out DIR`",
                            )
                        ],
                    )
                body = read_range(opened.stream, 0, size)
                return func.HttpResponse(body, status_code=200, headers=headers, mimetype="application/octet-stream")
            first, last = _byte_range(wanted, size)
            body = read_range(opened.stream, first, last - first + 1)
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            return func.HttpResponse(body, status_code=206, headers=headers, mimetype="application/octet-stream")

    try:
        return await asyncio.to_thread(download)
    except _Unsatisfiable as unsatisfiable:
        return func.HttpResponse(status_code=416, headers={"Content-Range": f"bytes */{unsatisfiable.size}"})
    except BulwarkError as exc:
        return respond(error_answer(exc))


@bp.route(route="restores/sql", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_sql_restore(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    now = SystemClock().now()
    instance_id = f"sql-restore-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"

    def validated() -> SqlRestoreRequest:
        body = read_json(req.get_body(), req.headers.get("Content-Type"), what=_SUBJECT, example=_EXAMPLE)
        references = request_secrets(services().settings)
        request = parse_restore_request(body, restore_id=instance_id, stamp=f"{now:%Y%m%d%H%M%S}", secrets=references)
        sql_restore_services().validate.run(request)  # a 4xx now, before anything starts
        return request

    try:
        request = await asyncio.to_thread(validated)
    except BulwarkError as exc:
        return respond(error_answer(exc))
    attributes = {"bulwark.restore": instance_id, "bulwark.server": request.server_id, "http.route": "restores/sql"}
    with span("POST /api/restores/sql", kind="server", attributes=attributes) as trigger:
        request = replace(request, traceparent=trigger.traceparent)
        await client.start_new(names.SQL_RESTORE, instance_id, request.to_dict())
    links = dict(client.create_http_management_payload(instance_id))
    base = req.url.split("/api/", 1)[0]
    status = f"{base}/api/restores/{instance_id}"
    body = {"id": instance_id, "status": status, **{k: v for k, v in links.items() if k != "id"}}
    return func.HttpResponse(
        json.dumps(body), status_code=202, headers={"Location": status}, mimetype="application/json"
    )


def request_secrets(settings: Settings) -> RequestSecrets:
    """What a caller may name as a secret here: the app's vault; files only on the local stack."""
    return RequestSecrets(settings.key_vault, files=settings.is_local)


def parse_restore_request(body: object, *, restore_id: str, stamp: str, secrets: RequestSecrets) -> SqlRestoreRequest:
    """The request a POST body asks for; InvalidDocumentError naming every field that is wrong.
    ``secrets`` decides which secret references the caller may name."""
    if not isinstance(body, Mapping):
        raise InvalidDocumentError(_SUBJECT, [FieldProblem("", "is not a JSON object", f"send {_EXAMPLE}")])
    problems = [
        FieldProblem(str(k), "is not a field of this request", f"use only {', '.join(sorted(_FIELDS))}")
        for k in body
        if k not in _FIELDS
    ]
    texts: dict[str, str | None] = {}
    for name, required in (("point", True), ("server", True), ("name", True), ("original", False)):
        value = body.get(name)
        if value is None and not required:
            texts[name] = None
        elif not isinstance(value, str) or not value.strip():
            fix = "give the point's id (GET /api/points?resource=...)" if name == "point" else f"see {_EXAMPLE}"
            problems.append(FieldProblem(name, "is missing" if value is None else "must be a non-empty string", fix))
        else:
            texts[name] = value.strip()
    flags: dict[str, bool] = {}
    for name in ("swap_with_original", "confirm"):
        value = body.get(name, False)
        if not isinstance(value, bool):
            problems.append(FieldProblem(name, "must be true or false", f'send "{name}": true, or leave it out'))
        flags[name] = value is True
    repository: RepositoryRef | None = None
    login: SecretRef | None = None
    try:
        if body.get("repository") is not None:
            raw = body["repository"]
            if not isinstance(raw, Mapping):
                raise ConfigError("must be an object")
            repository = RepositoryRef(str(raw.get("location") or ""), secrets.parse(raw.get("passphrase")))
            if not repository.location:
                raise ConfigError("needs 'location'")
    except ConfigError as exc:
        problems.append(
            FieldProblem(
                "repository",
                str(exc),
                'send {"location": "...", "passphrase": {"key_vault_secret": "name"}} (a reference; '
                '{"file": "/path"} on the local stack)',
            )
        )
    try:
        if body.get("login") is not None:
            login = secrets.parse(body["login"])
    except ConfigError as exc:
        problems.append(
            FieldProblem(
                "login",
                str(exc),
                'send a reference: {"key_vault_secret": "name"} ({"file": "/path"} on the local stack)',
            )
        )
    if problems:
        raise InvalidDocumentError(_SUBJECT, problems)
    return SqlRestoreRequest(
        restore_id=restore_id,
        server_id=str(texts["server"]),
        name=str(texts["name"]),
        stamp=stamp,
        point_id=texts["point"],
        repository=repository,
        login=login,
        original_id=texts.get("original"),
        swap_with_original=flags["swap_with_original"],
        confirm=flags["confirm"],
    )


class _Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """First and last byte of a single ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range, at most MAX_PART."""
    found = _RANGE.match(header.strip())
    if not found or found.group(1) == found.group(2) == "":
        raise InvalidDocumentError(
            "the download request",
            [FieldProblem("Range", f"'{header}' is not a single byte range", "send e.g. 'Range: bytes=0-1048575'")],
        )
    start, end = found.groups()
    if start == "":
        first, last = max(0, size - int(end)), size - 1
    else:
        first, last = int(start), min(int(end) if end else size - 1, size - 1)
    if first >= size or last < first:
        raise _Unsatisfiable(size)
    return first, min(last, first + MAX_PART - 1)


def _ascii(name: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)


def _params(req: func.HttpRequest, allowed: tuple[str, ...]) -> dict[str, str]:
    given = {k: v for k, v in req.params.items() if k != "code"}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InvalidDocumentError(
            "the browse request",
            [FieldProblem(k, "is not a parameter of this request", f"use only {', '.join(allowed)}") for k in unknown],
        )
    return given
