"""Session activities: record a finished session in the catalog."""

# The SDK's decorators are untyped; the functions under them are checked all the same.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from functions import names
from shared.services.messages import SessionRecord
from shared.wiring import services

from .guard import guarded
from .observe import observe_session

bp = df.Blueprint()


@bp.activity_trigger(input_name="request", activity=names.RECORD_SESSION)
def record_session(request: dict[str, Any]) -> dict[str, Any]:
    return guarded(
        names.RECORD_SESSION,
        lambda: services().record_session.run(SessionRecord.from_dict(request)).to_dict(),
        request=request,
        observe=observe_session,
    )
