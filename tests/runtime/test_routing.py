"""Route templates: parameters, constraints, optional and catch-all segments, precedence."""

from __future__ import annotations

from bulwark_local.runtime.routing import RouteTemplate


def test_parameters_and_constraints() -> None:
    route = RouteTemplate.parse("policies/{policy_id}/runs/{run:int}")
    assert route.match("policies/gold/runs/42") == {"policy_id": "gold", "run": "42"}
    assert route.match("POLICIES/gold/runs/42/") == {"policy_id": "gold", "run": "42"}
    assert route.match("policies/gold/runs/latest") is None
    assert route.match("policies/gold") is None
    assert RouteTemplate.parse("items/{id?}").match("items") == {}
    assert RouteTemplate.parse("items/{id=7}").match("items") == {"id": "7"}
    assert RouteTemplate.parse("files/{*path}").match("files/a/b%20c.txt") == {"path": "a/b c.txt"}
    assert RouteTemplate.parse("files/{name}.{ext}").match("files/report.pdf") == {
        "name": "report",
        "ext": "pdf",
    }


def test_literal_routes_take_precedence_over_parameters() -> None:
    routes = sorted(
        [RouteTemplate.parse("backups/{policy}"), RouteTemplate.parse("backups/openapi")],
        key=lambda route: route.precedence,
    )
    assert next(r.text for r in routes if r.match("backups/openapi") is not None) == "backups/openapi"
