"""The HTTP API's requests and answers, apart from azure.functions (the triggers stay thin).

Every answer is an :class:`Answer` (status, JSON body, headers). Errors become

    {"error": {"code", "message", "hint", "problems": [{"path", "message", "fix"}]},
     "code", "message", "hint"}

``problems`` names each bad field (a policy field such as ``schedule.daily.times[0]``, a query
parameter such as ``limit``, a header such as ``If-Match``) and how to fix it. The top-level
``code``/``message``/``hint`` repeat ``error`` for clients of the first API version (deprecated).

Statuses: 400 bad input (nothing is stored), 404 unknown ids, 409 a policy id that is taken, 412 a
stale ``If-Match``, 415 a body that is not JSON by its Content-Type, 428 an update without
``If-Match``, 503 storage or Azure unavailable, 500 anything else.

Policies keep their storage ETag: ``GET`` and writes answer it in the ``ETag`` header (and ``list``
in each item); ``PUT`` needs it in ``If-Match`` (``*`` overwrites whatever is stored); ``DELETE``
takes it optionally.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.catalog.model import CATALOG_ID, PointKind, Session, to_dict
from shared.catalog.port import Catalog
from shared.core.clock import parse_time
from shared.core.errors import (
    AzureApiError,
    AzureConflictError,
    AzureResourceNotFoundError,
    BulwarkError,
    ConfigError,
    FieldProblem,
    InvalidDocumentError,
    PointNotFoundError,
    PolicyConflictError,
    PolicyExistsError,
    PolicyNotFoundError,
    PolicyValidationError,
    SessionNotFoundError,
    StorageError,
    UsageError,
)
from shared.policy.document import policy_from_dict, policy_to_dict
from shared.policy.formats import POLICY_ID, RESOURCE_ID
from shared.policy.store import PolicyStore, StoredPolicy

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Answer",
    "PolicyApi",
    "PreconditionRequiredError",
    "SessionApi",
    "UnsupportedMediaTypeError",
    "error_answer",
    "read_json",
    "status_of",
]

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
AUTH_PARAMETER = "code"
"""The Functions host's key parameter (``?code=``): allowed on every request."""
_INVALID_HINT = "fix the fields listed in 'problems' and send the request again"


class UnsupportedMediaTypeError(UsageError):
    code = "unsupported_media_type"


class PreconditionRequiredError(UsageError):
    code = "precondition_required"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None
    """JSON-shaped; ``None`` for no body."""
    headers: dict[str, str] = field(default_factory=dict)

    def text(self) -> str | None:
        return None if self.body is None else json.dumps(self.body)


# -- errors ----------------------------------------------------------------------------------------


def status_of(error: BulwarkError) -> int:
    if isinstance(error, PolicyNotFoundError | SessionNotFoundError | PointNotFoundError | AzureResourceNotFoundError):
        return 404
    if isinstance(error, AzureConflictError):
        return 409
    if isinstance(error, PolicyExistsError):
        return 409
    if isinstance(error, PolicyConflictError):
        return 412
    if isinstance(error, UnsupportedMediaTypeError):
        return 415
    if isinstance(error, PreconditionRequiredError):
        return 428
    if isinstance(error, UsageError):
        return 400
    if isinstance(error, StorageError | AzureApiError):
        return 503
    if isinstance(error, ConfigError):
        return 500
    return 500


def error_answer(error: BulwarkError) -> Answer:
    status = status_of(error)
    problems = [p.to_dict() for p in error.problems] if isinstance(error, InvalidDocumentError) else []
    hint = error.hint or (_INVALID_HINT if problems else _default_hint(status))
    inner = {"code": error.code, "message": error.message, "hint": hint, "problems": problems}
    if status >= 500:
        log.warning("HTTP %d: %s", status, error)
    return Answer(status, {"error": inner, "code": error.code, "message": error.message, "hint": hint})


def _default_hint(status: int) -> str:
    if status == 503:
        return "retry in a moment"
    if status >= 500:
        return "check the app's settings and logs"
    return "see the API description at /api/openapi.json"


def _invalid(subject: str, path: str, message: str, fix: str) -> InvalidDocumentError:
    return InvalidDocumentError(subject, [FieldProblem(path, message, fix)])


# -- bodies and parameters -------------------------------------------------------------------------


def read_json(body: bytes, content_type: str | None, *, what: str, example: str) -> object:
    """The parsed JSON body; 415 when Content-Type says it is something else, 400 when it is not JSON."""
    if content_type:
        media = content_type.split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise UnsupportedMediaTypeError(
                f"the body of {what} is '{media}', not JSON",
                hint=f"send Content-Type: application/json and {example}",
            )
    if not body or not body.strip():
        raise PolicyValidationError(what, [FieldProblem("", "is empty", f"send {example}")])
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise PolicyValidationError(
            what, [FieldProblem("", f"is not valid JSON{where}", f"send {example} (UTF-8 JSON)")]
        ) from None


def _params(params: Mapping[str, str], allowed: Iterable[str], subject: str) -> dict[str, str]:
    known = set(allowed)
    problems = [
        FieldProblem(name, "is not a parameter of this request", f"use only {', '.join(sorted(known))}")
        for name in sorted(params)
        if name not in known and name != AUTH_PARAMETER
    ]
    if problems:
        raise InvalidDocumentError(subject, problems)
    return {name: value for name, value in params.items() if name in known}


def _limit(text: str | None, subject: str) -> int:
    if text is None or text == "":
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise _invalid(subject, "limit", f"'{text}' is not a whole number from 1 to {MAX_LIMIT}", "e.g. limit=20")
    return int(text)


def _time(name: str, text: str | None, subject: str) -> dt.datetime | None:
    if text is None or text == "":
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise _invalid(
            subject,
            name,
            f"'{text}' is not an ISO 8601 time with a time zone",
            f"e.g. {name}=2026-11-01T00:00:00Z (URL-encode '+' as %2B)",
        ) from None


def _policy_id(name: str, text: str, subject: str) -> str:
    problem = POLICY_ID.check(text)
    if problem is not None:
        raise _invalid(subject, name, problem[0], problem[1])
    return text


# -- policies --------------------------------------------------------------------------------------

_POLICY_EXAMPLE = "the policy as one JSON object (see the Policy schema in /api/openapi.json)"


class PolicyApi:
    """Create, read, update, list and delete policies; nothing invalid reaches the store."""

    def __init__(self, store: PolicyStore) -> None:
        self._store = store

    def create(self, body: bytes, content_type: str | None) -> Answer:
        document = read_json(body, content_type, what="the policy", example=_POLICY_EXAMPLE)
        stored = self._store.create(policy_from_dict(document))
        return self._one(201, stored, location=True)

    def update(self, policy_id: str, body: bytes, content_type: str | None, if_match: str | None) -> Answer:
        _policy_id("{policy_id}", policy_id, "the request")
        document = read_json(body, content_type, what=f"policy '{policy_id}'", example=_POLICY_EXAMPLE)
        if isinstance(document, dict):
            document = {"id": policy_id, **document}
            if document["id"] != policy_id:
                raise PolicyValidationError(
                    f"policy '{policy_id}'",
                    [
                        FieldProblem(
                            "id",
                            f"is {json.dumps(document['id'])} but the URL names '{policy_id}'",
                            "send the id of the URL, or leave 'id' out; a policy cannot be renamed",
                        )
                    ],
                )
        policy = policy_from_dict(document)
        if not if_match:
            raise PreconditionRequiredError(
                f"updating policy '{policy_id}' needs an If-Match header",
                hint="GET the policy, then send its ETag header as If-Match (or If-Match: * to overwrite)",
            )
        etag = self._store.get(policy_id).etag if if_match.strip() == "*" else if_match
        return self._one(200, self._store.update(policy, etag=etag))

    def get(self, policy_id: str) -> Answer:
        _policy_id("{policy_id}", policy_id, "the request")
        return self._one(200, self._store.get(policy_id))

    def list_policies(self, params: Mapping[str, str]) -> Answer:
        _params(params, (), "the request")
        items = [{"etag": s.etag, "policy": policy_to_dict(s.policy)} for s in self._store.list()]
        return Answer(200, {"policies": items, "count": len(items)})

    def delete(self, policy_id: str, if_match: str | None) -> Answer:
        _policy_id("{policy_id}", policy_id, "the request")
        etag = None if not if_match or if_match.strip() == "*" else if_match
        self._store.delete(policy_id, etag=etag)
        return Answer(204)

    def ids(self) -> list[str]:
        return [stored.policy.id for stored in self._store.list()]

    def _one(self, status: int, stored: StoredPolicy, *, location: bool = False) -> Answer:
        headers = {"ETag": stored.etag}
        if location:
            headers["Location"] = f"/api/policies/{stored.policy.id}"
        return Answer(status, policy_to_dict(stored.policy), headers)


# -- sessions and restore points -------------------------------------------------------------------


class SessionApi:
    """The catalog's sessions and restore points; ``policy_ids`` lists the policies whose sessions
    ``list`` merges when no policy is named."""

    def __init__(self, catalog: Catalog, policy_ids: Callable[[], Iterable[str]]) -> None:
        self._catalog = catalog
        self._policy_ids = policy_ids

    def list_sessions(self, params: Mapping[str, str]) -> Answer:
        subject = "the session query"
        given = _params(params, ("policy", "since", "until", "limit"), subject)
        policy = given.get("policy") or None
        if policy is not None:
            _policy_id("policy", policy, subject)
        since = _time("since", given.get("since"), subject)
        until = _time("until", given.get("until"), subject)
        limit = _limit(given.get("limit"), subject)
        if since is not None and until is not None and until <= since:
            raise _invalid(subject, "until", "is not after since", "give until later than since, or leave one out")
        sessions = self.sessions(policy, since=since, until=until, limit=limit)
        if policy is not None and not sessions and policy not in set(self._policy_ids()):
            raise PolicyNotFoundError(policy)
        return Answer(200, {"sessions": [to_dict(s) for s in sessions], "count": len(sessions)})

    def sessions(
        self, policy: str | None, *, since: dt.datetime | None, until: dt.datetime | None, limit: int
    ) -> list[Session]:
        """A policy's sessions, or every listed policy's merged; newest first, at most ``limit``."""
        policies = [policy] if policy is not None else sorted(set(self._policy_ids()))
        found: list[Session] = []
        for policy_id in policies:
            found += self._catalog.list_sessions(policy_id, since=since, until=until, limit=limit)
        found.sort(key=lambda s: s.session_id)
        found.sort(key=lambda s: s.started, reverse=True)
        return found[:limit]

    def detail(self, session_id: str, live: Mapping[str, Any] | None) -> Answer:
        """The catalog's record (``catalog``, null while it runs) with the orchestration's live status
        (``runtime_status``, ``custom_status``, ``output``: null once purged)."""
        record: dict[str, Any] | None = None
        if CATALOG_ID.check(session_id) is None:  # other ids only the orchestration can know
            try:
                record = to_dict(self._catalog.get_session(session_id))
            except SessionNotFoundError:
                record = None
        if record is None and live is None:
            raise SessionNotFoundError(session_id)
        base: dict[str, Any] = {
            "id": session_id,
            "name": None,
            "runtime_status": None,
            "created": None,
            "last_updated": None,
            "custom_status": None,
            "output": None,
        }
        base.update(live or {})
        base["catalog"] = record
        return Answer(200, base)

    def points(self, params: Mapping[str, str]) -> Answer:
        subject = "the restore point query"
        given = _params(params, ("resource", "kind", "limit"), subject)
        resource = given.get("resource", "")
        if not resource:
            raise _invalid(
                subject,
                "resource",
                "is missing",
                "name the VM or database: resource=/subscriptions/<id>/resourceGroups/<g>/providers/...",
            )
        problem = RESOURCE_ID.check(resource)
        if problem is not None:
            raise _invalid(subject, "resource", problem[0], problem[1])
        kind_text = given.get("kind") or None
        kinds = [k.value for k in PointKind]
        if kind_text is not None and kind_text not in kinds:
            raise _invalid(subject, "kind", f"'{kind_text}' is not a kind of restore point", f"use {', '.join(kinds)}")
        kind = PointKind(kind_text) if kind_text is not None else None
        limit = _limit(given.get("limit"), subject)
        points = self._catalog.list_points(resource, kind=kind, limit=limit)
        return Answer(200, {"points": [to_dict(p) for p in points], "count": len(points)})
