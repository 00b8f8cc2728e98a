"""Metrics taken from activity results (``guarded(..., observe=...)``): snapshots created and
deleted, sessions by result. Bytes and throughput are measured where they happen, in the worker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.telemetry.metrics import record_session, record_snapshots_created, record_snapshots_deleted

__all__ = ["observe_retention", "observe_session", "observe_snapshot"]


def observe_snapshot(result: Mapping[str, Any]) -> None:
    record_snapshots_created(1, managed=bool(result.get("managed", True)))


def observe_retention(result: Mapping[str, Any]) -> None:
    record_snapshots_deleted(len(result.get("deleted") or ()))


def observe_session(result: Mapping[str, Any]) -> None:
    record_session(str(result.get("status", "")), str(result.get("policy_id", "")))
