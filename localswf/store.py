"""The SQLite file that holds all state, with one writer lock per server process."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS domains (
    name TEXT PRIMARY KEY,
    description TEXT,
    retention_days TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS resource_tags (
    arn TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (arn, key)
);
CREATE TABLE IF NOT EXISTS types (
    kind TEXT NOT NULL,              -- 'workflow' or 'activity'
    domain TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    description TEXT,
    created REAL NOT NULL,
    deprecated REAL,
    config TEXT NOT NULL,            -- JSON of the default* members
    PRIMARY KEY (kind, domain, name, version)
);
CREATE TABLE IF NOT EXISTS executions (
    run_id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    type_name TEXT NOT NULL,
    type_version TEXT NOT NULL,
    status TEXT NOT NULL,            -- 'OPEN' or 'CLOSED'
    close_status TEXT,
    started REAL NOT NULL,
    closed REAL,
    tags TEXT NOT NULL,              -- JSON list
    config TEXT NOT NULL,            -- JSON WorkflowExecutionConfiguration
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    parent_run_id TEXT,
    parent_workflow_id TEXT,
    parent_initiated_id INTEGER,
    next_event_id INTEGER NOT NULL,
    latest_context TEXT,
    latest_activity_ts REAL,
    dt_queued INTEGER NOT NULL DEFAULT 0,      -- scheduled event id of a decision task not yet started
    dt_run_scheduled INTEGER NOT NULL DEFAULT 0,
    dt_run_started INTEGER NOT NULL DEFAULT 0, -- started event id of the decision task in flight
    dt_pending INTEGER NOT NULL DEFAULT 0,     -- events arrived while a decision task was in flight
    last_completed_started INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS executions_open_id ON executions (domain, workflow_id) WHERE status = 'OPEN';
CREATE INDEX IF NOT EXISTS executions_by_start ON executions (domain, status, started);
CREATE INDEX IF NOT EXISTS executions_by_close ON executions (domain, status, closed);
CREATE INDEX IF NOT EXISTS executions_by_parent ON executions (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    type TEXT NOT NULL,
    attributes TEXT NOT NULL,
    PRIMARY KEY (run_id, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decision_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL,
    task_list TEXT NOT NULL,
    priority INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    scheduled_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS decision_queue_order ON decision_queue (domain, task_list, priority DESC, seq);
CREATE INDEX IF NOT EXISTS decision_queue_run ON decision_queue (run_id);
CREATE TABLE IF NOT EXISTS activities (
    run_id TEXT NOT NULL,
    scheduled_id INTEGER NOT NULL,
    activity_id TEXT NOT NULL,
    started_id INTEGER NOT NULL DEFAULT 0,
    attributes TEXT NOT NULL,        -- JSON of the ActivityTaskScheduled attributes
    heartbeat_details TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    latest_cancel_requested_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, scheduled_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS activities_id ON activities (run_id, activity_id);
CREATE TABLE IF NOT EXISTS activity_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL,
    task_list TEXT NOT NULL,
    priority INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    scheduled_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_queue_order ON activity_queue (domain, task_list, priority DESC, seq);
CREATE INDEX IF NOT EXISTS activity_queue_run ON activity_queue (run_id, scheduled_id);
CREATE TABLE IF NOT EXISTS timers (
    run_id TEXT NOT NULL,
    timer_id TEXT NOT NULL,
    started_id INTEGER NOT NULL,
    PRIMARY KEY (run_id, timer_id)
);
CREATE TABLE IF NOT EXISTS children (
    run_id TEXT NOT NULL,            -- the parent
    initiated_id INTEGER NOT NULL,
    started_id INTEGER NOT NULL,
    child_run_id TEXT NOT NULL,
    PRIMARY KEY (run_id, initiated_id)
);
CREATE INDEX IF NOT EXISTS children_by_child ON children (child_run_id);
CREATE TABLE IF NOT EXISTS deadlines (
    id INTEGER PRIMARY KEY,
    due REAL NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ref INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deadlines_due ON deadlines (due);
CREATE INDEX IF NOT EXISTS deadlines_ref ON deadlines (run_id, kind, ref);
"""


class DatabaseLockedError(RuntimeError):
    """Another localswf process already serves this database file."""


class Store:
    """One SQLite connection shared by all threads; `lock` serializes every transaction.

    A single writer makes each claim of a task atomic, which is what exactly-once delivery rests on.
    WAL with synchronous=NORMAL keeps every committed transaction across a SIGKILL of this process;
    NOTE: a power loss may drop the last transactions.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        self._lock_file = self._take_file_lock(self.path)
        self.conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.conn.executescript(SCHEMA)

    @staticmethod
    def _take_file_lock(path: Path) -> int:
        lock_path = str(path) + ".lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseLockedError(
                f"database {path} is in use by another localswf process (lock file {lock_path}); stop it or use another --db"
            ) from None
        return fd

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """Run a block in one write transaction, committed before the block's caller replies."""
        with self.lock:
            cursor = self.conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            else:
                cursor.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self.conn.close()
            os.close(self._lock_file)
