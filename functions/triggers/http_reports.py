"""Reports over HTTP (function key required), described by ``GET /api/openapi.json``.

    GET /api/reports/sessions/{instance_id}   200 text/html: the session's report (one self-contained page)
    GET /api/reports/policies/{policy_id}     200 text/html: the policy's sessions, RPO compliance, cost
    GET /api/policies/{policy_id}/cost?tier=hot|cool|cold&source_region=REGION
                                              200 JSON: the monthly cost estimate (shared.report.cost)

Unknown ids are 404 and bad parameters 400, as ``{"error": {code, message, hint, problems}}``.
"""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping

import azure.durable_functions as df
import azure.functions as func

from shared.catalog.model import CATALOG_ID
from shared.core.clock import SystemClock
from shared.core.errors import BulwarkError, ConfigError, UsageError
from shared.policy.codec import StringFormat
from shared.policy.formats import POLICY_ID, REGION
from shared.report.gather import Reports
from shared.report.page import policy_page, session_page
from shared.report.prices import PriceTable, load_prices
from shared.services.api import AUTH_PARAMETER, error_answer
from shared.wiring import services

bp = df.Blueprint()

COST_PARAMETERS = ("tier", "source_region")


@bp.route(route="reports/sessions/{instance_id}", methods=["GET"])
async def session_report(req: func.HttpRequest) -> func.HttpResponse:
    session_id = req.route_params.get("instance_id", "")
    return await _serve(lambda: _html(session_page(_reports().session_report(_checked(CATALOG_ID, session_id)))))


@bp.route(route="reports/policies/{policy_id}", methods=["GET"])
async def policy_report(req: func.HttpRequest) -> func.HttpResponse:
    policy_id = req.route_params.get("policy_id", "")
    return await _serve(lambda: _html(policy_page(_reports().policy_report(_checked(POLICY_ID, policy_id)))))


@bp.route(route="policies/{policy_id}/cost", methods=["GET"])
async def policy_cost(req: func.HttpRequest) -> func.HttpResponse:
    policy_id = req.route_params.get("policy_id", "")
    params = dict(req.params)

    def answer() -> func.HttpResponse:
        reports = _reports()
        tier, region = cost_query(params, reports.prices)
        estimate = reports.cost(_checked(POLICY_ID, policy_id), tier=tier, source_region=region)
        return func.HttpResponse(json.dumps(estimate.to_dict()), status_code=200, mimetype="application/json")

    return await _serve(answer)


def cost_query(params: Mapping[str, str], prices: PriceTable) -> tuple[str, str | None]:
    """``tier`` (default hot) and ``source_region`` (default: unknown) from a cost request's query."""
    unknown = sorted(set(params) - {*COST_PARAMETERS, AUTH_PARAMETER})
    if unknown:
        raise UsageError(f"unknown parameter(s) {', '.join(unknown)}", hint="the parameters are tier and source_region")
    tier = params.get("tier") or "hot"
    if tier not in prices.tiers:
        raise UsageError(
            f"'tier' is '{tier}', not an access tier", hint=f"use one of {', '.join(sorted(prices.tiers))}"
        )
    region = params.get("source_region") or None
    if region is not None:
        _checked(REGION, region, "source_region")
    return tier, region


def _checked(rule: StringFormat, value: str, name: str | None = None) -> str:
    problem = rule.check(value)
    if problem is not None:
        raise UsageError(f"'{name or rule.name}': {problem[0]}", hint=problem[1])
    return value


def _reports() -> Reports:
    built = services()
    if built.policy_store is None:
        raise ConfigError("this app has no policy store", hint="it is built without one only in tests")
    return Reports(built.catalog, built.policy_store, load_prices(), SystemClock())


def _html(page: str) -> func.HttpResponse:
    headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"}
    return func.HttpResponse(page, status_code=200, mimetype="text/html", charset="utf-8", headers=headers)


async def _serve(handle: Callable[[], func.HttpResponse]) -> func.HttpResponse:
    """Run ``handle`` off the event loop (storage calls block); errors become JSON answers."""

    def answer() -> func.HttpResponse:
        try:
            return handle()
        except BulwarkError as exc:
            error = error_answer(exc)
            return func.HttpResponse(error.text(), status_code=error.status, mimetype="application/json")

    return await asyncio.to_thread(answer)
