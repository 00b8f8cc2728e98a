"""The HTTP triggers' last step: a service's :class:`Answer` as a Functions response.

Services answer in plain values (status, JSON-shaped body, headers) so they are tested without
the Functions host; every HTTP trigger turns them into responses the same way here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import azure.functions as func

from shared.core.errors import BulwarkError
from shared.services.api import Answer, error_answer

__all__ = ["respond", "serve"]


async def serve(handle: Callable[[], Answer]) -> func.HttpResponse:
    """Run ``handle`` off the event loop (storage calls block); a Bulwark error becomes its answer
    (4xx with the field and the fix, or 5xx)."""

    def answer() -> Answer:
        try:
            return handle()
        except BulwarkError as exc:
            return error_answer(exc)

    return respond(await asyncio.to_thread(answer))


def respond(answer: Answer) -> func.HttpResponse:
    text = answer.text()
    return func.HttpResponse(
        text,
        status_code=answer.status,
        headers=answer.headers,
        mimetype="application/json" if text is not None else None,
    )
