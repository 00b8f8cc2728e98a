"""Session markers: how writers announce themselves to garbage collection.

A backup writes ``sessions/<id>`` (envelope type SESSION) before it loads the index, refreshes
it while it runs and deletes it when done. ``prune`` never deletes data while a live session
might reference it (docs/format.md §Garbage collection). A marker is dead when it has expired
or when it names a process on this host that no longer runs (a killed backup).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.core.clock import Clock, format_time, parse_time
from shared.core.crypto import MasterKey
from shared.core.envelope import ObjectType, open_object, seal_object
from shared.storage.port import BlobStore

__all__ = ["SESSIONS_PREFIX", "SessionInfo", "SessionMarker", "is_alive"]

SESSIONS_PREFIX = "sessions/"
# A marker unrefreshed for this long belongs to a writer that died on another machine.
SESSION_TTL = timedelta(minutes=30)
_REFRESH_SECONDS = 300.0


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    host: str
    pid: int
    started: datetime
    expires: datetime

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "id": self.session_id,
                "host": self.host,
                "pid": self.pid,
                "started": format_time(self.started),
                "expires": format_time(self.expires),
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SessionInfo:
        doc = json.loads(data)
        return cls(
            str(doc["id"]),
            str(doc["host"]),
            int(doc["pid"]),
            parse_time(doc["started"]),
            parse_time(doc["expires"]),
        )


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_alive(info: SessionInfo, now: datetime) -> bool:
    if info.expires <= now:
        return False
    if info.host == socket.gethostname() and info.pid != os.getpid():
        return _pid_running(info.pid)
    return True


class SessionMarker:
    """Writes the marker on enter, refreshes it from a daemon thread, deletes it on exit."""

    def __init__(self, store: BlobStore, key: MasterKey, clock: Clock) -> None:
        self._store = store
        self._key = key
        self._clock = clock
        self.session_id = os.urandom(8).hex()
        self.name = SESSIONS_PREFIX + self.session_id
        self._started = clock.now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        info = SessionInfo(
            self.session_id, socket.gethostname(), os.getpid(), self._started, self._clock.now() + SESSION_TTL
        )
        self._store.put(
            self.name, seal_object(self._key, ObjectType.SESSION, self.name, info.to_json()), overwrite=True
        )

    def _refresh_loop(self) -> None:
        while not self._stop.wait(_REFRESH_SECONDS):
            self._write()

    def __enter__(self) -> SessionMarker:
        self._write()
        self._thread = threading.Thread(target=self._refresh_loop, name="session-refresh", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._store.delete(self.name)


def read_session(store: BlobStore, key: MasterKey, name: str) -> SessionInfo:
    return SessionInfo.from_json(open_object(key, ObjectType.SESSION, name, store.get(name)))
