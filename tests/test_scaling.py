"""Scaling policy from recorded samples, without processes."""

from __future__ import annotations

import itertools

import pytest

from manager.scaling import ListSample, ScalingState, SystemSample, cpu_window, decide
from workers.config import ScalingConfig

CONFIG = ScalingConfig(
    sample_interval=5.0,
    cpu_target_percent=80.0,
    cpu_high_percent=95.0,
    memory_floor_mb=512,
    scale_down_delay=60.0,
    cooldown=10.0,
)
PLENTY_MB = 8000.0


def replay(
    cpu_trace: list[float],
    *,
    backlog: int | None,
    min_processes: int = 1,
    max_processes: int = 8,
    start: int = 1,
    all_busy: bool = True,
    memory_mb: float = PLENTY_MB,
) -> list[int]:
    """Feed samples one interval apart and return the desired count after each one.

    Every worker is busy when ``all_busy``, else every worker polls.
    """
    desired = start
    state = ScalingState()
    history = []
    for index, cpu in enumerate(cpu_trace):
        sample = ListSample(
            processes=desired,
            busy=desired if all_busy else 0,
            polling=0 if all_busy else desired,
            backlog=backlog,
        )
        decision, state = decide(
            sample,
            SystemSample(cpu_percent=cpu, available_memory_mb=memory_mb),
            desired,
            min_processes,
            max_processes,
            state,
            now=index * CONFIG.sample_interval,
            config=CONFIG,
        )
        desired += decision.delta
        history.append(desired)
    return history


def direction_changes(history: list[int], start: int) -> int:
    changes = 0
    last_direction = 0
    previous = start
    for value in history:
        direction = (value > previous) - (value < previous)
        if direction and last_direction and direction != last_direction:
            changes += 1
        if direction:
            last_direction = direction
        previous = value
    return changes


def test_window_follows_cooldown() -> None:
    assert cpu_window(CONFIG) == 2
    assert cpu_window(ScalingConfig(sample_interval=1.0, cooldown=10.0)) == 10


def test_backlog_with_low_cpu_adds_until_max() -> None:
    history = replay([30.0] * 40, backlog=50, max_processes=4)
    assert history[-1] == 4
    assert max(history) == 4
    # One step per cooldown at most: two samples of 5 s.
    steps = [i for i in range(1, len(history)) if history[i] != history[i - 1]]
    assert all(b - a >= 2 for a, b in itertools.pairwise(steps))


def test_no_add_when_cpu_above_target() -> None:
    history = replay([85.0] * 30, backlog=50)
    assert history == [1] * 30


def test_no_add_when_memory_under_floor() -> None:
    history = replay([10.0] * 30, backlog=50, memory_mb=400.0)
    assert history == [1] * 30


def test_no_demand_no_add() -> None:
    history = replay([10.0] * 30, backlog=0, all_busy=False)
    assert history == [1] * 30


def test_oscillating_cpu_does_not_flap() -> None:
    # Recorded from a CPU-bound list: CPU swings between 62% and 99% every sample while a
    # backlog stays. The count may settle but must not go up and down.
    trace = [62.0, 99.0, 64.0, 98.0, 61.0, 99.5, 66.0, 97.0, 63.0, 99.0] * 6
    history = replay(trace, backlog=20, start=3)
    assert direction_changes(history, start=3) == 0
    assert history == [3] * len(trace)


def test_cpu_wobbling_around_target_and_high_mark() -> None:
    # Recorded samples that cross the target and touch the high mark now and then.
    trace = [78.0, 82.0, 79.0, 96.0, 81.0, 77.0, 96.5, 94.0, 79.5, 83.0, 97.0, 78.0] * 5
    history = replay(trace, backlog=20, start=4, all_busy=False)
    # Two samples under the target in a row (78, 78 where the recording wraps) add one
    # worker. Nothing removes one, because CPU never stays above the high mark.
    assert direction_changes(history, start=4) == 0
    assert all(b >= a for a, b in itertools.pairwise(history))


def test_sustained_high_cpu_removes_idle_worker_then_holds() -> None:
    history = replay([99.0] * 10, backlog=0, start=4, all_busy=False)
    assert history[1] == 3
    assert history[-1] >= 1
    assert all(b <= a for a, b in itertools.pairwise(history))


def test_high_cpu_never_removes_busy_only_list() -> None:
    history = replay([99.0] * 20, backlog=5, start=4, all_busy=True)
    assert history == [4] * 20


def test_idle_list_scales_down_after_delay() -> None:
    history = replay([5.0] * 40, backlog=0, start=3, all_busy=False)
    # Idle since the first sample: 60 s is 12 samples later.
    assert history[11] == 3
    assert history[12] == 2
    assert history[-1] == 1
    assert min(history) == 1


def test_reversal_waits_two_cooldowns() -> None:
    state = ScalingState()
    config = CONFIG
    desired = 2
    busy = ListSample(processes=2, busy=2, polling=0, backlog=10)
    low = SystemSample(cpu_percent=30.0, available_memory_mb=PLENTY_MB)
    high = SystemSample(cpu_percent=99.0, available_memory_mb=PLENTY_MB)
    decision, state = decide(busy, low, desired, 1, 5, state, 0.0, config)
    assert decision.delta == 0
    decision, state = decide(busy, low, desired, 1, 5, state, 5.0, config)
    assert decision.delta == 1
    desired += 1
    polling = ListSample(processes=3, busy=2, polling=1, backlog=0)
    decision, state = decide(polling, high, desired, 1, 5, state, 10.0, config)
    assert decision.delta == 0
    decision, state = decide(polling, high, desired, 1, 5, state, 15.0, config)
    assert decision.delta == 0
    assert "cooldown" in decision.reason
    decision, state = decide(polling, high, desired, 1, 5, state, 25.0, config)
    assert decision.delta == -1
    assert decision.inputs["cpu_window"] == [99.0, 99.0]


@pytest.mark.parametrize("min_processes", [2, 3])
def test_never_below_min(min_processes: int) -> None:
    history = replay([99.0] * 30, backlog=0, start=min_processes, min_processes=min_processes, all_busy=False)
    assert min(history) == min_processes


def test_decision_carries_inputs() -> None:
    decision, _ = decide(
        ListSample(processes=1, busy=1, polling=0, backlog=7),
        SystemSample(cpu_percent=12.34, available_memory_mb=2048.4),
        1,
        1,
        4,
        ScalingState(cpu_history=(10.0,)),
        0.0,
        CONFIG,
    )
    assert decision.delta == 1
    assert "backlog 7" in decision.reason
    assert decision.inputs["cpu_percent"] == 12.3
    assert decision.inputs["backlog"] == 7
    assert decision.inputs["available_memory_mb"] == 2048
