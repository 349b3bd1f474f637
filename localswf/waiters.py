"""Wake-ups for long polls: one condition variable per (domain, kind, task list)."""

from __future__ import annotations

import threading


class TaskListWaiters:
    """Generation counters per task list; a poller sleeps until the counter moves or its deadline passes.

    A poller reads `generation()` while it holds the store lock, in the same critical section in which it
    found no task, so a task committed later always moves the counter after that read.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._conditions: dict[tuple[str, str, str], threading.Condition] = {}
        self._generations: dict[tuple[str, str, str], int] = {}
        self._waiting: dict[tuple[str, str, str], int] = {}

    def _condition(self, key: tuple[str, str, str]) -> threading.Condition:
        with self._guard:
            condition = self._conditions.get(key)
            if condition is None:
                condition = threading.Condition(threading.Lock())
                self._conditions[key] = condition
                self._generations[key] = 0
                self._waiting[key] = 0
            return condition

    def generation(self, key: tuple[str, str, str]) -> int:
        condition = self._condition(key)
        with condition:
            return self._generations[key]

    def notify(self, key: tuple[str, str, str], count: int = 1) -> None:
        condition = self._condition(key)
        with condition:
            self._generations[key] += 1
            condition.notify(count)

    def notify_all(self) -> None:
        """Wake every poller, used at shutdown."""
        with self._guard:
            keys = list(self._conditions)
        for key in keys:
            condition = self._conditions[key]
            with condition:
                self._generations[key] += 1
                condition.notify_all()

    def waiting_count(self) -> int:
        """Count the polls blocked in `wait` right now."""
        with self._guard:
            return sum(self._waiting.values())

    def wait(self, key: tuple[str, str, str], seen: int, timeout: float) -> bool:
        """Block until the generation differs from `seen` or `timeout` seconds pass; True if it moved."""
        condition = self._condition(key)
        with condition:
            with self._guard:
                self._waiting[key] += 1
            try:
                return condition.wait_for(lambda: self._generations[key] != seen, timeout=max(0.0, timeout))
            finally:
                with self._guard:
                    self._waiting[key] -= 1
