"""Which sessions of a policy are due, and the stable ids that make each run at most once.

A timer asks :func:`policy_slots` for ``(last check, now]`` and starts one orchestration per slot
with the instance id :func:`slot_id`: the Durable host refuses a second instance with the same id,
so a slot never runs twice, even when two timer ticks overlap or the app restarts mid-tick.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from shared.core.errors import UsageError
from shared.policy.formats import POLICY_ID
from shared.policy.model import Policy
from shared.policy.schedule import due_slots

__all__ = ["PolicySlot", "parse_slot_id", "policy_slots", "slot_id"]

_SLOT_FORMAT = "%Y%m%dT%H%M%SZ"
_SLOT_ID = re.compile(r"^(?P<policy>[a-z0-9-]{1,63})@(?P<slot>\d{8}T\d{6}Z)$")


@dataclass(frozen=True)
class PolicySlot:
    """A due session: when, and what it does.

    ``scheduled`` slots come from ``policy.schedule``: snapshots of every VM disk and an export of
    every SQL database. ``image_backup`` slots (from ``policy.image_backup.schedule``) also take the
    VM snapshots and copy them into the repository; a slot can be both.
    """

    at: dt.datetime
    scheduled: bool
    image_backup: bool


def policy_slots(policy: Policy, after: dt.datetime, until: dt.datetime) -> list[PolicySlot]:
    """The slots of ``policy`` with ``after < slot <= until``, oldest first; none if it is disabled."""
    if not policy.enabled:
        return []
    regular = set(due_slots(policy.schedule, after, until))
    image = policy.image_backup
    images = set(due_slots(image.schedule, after, until)) if image.enabled and image.schedule else set()
    return [PolicySlot(at, at in regular, at in images) for at in sorted(regular | images)]


def slot_id(policy_id: str, slot: dt.datetime) -> str:
    """``<policy id>@<UTC time>``, e.g. ``prod-vms@20240331T010000Z``: at most 80 characters, and
    valid as a Durable instance id and as a Table storage key."""
    problem = POLICY_ID.check(policy_id)
    if problem is not None:
        raise UsageError(f"{problem[0]}.", hint=problem[1])
    if slot.tzinfo is None:
        raise UsageError(f"The slot {slot.isoformat()} has no time zone.", hint="slots are UTC instants")
    if slot.microsecond:
        raise UsageError(f"The slot {slot.isoformat()} is not a whole second.", hint="take slots from due_slots()")
    return f"{policy_id}@{slot.astimezone(dt.UTC).strftime(_SLOT_FORMAT)}"


def parse_slot_id(text: str) -> tuple[str, dt.datetime]:
    """The policy id and the slot of a :func:`slot_id`."""
    match = _SLOT_ID.match(text)
    if match is None:
        raise UsageError(f"'{text}' is not a slot id.", hint="slot ids look like 'prod-vms@20240331T010000Z'")
    slot = dt.datetime.strptime(match["slot"], _SLOT_FORMAT).replace(tzinfo=dt.UTC)
    return match["policy"], slot
