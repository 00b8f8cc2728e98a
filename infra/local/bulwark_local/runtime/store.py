"""Orchestration state in SQLite: instances, histories, queued messages and activity work items.

The store follows DTFx's transactional model, so a process killed at any instant loses nothing
that was committed and repeats only what was in flight:

* every orchestration episode commits in one transaction: its history events, the messages it
  consumed (deleted), the activity work items, timer messages, sub-orchestration starts and parent
  notifications it produced;
* an activity result commits in one transaction: the work item is deleted and its TaskCompleted /
  TaskFailed message is queued to the instance;
* a durable timer is a message that becomes visible at its fire time (like a queue message with a
  visibility delay), so timers need no separate bookkeeping and survive restarts;
* on start nothing needs repairing: queued messages are picked up again, and activity work items
  still present are run again (at-least-once, as on Azure).

The database runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the
process being killed (it is in the WAL file); only a power loss can drop the last commits.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import InstanceExistsError
from .history import EventType, HistoryEvent, new_event

__all__ = [
    "TERMINAL_STATUSES",
    "ActivityWork",
    "ChildStart",
    "EpisodeCommit",
    "InstanceQuery",
    "InstanceRecord",
    "Message",
    "NewActivity",
    "OutgoingMessage",
    "ParentRef",
    "RuntimeStatus",
    "StateStore",
    "TimerStatus",
    "execution_started",
]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_time TEXT NOT NULL,
    last_updated_time TEXT NOT NULL,
    parent_instance_id TEXT,
    parent_execution_id TEXT,
    parent_task_id INTEGER
);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, position)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    event TEXT NOT NULL,
    visible_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (visible_at);
CREATE INDEX IF NOT EXISTS messages_by_instance ON messages (instance_id);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT
);
CREATE TABLE IF NOT EXISTS timer_triggers (
    function_name TEXT PRIMARY KEY,
    last TEXT,
    next TEXT,
    last_updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
"""


class RuntimeStatus(StrEnum):
    """``OrchestrationRuntimeStatus`` names, as the status API reports them."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    TERMINATED = "Terminated"


TERMINAL_STATUSES = frozenset({RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.TERMINATED})


@dataclass(frozen=True)
class ParentRef:
    """The orchestration that started a sub-orchestration, and the task id it waits on."""

    instance_id: str
    execution_id: str
    task_id: int


@dataclass(frozen=True)
class InstanceRecord:
    instance_id: str
    name: str
    execution_id: str
    status: RuntimeStatus
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: datetime
    last_updated_time: datetime
    parent: ParentRef | None = None


@dataclass(frozen=True)
class Message:
    id: int
    instance_id: str
    execution_id: str | None
    """Messages for one execution (results, timers) are dropped once the instance moved on."""
    event: HistoryEvent
    visible_at: datetime


@dataclass(frozen=True)
class ActivityWork:
    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class NewActivity:
    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class OutgoingMessage:
    instance_id: str
    event: HistoryEvent
    visible_at: datetime
    execution_id: str | None = None


@dataclass(frozen=True)
class ChildStart:
    """A sub-orchestration to create in the same transaction as the parent's episode."""

    instance_id: str
    name: str
    input: str | None
    execution_id: str
    parent: ParentRef


@dataclass(frozen=True)
class EpisodeCommit:
    """Everything one orchestration episode changes, committed atomically."""

    instance_id: str
    execution_id: str
    """The execution the episode ran; becomes ``new_execution_id`` on continue-as-new."""
    consumed: Sequence[int]
    status: RuntimeStatus
    history_append: Sequence[HistoryEvent] = ()
    output: str | None = None
    custom_status: str | None = None
    """JSON text; ``None`` keeps the current custom status."""
    new_execution_id: str | None = None
    """Set on continue-as-new: the history restarts and ``new_input`` becomes the input."""
    new_input: str | None = None
    activities: Sequence[NewActivity] = ()
    messages: Sequence[OutgoingMessage] = ()
    children: Sequence[ChildStart] = ()


@dataclass(frozen=True)
class InstanceQuery:
    created_from: datetime | None = None
    created_to: datetime | None = None
    statuses: frozenset[RuntimeStatus] = field(default_factory=frozenset)
    instance_id_prefix: str | None = None
    top: int | None = None


@dataclass(frozen=True)
class TimerStatus:
    last: datetime | None
    next: datetime | None
    last_updated: datetime


class StateStore:
    """SQLite-backed orchestration state; ``path=None`` keeps it in memory (tests)."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.RLock()
        target = str(path) if path is not None else ":memory:"
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 10000")
        if path is not None:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            self._db.executescript(_SCHEMA)
        with self._transaction() as db:
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (?)", (_SCHEMA_VERSION,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- instances -----------------------------------------------------------------------------

    def create_instance(
        self,
        *,
        instance_id: str,
        name: str,
        input: str | None,
        execution_id: str,
        now: datetime,
        overridable: frozenset[RuntimeStatus] = TERMINAL_STATUSES,
    ) -> None:
        """Create (or replace) an instance and queue its ExecutionStarted message.

        An existing instance is replaced only when its status is in ``overridable`` (Azure's
        default ``NonRunningStates``: Completed, Failed, Terminated); otherwise
        :class:`InstanceExistsError`.
        """
        with self._transaction() as db:
            existing = self._status_of(db, instance_id)
            if existing is not None and existing not in overridable:
                raise InstanceExistsError(
                    f"An Orchestration instance with the status {existing.value} already exists.",
                    hint="wait for it to finish, terminate it, or use another instance id",
                )
            self._reset_instance(
                db,
                instance_id=instance_id,
                name=name,
                input=input,
                execution_id=execution_id,
                now=now,
                parent=None,
            )

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
        return _instance(row) if row else None

    def list_instances(self, query: InstanceQuery | None = None) -> list[InstanceRecord]:
        query = query or InstanceQuery()
        clauses: list[str] = []
        values: list[Any] = []
        if query.created_from is not None:
            clauses.append("created_time >= ?")
            values.append(_ts(query.created_from))
        if query.created_to is not None:
            clauses.append("created_time <= ?")
            values.append(_ts(query.created_to))
        if query.statuses:
            clauses.append(f"status IN ({', '.join('?' for _ in query.statuses)})")
            values.extend(status.value for status in query.statuses)
        if query.instance_id_prefix:
            clauses.append("substr(instance_id, 1, ?) = ?")
            values.extend([len(query.instance_id_prefix), query.instance_id_prefix])
        sql = "SELECT * FROM instances"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_time, instance_id"
        if query.top:
            sql += f" LIMIT {int(query.top)}"
        with self._lock:
            rows = self._db.execute(sql, values).fetchall()
        return [_instance(row) for row in rows]

    def history(self, instance_id: str) -> list[HistoryEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event FROM history WHERE instance_id = ? ORDER BY position", (instance_id,)
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def purge(self, instance_id: str) -> bool:
        """Delete an instance with its history, messages and work items."""
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,)).rowcount
            self._clear(db, instance_id)
        return deleted > 0

    # -- messages ------------------------------------------------------------------------------

    def enqueue(
        self,
        instance_id: str,
        event: HistoryEvent,
        *,
        visible_at: datetime,
        execution_id: str | None = None,
    ) -> None:
        with self._transaction() as db:
            _insert_message(db, instance_id, execution_id, event, visible_at)

    def next_ready_instance(self, now: datetime) -> str | None:
        """The instance whose oldest visible message is oldest, if any message is visible."""
        with self._lock:
            row = self._db.execute(
                "SELECT instance_id FROM messages WHERE visible_at <= ? GROUP BY instance_id ORDER BY MIN(id) LIMIT 1",
                (_ts(now),),
            ).fetchone()
        return str(row[0]) if row else None

    def next_visibility(self) -> datetime | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(visible_at) FROM messages").fetchone()
        return _parse(row[0]) if row and row[0] else None

    def visible_messages(self, instance_id: str, now: datetime) -> list[Message]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, instance_id, execution_id, event, visible_at FROM messages "
                "WHERE instance_id = ? AND visible_at <= ? ORDER BY id",
                (instance_id, _ts(now)),
            ).fetchall()
        return [
            Message(
                id=row[0],
                instance_id=row[1],
                execution_id=row[2],
                event=json.loads(row[3]),
                visible_at=_parse(row[4]),
            )
            for row in rows
        ]

    def discard_messages(self, ids: Sequence[int]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    # -- episodes ------------------------------------------------------------------------------

    def commit_episode(self, commit: EpisodeCommit, *, now: datetime) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in commit.consumed])
            execution_id = commit.execution_id
            input_update = ""
            if commit.new_execution_id is not None:
                execution_id = commit.new_execution_id
                db.execute("DELETE FROM history WHERE instance_id = ?", (commit.instance_id,))
                db.execute("DELETE FROM activities WHERE instance_id = ?", (commit.instance_id,))
                input_update = ", input = :input"
            else:
                start = db.execute(
                    "SELECT COUNT(*) FROM history WHERE instance_id = ?", (commit.instance_id,)
                ).fetchone()[0]
                db.executemany(
                    "INSERT INTO history VALUES (?, ?, ?)",
                    [
                        (commit.instance_id, start + offset, json.dumps(event))
                        for offset, event in enumerate(commit.history_append)
                    ],
                )
            custom = ", custom_status = :custom" if commit.custom_status is not None else ""
            db.execute(
                "UPDATE instances SET status = :status, output = :output, execution_id = :execution, "
                f"last_updated_time = :now{custom}{input_update} WHERE instance_id = :id",
                {
                    "status": commit.status.value,
                    "output": commit.output,
                    "execution": execution_id,
                    "now": _ts(now),
                    "custom": commit.custom_status,
                    "input": commit.new_input,
                    "id": commit.instance_id,
                },
            )
            db.executemany(
                "INSERT INTO activities (instance_id, execution_id, task_id, name, input) VALUES (?, ?, ?, ?, ?)",
                [(commit.instance_id, commit.execution_id, a.task_id, a.name, a.input) for a in commit.activities],
            )
            for message in commit.messages:
                _insert_message(db, message.instance_id, message.execution_id, message.event, message.visible_at)
            for child in commit.children:
                self._start_child(db, child, now)

    def _start_child(self, db: sqlite3.Connection, child: ChildStart, now: datetime) -> None:
        existing = self._status_of(db, child.instance_id)
        if existing is not None and existing not in TERMINAL_STATUSES:
            failure = new_event(
                EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
                now,
                TaskScheduledId=child.parent.task_id,
                Reason=(
                    f"An Orchestration instance with the status {existing.value} already exists: {child.instance_id!r}"
                ),
                Details=None,
            )
            _insert_message(db, child.parent.instance_id, child.parent.execution_id, failure, now)
            return
        self._reset_instance(
            db,
            instance_id=child.instance_id,
            name=child.name,
            input=child.input,
            execution_id=child.execution_id,
            now=now,
            parent=child.parent,
        )

    # -- activities ----------------------------------------------------------------------------

    def pending_activities(self, *, exclude: set[int], limit: int) -> list[ActivityWork]:
        if limit <= 0:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT id, instance_id, execution_id, task_id, name, input FROM activities ORDER BY id LIMIT ?",
                (limit + len(exclude),),
            ).fetchall()
        work = [ActivityWork(*row) for row in rows if row[0] not in exclude]
        return work[:limit]

    def count_activities(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM activities").fetchone()[0])

    def complete_activity(self, work: ActivityWork, event: HistoryEvent, *, now: datetime) -> bool:
        """Delete the work item and queue its result; ``False`` if the item is gone already."""
        with self._transaction() as db:
            if not db.execute("DELETE FROM activities WHERE id = ?", (work.id,)).rowcount:
                return False
            _insert_message(db, work.instance_id, work.execution_id, event, now)
        return True

    # -- timer triggers ------------------------------------------------------------------------

    def timer_status(self, function_name: str) -> TimerStatus | None:
        with self._lock:
            row = self._db.execute(
                "SELECT last, next, last_updated FROM timer_triggers WHERE function_name = ?",
                (function_name,),
            ).fetchone()
        if row is None:
            return None
        return TimerStatus(
            last=_parse(row[0]) if row[0] else None,
            next=_parse(row[1]) if row[1] else None,
            last_updated=_parse(row[2]),
        )

    def save_timer_status(self, function_name: str, status: TimerStatus) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO timer_triggers VALUES (?, ?, ?, ?)",
                (
                    function_name,
                    _ts(status.last) if status.last else None,
                    _ts(status.next) if status.next else None,
                    _ts(status.last_updated),
                ),
            )

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _status_of(db: sqlite3.Connection, instance_id: str) -> RuntimeStatus | None:
        row = db.execute("SELECT status FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
        return RuntimeStatus(row[0]) if row else None

    @staticmethod
    def _clear(db: sqlite3.Connection, instance_id: str) -> None:
        for table in ("history", "messages", "activities"):
            db.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))

    def _reset_instance(
        self,
        db: sqlite3.Connection,
        *,
        instance_id: str,
        name: str,
        input: str | None,
        execution_id: str,
        now: datetime,
        parent: ParentRef | None,
    ) -> None:
        self._clear(db, instance_id)
        db.execute(
            "INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?)",
            (
                instance_id,
                name,
                execution_id,
                RuntimeStatus.PENDING.value,
                input,
                _ts(now),
                _ts(now),
                parent.instance_id if parent else None,
                parent.execution_id if parent else None,
                parent.task_id if parent else None,
            ),
        )
        started = execution_started(instance_id, execution_id, name, input, parent, now)
        _insert_message(db, instance_id, execution_id, started, now)


def execution_started(
    instance_id: str,
    execution_id: str,
    name: str,
    input: str | None,
    parent: ParentRef | None,
    now: datetime,
) -> HistoryEvent:
    """The ExecutionStarted event that opens an execution's history."""
    return new_event(
        EventType.EXECUTION_STARTED,
        now,
        OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
        ParentInstance=(
            {
                "Name": None,
                "OrchestrationInstance": {
                    "InstanceId": parent.instance_id,
                    "ExecutionId": parent.execution_id,
                },
                "TaskScheduleId": parent.task_id,
                "Version": "",
            }
            if parent
            else None
        ),
        Name=name,
        Version="",
        Input=input,
        Tags=None,
        Generation=0,
    )


def _insert_message(
    db: sqlite3.Connection,
    instance_id: str,
    execution_id: str | None,
    event: HistoryEvent,
    visible_at: datetime,
) -> None:
    db.execute(
        "INSERT INTO messages (instance_id, execution_id, event, visible_at) VALUES (?, ?, ?, ?)",
        (instance_id, execution_id, json.dumps(event), _ts(visible_at)),
    )


def _instance(row: tuple[Any, ...]) -> InstanceRecord:
    parent = ParentRef(row[9], row[10], int(row[11])) if row[9] else None
    return InstanceRecord(
        instance_id=row[0],
        name=row[1],
        execution_id=row[2],
        status=RuntimeStatus(row[3]),
        input=row[4],
        output=row[5],
        custom_status=row[6],
        created_time=_parse(row[7]),
        last_updated_time=_parse(row[8]),
        parent=parent,
    )


def _ts(when: datetime) -> str:
    """Fixed-width UTC text, so that SQL string order is time order."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
