"""Restart policy: exit classification and crash-loop delays, without processes."""

from __future__ import annotations

import os
import signal

import pytest

from manager.backoff import (
    BackoffState,
    ExitKind,
    ExitStatus,
    classify_exit,
    crash_delay,
    record_exit,
    record_survivor,
)
from workers import exitcodes


def test_crash_delay_doubles_up_to_cap() -> None:
    delays = [crash_delay(n, initial=1.0, maximum=60.0) for n in range(10)]
    assert delays == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_crash_delay_huge_count_stays_capped() -> None:
    assert crash_delay(10_000, initial=1.0, maximum=60.0) == 60.0


def test_crash_delay_rejects_negative_count() -> None:
    with pytest.raises(ValueError, match="-1"):
        crash_delay(-1, initial=1.0, maximum=60.0)


@pytest.mark.parametrize(
    ("status", "uptime", "stop_requested", "expected"),
    [
        (ExitStatus(code=exitcodes.EXECUTION_CLOSED, signal=None), 0.1, False, ExitKind.CLEAN_RESTART),
        (ExitStatus(code=exitcodes.RECYCLE, signal=None), 0.1, False, ExitKind.CLEAN_RESTART),
        (ExitStatus(code=1, signal=None), 0.1, False, ExitKind.CRASH),
        (ExitStatus(code=None, signal=signal.SIGKILL), 0.1, False, ExitKind.CRASH),
        (ExitStatus(code=0, signal=None), 0.1, False, ExitKind.CRASH),
        (ExitStatus(code=1, signal=None), 11.0, False, ExitKind.LATE_EXIT),
        (ExitStatus(code=None, signal=signal.SIGKILL), 0.1, True, ExitKind.REQUESTED),
    ],
)
def test_classify_exit(status: ExitStatus, uptime: float, stop_requested: bool, expected: ExitKind) -> None:
    assert classify_exit(status, uptime, crash_window=10.0, stop_requested=stop_requested) is expected


def test_record_exit_crash_loop_backs_off() -> None:
    state = BackoffState()
    now = 100.0
    starts = []
    for _ in range(5):
        state = record_exit(state, ExitKind.CRASH, now, initial=1.0, maximum=60.0)
        starts.append(state.next_start_at - now)
    assert starts == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert state.crash_looping
    assert state.consecutive_crashes == 5


def test_clean_restart_keeps_state() -> None:
    state = record_exit(BackoffState(), ExitKind.CLEAN_RESTART, 5.0, initial=1.0, maximum=60.0)
    assert state == BackoffState()
    assert not state.crash_looping


def test_late_exit_resets_loop() -> None:
    state = BackoffState()
    for _ in range(3):
        state = record_exit(state, ExitKind.CRASH, 1.0, initial=1.0, maximum=60.0)
    assert state.crash_looping
    state = record_exit(state, ExitKind.LATE_EXIT, 50.0, initial=1.0, maximum=60.0)
    assert state.consecutive_crashes == 0
    assert not state.crash_looping


def test_survivor_clears_crash_loop() -> None:
    state = BackoffState()
    for _ in range(3):
        state = record_exit(state, ExitKind.CRASH, 1.0, initial=1.0, maximum=60.0)
    cleared = record_survivor(state)
    assert cleared.consecutive_crashes == 0
    assert not cleared.crash_looping


def test_exit_status_from_real_wait_status() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(exitcodes.RECYCLE)
    _, status = os.waitpid(pid, 0)
    assert ExitStatus.from_wait_status(status) == ExitStatus(code=exitcodes.RECYCLE, signal=None)

    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    decoded = ExitStatus.from_wait_status(status)
    assert decoded == ExitStatus(code=None, signal=signal.SIGKILL)
    assert decoded.describe() == "killed by SIGKILL"
