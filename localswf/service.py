"""The running endpoint's shared state: the store, the long-poll waiters and the deadline scheduler."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from localswf.engine import Context
from localswf.store import Store
from localswf.waiters import TaskListWaiters

log = logging.getLogger(__name__)
T = TypeVar("T")


class Service:
    def __init__(self, db_path: Path, max_poll_seconds: float = 60.0) -> None:
        self.store = Store(db_path)
        self.waiters = TaskListWaiters()
        self.max_poll_seconds = max_poll_seconds
        self.stopping = threading.Event()
        # time.monotonic() of the last ReleaseHeldPolls call: polls that started before it return empty.
        self.released_at = float("-inf")
        # Imported here because the scheduler module imports the operations that need Service.
        from localswf.scheduler import DeadlineScheduler

        self.scheduler = DeadlineScheduler(self)

    def write(self, action: Callable[[Context], T]) -> T:
        """Run `action` in one transaction, commit, then wake pollers and the scheduler."""
        with self.store.transaction() as cursor:
            ctx = Context(self, cursor)
            result = action(ctx)
            ctx.flush()
        self.after_commit(ctx)
        return result

    def read(self, action: Callable[[Context], T]) -> T:
        with self.store.lock:
            cursor = self.store.conn.cursor()
            return action(Context(self, cursor))

    def after_commit(self, ctx: Context) -> None:
        for key, count in ctx.wake.items():
            self.waiters.notify(key, count)
        if ctx.earliest_deadline is not None:
            self.scheduler.poke(ctx.earliest_deadline)

    def release_held_polls(self) -> int:
        """Make every poll held now return empty at once; return how many were held.

        A manager that is shutting down calls this after it asked its workers to stop, so
        they do not wait out a 60-second poll. Polls that start later are held as usual.
        """
        held = self.waiters.waiting_count()
        self.released_at = time.monotonic()
        self.waiters.notify_all()
        return held

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.stopping.set()
        self.waiters.notify_all()
        self.scheduler.stop()

    def close(self) -> None:
        self.store.close()

    def reset(self) -> None:
        """Delete every row: a fresh database for the next test without a new process."""
        with self.store.transaction() as cursor:
            tables = [row[0] for row in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")
        log.info("database %s reset", self.store.path)
