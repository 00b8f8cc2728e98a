"""The simulator's persistent state: ARM documents and private records, in one JSON file.

Every mutation rewrites ``state.json`` atomically (temp file + rename), under one re-entrant lock,
so a restart (or a kill) keeps the estate as of the last finished request. The estate is small
(resources, grants, recent operations); disk contents live in the page store, not here.

Collections (``kind``):
- ``resources``: ARM resources keyed by lower-cased resource id, ``{"doc": <ARM JSON>, "private": {...}}``.
  ``doc`` is what clients see; ``private`` holds what Azure keeps to itself (page blob id, family...).
- ``grants``: SAS grants by id; ``operations``: LRO records by id; ``settings``: behaviour knobs;
  ``secrets``: the SAS signing key; ``containers``: blob containers of the simulated VHD accounts.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any

JsonDict = dict[str, Any]

_KINDS = ("resources", "grants", "operations", "settings", "secrets", "containers")

# Behaviour knobs, changed through the admin API (and later the faults module).
DEFAULT_SETTINGS: JsonDict = {
    # How many polls of an operation answer InProgress before it reports its final status.
    "lro_in_progress_polls": 0,
    # Seconds sent as Retry-After on 202 responses (0 = no header; the SDK then uses its polling_interval).
    "lro_retry_after": 0,
    # Items per page of ARM list responses (nextLink beyond).
    "list_page_size": 100,
    # Ranges per Get Page Ranges (diff) response; Azure's limit is 10,000, beyond it NextMarker.
    "pagelist_page_limit": 10000,
    # Seconds added to the wall clock (tests advance time to expire SAS grants).
    "clock_offset_seconds": 0.0,
}


class StateStore:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._path = folder / "state.json"
        self.lock = threading.RLock()
        self._data: dict[str, dict[str, JsonDict]] = {kind: {} for kind in _KINDS}
        if self._path.exists():
            loaded = json.loads(self._path.read_text(encoding="utf-8"))
            for kind in _KINDS:
                self._data[kind] = loaded.get(kind, {})

    def get(self, kind: str, key: str) -> JsonDict | None:
        with self.lock:
            found = self._data[kind].get(key.lower())
            return copy.deepcopy(found) if found is not None else None

    def put(self, kind: str, key: str, record: JsonDict) -> None:
        with self.lock:
            self._data[kind][key.lower()] = copy.deepcopy(record)
            self._save()

    def delete(self, kind: str, key: str) -> bool:
        with self.lock:
            found = self._data[kind].pop(key.lower(), None)
            if found is not None:
                self._save()
            return found is not None

    def items(self, kind: str) -> list[tuple[str, JsonDict]]:
        with self.lock:
            return [(k, copy.deepcopy(v)) for k, v in sorted(self._data[kind].items())]

    def settings(self) -> JsonDict:
        with self.lock:
            merged = dict(DEFAULT_SETTINGS)
            merged.update(self._data["settings"].get("current", {}))
            return merged

    def update_settings(self, changes: JsonDict) -> JsonDict:
        with self.lock:
            unknown = sorted(set(changes) - set(DEFAULT_SETTINGS))
            if unknown:
                raise KeyError(", ".join(unknown))
            current = dict(self._data["settings"].get("current", {}))
            current.update(changes)
            self._data["settings"]["current"] = current
            self._save()
            return self.settings()

    def now(self) -> dt.datetime:
        """The simulated wall clock (real time plus the test-controlled offset)."""
        offset = float(self.settings()["clock_offset_seconds"])
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)

    def _save(self) -> None:
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._data, separators=(",", ":")), encoding="utf-8")
        os.replace(temporary, self._path)
