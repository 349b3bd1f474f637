"""Restart policy: which exits count as crashes and how long a crash-looping list waits.

Pure functions over a small immutable state, so the policy is tested without processes.
"""

from __future__ import annotations

import enum
import os
import signal
from dataclasses import dataclass, replace

from workers import exitcodes


class ExitKind(enum.Enum):
    """Category of one worker exit, which decides restart and crash accounting."""

    # EXECUTION_CLOSED or RECYCLE: restart at once, not a crash.
    CLEAN_RESTART = "clean_restart"
    # The worker died within the crash window of its start.
    CRASH = "crash"
    # The worker died after running longer than the crash window.
    LATE_EXIT = "late_exit"
    # The manager asked the worker to stop (scale-down, reload, shutdown, liveness kill).
    REQUESTED = "requested"


@dataclass(frozen=True)
class ExitStatus:
    """A decoded wait status: exactly one of ``code`` and ``signal`` is set."""

    code: int | None
    signal: int | None

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        """Decode a status returned by ``os.waitpid``."""
        if os.WIFSIGNALED(status):
            return cls(code=None, signal=os.WTERMSIG(status))
        return cls(code=os.WEXITSTATUS(status), signal=None)

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"killed by {name}"
        return f"exit code {self.code}"


@dataclass(frozen=True)
class BackoffState:
    """Crash-loop state of one task list."""

    # Crashes in a row, without a worker that lived past the crash window in between.
    consecutive_crashes: int = 0
    # time.monotonic() before which no new worker may start on this list.
    next_start_at: float = 0.0
    # Current delay in seconds, 0 when the list is not crash-looping.
    delay: float = 0.0

    @property
    def crash_looping(self) -> bool:
        return self.delay > 0


def classify_exit(status: ExitStatus, uptime: float, crash_window: float, stop_requested: bool) -> ExitKind:
    """Classify one exit for the restart policy."""
    if stop_requested:
        return ExitKind.REQUESTED
    if status.code in exitcodes.CLEAN_RESTART_CODES:
        return ExitKind.CLEAN_RESTART
    if uptime < crash_window:
        return ExitKind.CRASH
    return ExitKind.LATE_EXIT


def crash_delay(consecutive_crashes: int, initial: float, maximum: float) -> float:
    """Return the wait before the next start after ``consecutive_crashes`` crashes in a row.

    The first crash restarts at once, because one early death (an operator's kill, a
    transient fault) is not a loop. From the second crash on the delay is
    initial, 2 * initial, 4 * initial, ... capped at ``maximum``.
    """
    if consecutive_crashes < 0:
        raise ValueError(f"invalid crash count {consecutive_crashes}: expected 0 or more")
    if consecutive_crashes <= 1:
        return 0.0
    # Cap the exponent so a long loop cannot overflow the float.
    exponent = min(consecutive_crashes - 2, 63)
    return min(initial * (2.0**exponent), maximum)


def record_exit(state: BackoffState, kind: ExitKind, now: float, initial: float, maximum: float) -> BackoffState:
    """Return the list's backoff state after one of its workers exited."""
    if kind is ExitKind.CRASH:
        crashes = state.consecutive_crashes + 1
        delay = crash_delay(crashes, initial, maximum)
        return BackoffState(consecutive_crashes=crashes, next_start_at=now + delay, delay=delay)
    if kind is ExitKind.LATE_EXIT:
        return BackoffState()
    # A clean restart or a requested stop is no sign of a crash loop: keep the state.
    return state


def record_survivor(state: BackoffState) -> BackoffState:
    """Return the state after a worker started since the last crash lived past the crash window."""
    if state.consecutive_crashes == 0:
        return state
    return replace(state, consecutive_crashes=0, delay=0.0)


@dataclass
class HelperRestart:
    """Restart bookkeeping of one helper child: the embedded endpoint or the backlog sampler."""

    # time.monotonic() of the helper's last start.
    started_at: float = 0.0
    state: BackoffState = BackoffState()
    # True between the helper's exit and its next start.
    pending: bool = False

    def exited(self, status: ExitStatus, now: float, crash_window: float, initial: float, maximum: float) -> ExitKind:
        """Record an exit and schedule the restart. Returns how the exit was classified."""
        kind = classify_exit(status, now - self.started_at, crash_window, stop_requested=False)
        self.state = record_exit(self.state, kind, now, initial, maximum)
        self.pending = True
        return kind

    def start_failed(self, now: float, initial: float, maximum: float) -> None:
        """Record a failed start: the next attempt waits at least ``initial`` seconds."""
        self.state = record_exit(self.state, ExitKind.CRASH, now, initial, maximum)
        if self.state.next_start_at < now + initial:
            self.state = replace(self.state, next_start_at=now + initial)
        self.pending = True

    def due(self, now: float) -> bool:
        return self.pending and now >= self.state.next_start_at

    def started(self, now: float) -> None:
        self.started_at = now
        self.pending = False
